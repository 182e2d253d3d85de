"""The pixel debate game (Irving, Christiano and Amodei 2018, section 3.1).

Honest and liar players alternate revealing nonzero pixels of an image, k in all; the
judge sees only those. Precommit: each claims a label up front, the winner is the claim
with the higher judge logit (the other 8 logits are ignored); nine games per image, one
per lie, and the liar wins the image if any lie wins. No precommit (lie = -1 here): the
judge takes the argmax over all 10 labels, and any wrong label is a liar win.

Values are from the honest player's side: the margin of the true label's logit over the
lie's (precommit) or over the best wrong label (no precommit). Honest wins iff margin > 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from debate.errors import UserError
from debate.pixels.data import ImageSet
from debate.pixels.judge import SparseJudge

NO_PRECOMMIT = -1


@dataclass
class Board:
    """The images in play, with what the judge needs to score any set of their pixels."""

    data: ImageSet
    judge: SparseJudge
    values: np.ndarray = field(init=False)  # (N, P) in [0, 1]
    nonzero: np.ndarray = field(init=False)  # (N, A) flat indices of nonzero pixels, -1 padded
    n_nonzero: np.ndarray = field(init=False)  # (N,)
    contributions: torch.Tensor = field(init=False)  # (N, P, hidden)

    def __post_init__(self) -> None:
        self.values = self.data.flat_values()
        counts = (self.values > 0).sum(1)
        width = max(int(counts.max()), 1) if len(counts) else 1
        order = np.argsort(self.values <= 0, axis=1, kind="stable")[:, :width]
        self.nonzero = np.where(np.arange(width)[None, :] < counts[:, None], order, -1)
        self.n_nonzero = counts
        self.contributions = self.judge.pixel_contributions(self.values)

    def logits(self, image: np.ndarray, pixels: np.ndarray, chunk: int = 65536) -> torch.Tensor:
        """Judge logits (B, 10) for flat pixel sets (B, m) of the given images (-1 = none)."""
        out = []
        img = torch.as_tensor(image, dtype=torch.long)
        pix = torch.as_tensor(pixels, dtype=torch.long)
        for i in range(0, len(img), chunk):
            out.append(
                self.judge.logits_for_sets(self.contributions, img[i : i + chunk], pix[i : i + chunk])
            )
        return torch.cat(out) if out else torch.zeros((0, 10))


def honest_margin(logits: torch.Tensor, truth: np.ndarray, lie: np.ndarray) -> np.ndarray:
    """The honest side's margin: truth logit minus the lie's (or the best wrong label's)."""
    z = logits.numpy() if isinstance(logits, torch.Tensor) else logits
    rows = np.arange(len(z))
    true_logit = z[rows, truth]
    wrong = z.copy()
    wrong[rows, truth] = -np.inf
    best_wrong = wrong.max(1)
    lie_logit = np.where(lie >= 0, z[rows, np.clip(lie, 0, 9)], best_wrong)
    return true_logit - lie_logit


@dataclass
class Games:
    """A batch of games played in lockstep: all have revealed `step` pixels so far."""

    image: np.ndarray  # (G,) row in the board
    truth: np.ndarray  # (G,)
    lie: np.ndarray  # (G,) the liar's claim, or NO_PRECOMMIT
    honest_first: np.ndarray  # (G,) bool
    k: int
    revealed: np.ndarray = field(init=False)  # (G, k) flat pixel indices, -1 not yet
    step: int = 0

    def __post_init__(self) -> None:
        self.revealed = np.full((len(self.image), self.k), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.image)

    def honest_to_move(self, step: int | None = None) -> np.ndarray:
        s = self.step if step is None else step
        return (s % 2 == 0) == self.honest_first


def check_k(k: int, board: Board) -> None:
    if k < 1 or k % 2:
        raise UserError(f"--k: {k} is not a positive even number of pixels (each side reveals k/2)")
    short = int((board.n_nonzero < k).sum())
    if short:
        raise UserError(f"--k: {k} is more than the nonzero pixels of {short} image(s)")


def play(board: Board, games: Games, honest, liar) -> np.ndarray:
    """Play every game to the end with the given players; returns final logits (G, 10)."""
    check_k(games.k, board)
    while games.step < games.k:
        honest_moves = games.honest_to_move()
        chosen = np.full(len(games), -1, dtype=np.int64)
        if honest is liar:
            chosen[:] = honest.choose(board, games, np.arange(len(games)))
        else:
            for player, idx in ((honest, np.flatnonzero(honest_moves)),
                                (liar, np.flatnonzero(~honest_moves))):
                if len(idx):
                    chosen[idx] = player.choose(board, games, idx)
        legal_check(board, games, chosen)
        games.revealed[:, games.step] = chosen
        games.step += 1
    return board.logits(games.image, games.revealed).numpy()


def legal_check(board: Board, games: Games, chosen: np.ndarray) -> None:
    """A player's move must be a nonzero pixel not revealed before (never trusted blindly)."""
    ok = (board.values[games.image, np.clip(chosen, 0, None)] > 0) & (chosen >= 0)
    ok &= ~(games.revealed == chosen[:, None]).any(1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise RuntimeError(f"player chose illegal pixel {int(chosen[bad])} in game {bad}")


def image_games(board: Board, images: np.ndarray, k: int, orders=(True, False),
                precommit: bool = True, no_precommit: bool = True) -> Games:
    """For each image: the nine lies (precommit) and one no-precommit game, in each order."""
    rows: list[tuple[int, int, int, bool]] = []
    for i in images:
        t = int(board.data.labels[i])
        lies = [label for label in range(10) if label != t] if precommit else []
        if no_precommit:
            lies.append(NO_PRECOMMIT)
        for honest_first in orders:
            rows.extend((int(i), t, lie, honest_first) for lie in lies)
    arr = np.array(rows, dtype=object).reshape(-1, 4)
    return Games(
        image=arr[:, 0].astype(np.int64),
        truth=arr[:, 1].astype(np.int64),
        lie=arr[:, 2].astype(np.int64),
        honest_first=arr[:, 3].astype(bool),
        k=k,
    )
