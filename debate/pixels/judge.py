"""The sparse judge: a classifier that sees only k revealed pixels (Irving et al. 2018, 3.1).

Input: two planes, a {0, 1} mask of the revealed pixels and their values (zero elsewhere),
flattened into one vector. The network is a small MLP, so its first layer is linear in the
input: the first-layer activation for a set of revealed pixels is the bias plus one column
contribution per revealed pixel. `logits_for_sets` uses that to judge millions of pixel
sets without building planes (same numbers as `forward`, to float rounding).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from debate.errors import UserError
from debate.pixels.data import ImageSet

N_CLASSES = 10


def cache_dir() -> Path:
    base = os.environ.get("DEBATE_CACHE_DIR")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "debate" / "pixels" if not base else root / "pixels"


def default_judge_path(dataset: str, k: int) -> Path:
    return cache_dir() / f"judge-{dataset}-k{k}.pt"


@dataclass(frozen=True)
class TrainSettings:
    k: int
    hidden: int = 128
    steps: int = 3000
    batch: int = 512
    lr: float = 2e-3
    seed: int = 0
    eval_masks: int = 20


class SparseJudge(nn.Module):
    def __init__(self, n_pixels: int, hidden: int = 128) -> None:
        super().__init__()
        self.n_pixels = n_pixels
        self.hidden = hidden
        self.first = nn.Linear(2 * n_pixels, hidden)
        self.rest = nn.Sequential(
            nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, N_CLASSES)
        )

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """planes (B, 2, H, W): mask, then revealed values; returns logits (B, 10)."""
        return self.rest(self.first(planes.reshape(len(planes), -1)))

    @torch.no_grad()
    def pixel_contributions(self, values: np.ndarray) -> torch.Tensor:
        """(N, P) values in [0, 1] -> (N, P + 1, hidden): each pixel's first-layer term if
        revealed; the extra last row is zero (it stands for "nothing revealed here")."""
        w = self.first.weight  # (hidden, 2P): mask columns, then value columns
        v = torch.as_tensor(values, dtype=torch.float32)
        terms = w[:, : self.n_pixels].T.unsqueeze(0) + v.unsqueeze(-1) * w[:, self.n_pixels :].T
        return torch.cat([terms, torch.zeros(len(v), 1, self.hidden)], dim=1).contiguous()

    @torch.no_grad()
    def logits_for_sets(
        self, contributions: torch.Tensor, image: torch.Tensor, pixels: torch.Tensor
    ) -> torch.Tensor:
        """Logits for revealed sets: image (B,) rows of `contributions`, pixels (B, m) indices.

        A pixel index of -1 is padding (nothing revealed in that slot).
        """
        width = contributions.shape[1]
        flat = image.unsqueeze(1) * width + torch.where(pixels >= 0, pixels, width - 1)
        table = contributions.view(-1, self.hidden)
        first = nn.functional.embedding_bag(flat, table, mode="sum")
        return self.rest(first + self.first.bias)


def random_nonzero_sets(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(N, k) indices of k distinct nonzero pixels per row, chosen uniformly (-1 where fewer)."""
    scores = rng.random(values.shape)
    scores[values <= 0] = -1.0
    order = np.argsort(-scores, axis=1)[:, :k]
    chosen = np.take_along_axis(scores, order, axis=1)
    return np.where(chosen >= 0, order, -1)


def planes_for_sets(values: np.ndarray, sets: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """(N, 2, H, W) mask and value planes for index sets (N, m), -1 = padding."""
    n, p = values.shape
    mask = np.zeros((n, p), dtype=np.float32)
    rows = np.repeat(np.arange(n), sets.shape[1])
    cols = sets.reshape(-1)
    keep = cols >= 0
    mask[rows[keep], cols[keep]] = 1.0
    planes = np.stack([mask, mask * values], axis=1).reshape(n, 2, *shape)
    return torch.from_numpy(planes)


@torch.no_grad()
def random_pixel_accuracy(
    judge: SparseJudge, data: ImageSet, k: int, masks: int, seed: int
) -> np.ndarray:
    """Per image: the fraction of `masks` random k-nonzero-pixel views the judge gets right."""
    rng = np.random.default_rng(seed)
    values = data.flat_values()
    contrib = judge.pixel_contributions(values)
    image = torch.arange(len(data))
    correct = np.zeros(len(data))
    labels = torch.tensor(data.labels)
    for _ in range(masks):
        sets = torch.as_tensor(random_nonzero_sets(values, k, rng))
        pred = judge.logits_for_sets(contrib, image, sets).argmax(1)
        correct += (pred == labels).numpy()
    return correct / masks


def train_judge(
    train: ImageSet, test: ImageSet, settings: TrainSettings, progress=None
) -> tuple[SparseJudge, dict]:
    """Train on random sets of k nonzero pixels; returns the judge and its metrics."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    judge = SparseJudge(train.n_pixels, settings.hidden)
    opt = torch.optim.Adam(judge.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.steps)
    values = train.flat_values()
    labels = torch.tensor(train.labels)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    judge.train()
    for step in range(settings.steps):
        rows = rng.integers(0, len(train), settings.batch)
        sets = random_nonzero_sets(values[rows], settings.k, rng)
        planes = planes_for_sets(values[rows], sets, train.shape)
        loss = loss_fn(judge(planes), labels[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step + 1, settings.steps, float(loss))
    judge.eval()
    seconds = time.perf_counter() - started
    per_image = random_pixel_accuracy(judge, test, settings.k, settings.eval_masks, seed=12345)
    train_acc = random_pixel_accuracy(judge, train, settings.k, 5, seed=54321).mean()
    metrics = {
        "dataset": train.name,
        "k": settings.k,
        "test_images": len(test),
        "test_accuracy": float(per_image.mean()),
        "train_accuracy": float(train_acc),
        "eval_masks_per_image": settings.eval_masks,
        "train_seconds": round(seconds, 1),
        "settings": asdict(settings),
    }
    return judge, metrics


def save_judge(judge: SparseJudge, metrics: dict, path: Path, shape: tuple[int, int]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "state_dict": judge.state_dict(),
        "n_pixels": judge.n_pixels,
        "hidden": judge.hidden,
        "shape": list(shape),
        "metrics": metrics,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(metrics, indent=2) + "\n")
    return path


@dataclass
class LoadedJudge:
    judge: SparseJudge
    metrics: dict
    path: Path
    shape: tuple[int, int]

    @property
    def k(self) -> int:
        return int(self.metrics["k"])


def load_judge(path: Path) -> LoadedJudge:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--judge: {path}: judge file not found (train one with "
                        "`debate pixels train-judge --k K --out PATH`)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        judge = SparseJudge(int(blob["n_pixels"]), int(blob["hidden"]))
        judge.load_state_dict(blob["state_dict"])
        metrics = dict(blob["metrics"])
        shape = (int(blob["shape"][0]), int(blob["shape"][1]))
        int(metrics["k"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--judge: {path}: not a pixel judge file ({msg})") from None
    judge.eval()
    return LoadedJudge(judge, metrics, path, shape)


def ensure_judge(k: int, train, test, path: Path | None = None, say=print,
                 settings: TrainSettings | None = None) -> LoadedJudge:
    """The judge for k pixels: from `path` (which must exist), else from the cache,
    training and caching one first if there is none (about a minute on a CPU)."""
    if path is not None:
        loaded = load_judge(path)
    else:
        cached = default_judge_path(train.name, k)
        if not cached.is_file():
            say(f"training a {train.name} judge for k={k} (cached at {cached}) ...")
            judge, metrics = train_judge(train, test, settings or TrainSettings(k=k))
            save_judge(judge, metrics, cached, train.shape)
            say(f"judge accuracy on {k} random nonzero pixels: {metrics['test_accuracy']:.1%}")
        loaded = load_judge(cached)
    if loaded.k != k:
        raise UserError(f"--judge: {loaded.path} was trained for k={loaded.k}, not k={k}")
    if loaded.shape != train.shape:
        raise UserError(f"--judge: {loaded.path} is for {loaded.shape} images, not {train.shape}")
    return loaded
