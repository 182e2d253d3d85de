"""Running the debates for a table and printing it in the layout of the paper's Table 2.

Rows: honest first, liar first, mean. Columns: judge alone (10-way accuracy on k random
nonzero pixels), debate without precommit, debate with precommit (honest wins the image
only if it beats all nine lies). Each cell carries a 95% interval: Wilson for the
per-order rows (one win or loss per image), a bootstrap over images for the judge alone
and for the mean of the two orders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from debate.pixels.data import ImageSet
from debate.pixels.game import NO_PRECOMMIT, Board, honest_margin, image_games, play
from debate.pixels.judge import random_pixel_accuracy
from debate.pixels.players import MinimaxPlayer

# The paper's MNIST figures, as stated in the issue: judge alone and precommit (mean).
PAPER_MNIST = {
    4: {"judge": 48.2, "precommit_mean": 85.2},
    6: {"judge": 59.4, "precommit_mean": 88.9},
}
JUDGE_ALONE_MASKS = 50


@dataclass
class GameRecord:
    """One finished game, kept for storing it as a debate."""

    image: int
    truth: int
    lie: int
    honest_first: bool
    pixels: list[int]
    logits: list[float]


@dataclass
class TableResult:
    k: int
    dataset: str
    honest: str
    liar: str
    images: np.ndarray  # rows of the test set played
    judge_alone: np.ndarray  # (n,) per-image accuracy over random masks
    precommit: np.ndarray  # (n, 2) honest won all nine lies; [:, 0] honest first
    no_precommit: np.ndarray  # (n, 2)
    seconds: float
    leaf_evaluations: int
    games: list[GameRecord] = field(default_factory=list)

    def summary(self) -> dict:
        def cell(x: np.ndarray) -> dict:
            lo, hi = wilson(x)
            return {"rate": float(x.mean()), "low": lo, "high": hi, "n": len(x)}

        def mean_cell(x: np.ndarray) -> dict:
            lo, hi = bootstrap(x.mean(1))
            return {"rate": float(x.mean()), "low": lo, "high": hi, "n": len(x)}

        ja_lo, ja_hi = bootstrap(self.judge_alone)
        return {
            "k": self.k,
            "dataset": self.dataset,
            "honest": self.honest,
            "liar": self.liar,
            "images": len(self.images),
            "seconds": round(self.seconds, 1),
            "leaf_evaluations": self.leaf_evaluations,
            "judge_alone": {"rate": float(self.judge_alone.mean()), "low": ja_lo, "high": ja_hi,
                            "n": len(self.judge_alone)},
            "no_precommit": {"honest_first": cell(self.no_precommit[:, 0]),
                             "liar_first": cell(self.no_precommit[:, 1]),
                             "mean": mean_cell(self.no_precommit)},
            "precommit": {"honest_first": cell(self.precommit[:, 0]),
                          "liar_first": cell(self.precommit[:, 1]),
                          "mean": mean_cell(self.precommit)},
        }


def wilson(x: np.ndarray) -> tuple[float, float]:
    ci = stats.binomtest(int(x.sum()), len(x)).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap(x: np.ndarray, seed: int = 0) -> tuple[float, float]:
    if len(x) < 2 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean())
    res = stats.bootstrap((x,), np.mean, n_resamples=2000, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def run_table(board: Board, k: int, honest, liar, images: np.ndarray | None = None,
              chunk_images: int | None = None, keep_games: bool = True, progress=None,
              seed: int = 0) -> TableResult:
    """Play every image's 9 lies and its no-precommit game in both orders."""
    started = time.perf_counter()
    images = np.arange(len(board.data)) if images is None else np.asarray(images)
    if chunk_images is None:
        chunk_images = 8 if isinstance(honest, MinimaxPlayer) or isinstance(liar, MinimaxPlayer) \
            else 32
    n = len(images)
    precommit = np.zeros((n, 2), dtype=bool)
    no_precommit = np.zeros((n, 2), dtype=bool)
    records: list[GameRecord] = []
    leaf_before = _leaf_count(honest, liar)
    for start in range(0, n, chunk_images):
        part = images[start : start + chunk_images]
        games = image_games(board, part, k)
        logits = play(board, games, honest, liar)
        margins = _margins(logits, games.truth, games.lie)
        won = margins > 0
        row_of = {int(img): start + i for i, img in enumerate(part)}
        for g in range(len(games)):
            r, order = row_of[int(games.image[g])], 0 if games.honest_first[g] else 1
            if games.lie[g] == NO_PRECOMMIT:
                no_precommit[r, order] = won[g]
            if keep_games and games.lie[g] != NO_PRECOMMIT:
                records.append(GameRecord(int(games.image[g]), int(games.truth[g]),
                                          int(games.lie[g]), bool(games.honest_first[g]),
                                          [int(p) for p in games.revealed[g]],
                                          [float(z) for z in logits[g]]))
        for order, hf in enumerate((True, False)):
            for img in part:
                sel = (games.image == img) & (games.honest_first == hf) & (games.lie != NO_PRECOMMIT)
                precommit[row_of[int(img)], order] = bool(won[sel].all())
        for player in {id(honest): honest, id(liar): liar}.values():
            if isinstance(player, MinimaxPlayer):
                player.forget()
        if progress is not None:
            progress(min(start + chunk_images, n), n)
    judge_alone = random_pixel_accuracy(
        board.judge, _subset(board, images), k, JUDGE_ALONE_MASKS, seed=seed + 777
    )
    return TableResult(
        k=k, dataset=board.data.name, honest=getattr(honest, "name", "?"),
        liar=getattr(liar, "name", "?"), images=images, judge_alone=judge_alone,
        precommit=precommit, no_precommit=no_precommit,
        seconds=time.perf_counter() - started,
        leaf_evaluations=_leaf_count(honest, liar) - leaf_before, games=records,
    )


def _subset(board: Board, images: np.ndarray):
    d = board.data
    return ImageSet(d.name, d.images[images], d.labels[images], d.max_value)


def _leaf_count(*players) -> int:
    return sum(getattr(p, "leaf_evaluations", 0) for p in {id(p): p for p in players}.values())


def _margins(logits: np.ndarray, truth: np.ndarray, lie: np.ndarray) -> np.ndarray:
    return honest_margin(logits, truth, lie)


def _pct(cell: dict) -> str:
    return f"{100 * cell['rate']:.1f}% [{100 * cell['low']:.1f}, {100 * cell['high']:.1f}]"


def render_table(summary: dict):
    """A rich Table in the paper's Table 2 layout, with the paper's MNIST figures alongside."""
    from rich.table import Table

    k = summary["k"]
    paper = PAPER_MNIST.get(k, {})
    title = (f"Pixel debate, k = {k}, {summary['dataset']} test ({summary['images']} images), "
             f"honest {summary['honest']} vs liar {summary['liar']}; honest win rate, 95% interval")
    table = Table(title=title)
    table.add_column("")
    table.add_column("judge alone")
    table.add_column("no precommit")
    table.add_column("precommit")
    table.add_column("paper MNIST: judge / precommit", style="dim")
    ja = _pct(summary["judge_alone"])
    for key, label in (("honest_first", "honest first"), ("liar_first", "liar first"),
                       ("mean", "mean")):
        paper_cell = "—"
        if key == "mean" and paper:
            paper_cell = f"{paper['judge']:.1f}% / {paper['precommit_mean']:.1f}%"
        table.add_row(label, ja, _pct(summary["no_precommit"][key]),
                      _pct(summary["precommit"][key]), paper_cell)
    return table
