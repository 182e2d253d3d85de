"""Players of the pixel debate: exact minimax (k <= 4), MCTS as in the paper, and greedy.

Every player has `choose(board, games, idx) -> flat pixel per game in idx`; the side to
move in each game follows from `games.step` and `games.honest_first`. The honest side
maximises the honest margin (see game.py), the liar minimises it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from debate.errors import UserError
from debate.pixels.game import NO_PRECOMMIT, Board, Games, honest_margin

MINIMAX_MAX_K = 4
N_COLUMNS = 10  # 9 lies (precommit) + 1 no-precommit game per image


def _legal_local(board: Board, games: Games, idx: np.ndarray) -> np.ndarray:
    """(len(idx), A) bool: which of each image's nonzero pixels are still unrevealed."""
    nz = board.nonzero[games.image[idx]]  # (B, A)
    revealed = games.revealed[idx]  # (B, k)
    taken = (nz[:, :, None] == revealed[:, None, :]).any(2)
    return (nz >= 0) & ~taken


# ---------------------------------------------------------------- greedy


@dataclass
class GreedyPlayer:
    """Reveals the pixel that most improves its side's margin if the judge ruled right now."""

    name: str = "greedy"

    def choose(self, board: Board, games: Games, idx: np.ndarray) -> np.ndarray:
        legal = _legal_local(board, games, idx)
        nz = board.nonzero[games.image[idx]]
        b, a = legal.shape
        base = np.repeat(games.revealed[idx], a, axis=0)  # (b*a, k)
        base[:, games.step] = nz.reshape(-1)
        image = np.repeat(games.image[idx], a)
        margins = honest_margin(
            board.logits(image, base), np.repeat(games.truth[idx], a), np.repeat(games.lie[idx], a)
        ).reshape(b, a)
        sign = np.where(games.honest_to_move()[idx], 1.0, -1.0)[:, None]
        score = np.where(legal, sign * margins, -np.inf)
        return nz[np.arange(b), score.argmax(1)]


# ---------------------------------------------------------------- exact minimax


def _binomials(n: int, r: int) -> np.ndarray:
    return np.array([[math.comb(x, j) for j in range(r + 2)] for x in range(n + 1)], dtype=np.int64)


def colex_combinations(n: int, j: int, binom: np.ndarray) -> np.ndarray:
    """All j-subsets of range(n), sorted ascending inside, row i = the subset of colex rank i."""
    if j == 0:
        return np.zeros((1, 0), dtype=np.int64)
    combos = np.array(list(itertools.combinations(range(n), j)), dtype=np.int64)
    ranks = colex_rank(combos, binom)
    out = np.empty_like(combos)
    out[ranks] = combos
    return out


def colex_rank(sets: np.ndarray, binom: np.ndarray) -> np.ndarray:
    """Rank of each ascending subset (B, j) in colex order: sum of C(s_i, i + 1)."""
    if sets.shape[1] == 0:
        return np.zeros(len(sets), dtype=np.int64)
    cols = np.arange(sets.shape[1])[None, :] + 1
    return binom[sets, cols].sum(1)


def rank_with(sets: np.ndarray, p: np.ndarray, binom: np.ndarray) -> np.ndarray:
    """Colex rank of each ascending subset (B, j) with element p (B,) (not in it) added."""
    j = sets.shape[1]
    after = sets > p[:, None]  # these move one place up
    cols = np.arange(j)[None, :] + 1 + after
    q = j - after.sum(1)  # p's place
    return binom[sets, cols].sum(1) + binom[p, q + 1]


@dataclass
class MinimaxTables:
    """Per image, exact game values of every revealed set: values[j] (C(n, j), 10, 2).

    Columns: the 9 lies in label order, then no-precommit; last axis: honest first, liar
    first. The judge depends only on the set revealed, so each set is judged once.
    """

    n: int
    binom: np.ndarray
    values: list[np.ndarray]
    leaf_evaluations: int


def column_margins(logits: np.ndarray, truth: int) -> np.ndarray:
    """(B, 10) honest margins per game column: the 9 lies in label order, then no-precommit."""
    wrong = np.delete(logits, truth, axis=1)
    true_logit = logits[:, truth : truth + 1]
    return np.concatenate([true_logit - wrong, true_logit - wrong.max(1, keepdims=True)], axis=1)


def minimax_tables(board: Board, image: int, k: int) -> MinimaxTables:
    n = int(board.n_nonzero[image])
    binom = _binomials(n, k)
    nz = board.nonzero[image, :n]
    leaves = colex_combinations(n, k, binom)
    logits = board.logits(np.full(len(leaves), image), nz[leaves]).numpy()
    t = int(board.data.labels[image])
    margins = column_margins(logits, t)
    values: list[np.ndarray] = [np.empty(0)] * (k + 1)
    values[k] = np.repeat(margins[:, :, None], 2, axis=2).astype(np.float32)
    for j in range(k - 1, -1, -1):
        sets = colex_combinations(n, j, binom)
        child = values[j + 1]
        # ranks[s, p]: the child S + {p}; p already in S points at a padding row.
        ranks = np.full((len(sets), n), len(child), dtype=np.int64)
        for p in range(n):
            free = ~(sets == p).any(1)
            ranks[free, p] = rank_with(sets[free], np.full(int(free.sum()), p), binom)
        pad_low = np.concatenate([child, np.full((1, N_COLUMNS, 2), -np.inf, np.float32)])
        pad_high = np.concatenate([child, np.full((1, N_COLUMNS, 2), np.inf, np.float32)])
        best = pad_low[ranks].max(1)
        worst = pad_high[ranks].min(1)
        # Order 0 (honest first): honest moves when j is even; order 1 when j is odd.
        honest_moves = np.array([j % 2 == 0, j % 2 == 1])
        values[j] = np.where(honest_moves[None, None, :], best, worst)
    return MinimaxTables(n, binom, values, len(leaves))


def column_of(truth: int, lie: int) -> int:
    if lie == NO_PRECOMMIT:
        return 9
    return lie if lie < truth else lie - 1


@dataclass
class MinimaxPlayer:
    """Exact play for k <= 4: the best move against a perfect opponent."""

    name: str = "minimax"
    tables: dict[int, MinimaxTables] = field(default_factory=dict)
    leaf_evaluations: int = 0

    def prepare(self, board: Board, images: np.ndarray, k: int) -> None:
        if k > MINIMAX_MAX_K:
            raise UserError(f"--player minimax: exact minimax needs k <= {MINIMAX_MAX_K}, got {k}; "
                            "use --player mcts")
        for i in np.unique(images):
            if int(i) not in self.tables:
                self.tables[int(i)] = minimax_tables(board, int(i), k)
                self.leaf_evaluations += self.tables[int(i)].leaf_evaluations

    def forget(self) -> None:
        self.tables.clear()

    def root_values(self, image: int) -> np.ndarray:
        """(10, 2) game values from the empty board."""
        return self.tables[image].values[0][0]

    def choose(self, board: Board, games: Games, idx: np.ndarray) -> np.ndarray:
        self.prepare(board, games.image[idx], games.k)
        out = np.empty(len(idx), dtype=np.int64)
        for row, g in enumerate(idx):
            image = int(games.image[g])
            tab = self.tables[image]
            nz = board.nonzero[image, : tab.n]
            local = np.sort(np.searchsorted(nz, games.revealed[g, : games.step]))
            free = np.setdiff1d(np.arange(tab.n), local)
            ranks = rank_with(np.repeat(local[None, :], len(free), 0), free, tab.binom)
            col = column_of(int(games.truth[g]), int(games.lie[g]))
            order = 0 if games.honest_first[g] else 1
            v = tab.values[games.step + 1][ranks, col, order]
            pick = v.argmax() if games.honest_to_move()[g] else v.argmin()
            out[row] = nz[free[pick]]
        return out


# ---------------------------------------------------------------- MCTS


@dataclass
class MctsPlayer:
    """Monte Carlo tree search as in the paper: PUCT with c = 1 and a uniform prior, the
    value negated for the opponent, `rollouts` simulations per move, the most visited move.

    A simulation descends the tree by PUCT, expands one new node, completes the game with
    uniformly random reveals and asks the judge; the value is tanh(margin / 2) for the
    honest side. Many games search at once: each simulation step judges one leaf per game
    in a single batched call (`batched=False` judges leaf by leaf, for the benchmark).
    """

    rollouts: int = 1000
    c_puct: float = 1.0
    seed: int = 0
    batched: bool = True
    memory_mb: int = 400
    name: str = "mcts"
    leaf_evaluations: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        if self.rollouts < 1:
            raise UserError(f"--rollouts: must be >= 1, got {self.rollouts}")
        self.rng = np.random.default_rng(self.seed)

    def choose(self, board: Board, games: Games, idx: np.ndarray) -> np.ndarray:
        width = board.nonzero.shape[1]
        per_game = (self.rollouts + 1) * width * 12
        chunk = max(1, int(self.memory_mb * 2**20 // per_game))
        out = np.empty(len(idx), dtype=np.int64)
        for start in range(0, len(idx), chunk):
            part = idx[start : start + chunk]
            out[start : start + chunk] = self._search(board, games, part)
        return out

    def _judge(self, board: Board, image: np.ndarray, sets: np.ndarray) -> torch.Tensor:
        self.leaf_evaluations += len(image)
        if self.batched:
            return board.logits(image, sets)
        return torch.cat([board.logits(image[i : i + 1], sets[i : i + 1]) for i in range(len(image))])

    def _search(self, board: Board, games: Games, idx: np.ndarray) -> np.ndarray:
        g = len(idx)
        k, step = games.k, games.step
        depth_left = k - step
        nz = board.nonzero[games.image[idx]]  # (g, A)
        a = nz.shape[1]
        root_legal = _legal_local(board, games, idx)
        image = games.image[idx]
        truth, lie = games.truth[idx], games.lie[idx]
        # Whose side moves at each depth below the root: +1 honest, -1 liar.
        side = np.stack(
            [np.where(games.honest_to_move(step + d)[idx], 1.0, -1.0) for d in range(depth_left)],
            axis=1,
        ).astype(np.float32)
        m = self.rollouts + 1
        child = np.full((g, m, a), -1, dtype=np.int32)
        visits = np.zeros((g, m, a), dtype=np.float32)
        total = np.zeros((g, m, a), dtype=np.float32)
        n_nodes = np.ones(g, dtype=np.int32)
        rows = np.arange(g)
        prior = 1.0 / np.maximum(root_legal.sum(1), 1)  # uniform over the root's moves
        tiebreak = 1e-6 * self.rng.random((g, a))  # ties broken at random (one draw a search)
        for _ in range(self.rollouts):
            node = np.zeros(g, dtype=np.int32)
            legal = root_legal.copy()
            path_nodes = np.zeros((g, depth_left), dtype=np.int32)
            path_moves = np.full((g, depth_left), -1, dtype=np.int64)
            active = np.ones(g, dtype=bool)
            for d in range(depth_left):
                n_sa = visits[rows, node]
                q = total[rows, node] / np.maximum(n_sa, 1)  # 0 where unvisited
                n_legal = np.maximum(legal.sum(1), 1)
                p_uniform = (1.0 / n_legal)[:, None] if d else prior[:, None]
                u = q + self.c_puct * p_uniform * np.sqrt(n_sa.sum(1, keepdims=True)) / (1 + n_sa)
                u += tiebreak
                u[~legal] = -np.inf
                move = u.argmax(1)
                path_nodes[active, d] = node[active]
                path_moves[active, d] = move[active]
                legal[rows[active], move[active]] = False
                nxt = child[rows, node, move]
                if d + 1 < depth_left:
                    new = active & (nxt < 0)
                    if new.any():
                        ids = n_nodes[new]
                        child[rows[new], node[new], move[new]] = ids
                        n_nodes[new] += 1
                    node = np.where(active, child[rows, node, move], node)
                    active = active & ~new
                else:
                    active[:] = False
                if not active.any():
                    break
            # Complete each game at random from where its descent stopped.
            taken = (path_moves >= 0).sum(1)
            scores = np.where(legal, self.rng.random(legal.shape), -1.0)
            order = np.argsort(-scores, axis=1)[:, :depth_left]
            need = depth_left - taken
            fill = np.where(np.arange(depth_left)[None, :] < need[:, None], order, -1)
            local = np.concatenate([np.where(path_moves >= 0, path_moves, -1), fill], axis=1)
            flat = np.where(local >= 0, np.take_along_axis(nz, np.clip(local, 0, None), 1), -1)
            sets = np.concatenate([games.revealed[idx][:, :step], flat], axis=1)
            margin = honest_margin(self._judge(board, image, sets), truth, lie)
            value = np.tanh(margin / 2).astype(np.float32)
            for d in range(depth_left):
                on = path_moves[:, d] >= 0
                if not on.any():
                    break
                r, nd, mv = rows[on], path_nodes[on, d], path_moves[on, d]
                visits[r, nd, mv] += 1
                total[r, nd, mv] += value[on] * side[on, d]
        root_visits = visits[:, 0, :] + 1e-3 * self.rng.random((g, a))
        root_visits[~root_legal] = -1
        return nz[rows, root_visits.argmax(1)]


def make_player(name: str, rollouts: int = 1000, seed: int = 0):
    if name == "greedy":
        return GreedyPlayer()
    if name == "minimax":
        return MinimaxPlayer()
    if name == "mcts":
        return MctsPlayer(rollouts=rollouts, seed=seed)
    raise UserError(f"--player: unknown player {name!r}; known: greedy, mcts, minimax")
