"""The debate game and its players: exact minimax against brute force, MCTS, greedy, Table 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from debate.errors import UserError
from debate.pixels.data import ImageSet, digits_split
from debate.pixels.game import NO_PRECOMMIT, Board, Games, honest_margin, image_games, play
from debate.pixels.judge import load_judge
from debate.pixels.players import (
    GreedyPlayer,
    MctsPlayer,
    MinimaxPlayer,
    _binomials,
    colex_combinations,
    colex_rank,
    column_of,
    make_player,
    rank_with,
)
from debate.pixels.table import render_table, run_table


@pytest.fixture(scope="module")
def test_set() -> ImageSet:
    return digits_split()[1]


@pytest.fixture(scope="module")
def board4(pixel_judges: dict[int, Path], test_set: ImageSet) -> Board:
    torch.set_num_threads(1)
    return Board(test_set.head(6), load_judge(pixel_judges[4]).judge)


def sparse_images(test_set: ImageSet, keep: int, n: int = 3) -> ImageSet:
    """The first n test images with all but `keep` nonzero pixels blanked (tiny game trees)."""
    images = test_set.images[:n].copy()
    for img in images:
        flat = img.reshape(-1)
        nonzero = np.flatnonzero(flat)
        flat[nonzero[keep:]] = 0
    return ImageSet("digits", images, test_set.labels[:n], 16)


def test_colex_ranks_are_a_bijection_and_insertion_is_right() -> None:
    binom = _binomials(9, 4)
    for j in range(5):
        sets = colex_combinations(9, j, binom)
        assert np.array_equal(colex_rank(sets, binom), np.arange(len(sets)))
    sets = colex_combinations(9, 3, binom)
    for p in range(9):
        free = ~(sets == p).any(1)
        joined = np.sort(np.concatenate([sets[free], np.full((free.sum(), 1), p)], 1), 1)
        assert np.array_equal(rank_with(sets[free], np.full(free.sum(), p), binom),
                              colex_rank(joined, binom))


def brute_force_value(board: Board, image: int, lie: int, honest_first: bool, k: int) -> float:
    """Minimax over move sequences (not sets), judging every final sequence."""
    nz = [int(p) for p in board.nonzero[image] if p >= 0]
    truth = int(board.data.labels[image])
    cache: dict[frozenset, float] = {}

    def leaf(revealed: tuple[int, ...]) -> float:
        key = frozenset(revealed)
        if key not in cache:
            logits = board.logits(np.array([image]), np.array([list(revealed)]))
            cache[key] = float(honest_margin(logits, np.array([truth]), np.array([lie]))[0])
        return cache[key]

    def value(revealed: tuple[int, ...]) -> float:
        if len(revealed) == k:
            return leaf(revealed)
        children = [value(revealed + (p,)) for p in nz if p not in revealed]
        honest_moves = (len(revealed) % 2 == 0) == honest_first
        return max(children) if honest_moves else min(children)

    return value(())


def test_minimax_equals_brute_force_over_sequences(pixel_judges, test_set) -> None:
    board = Board(sparse_images(test_set, keep=6), load_judge(pixel_judges[4]).judge)
    player = MinimaxPlayer()
    player.prepare(board, np.arange(3), 4)
    for image in range(3):
        truth = int(board.data.labels[image])
        roots = player.root_values(image)
        for lie in [*(label for label in range(10) if label != truth), NO_PRECOMMIT][::3]:
            for order, honest_first in enumerate((True, False)):
                exact = brute_force_value(board, image, lie, honest_first, 4)
                assert roots[column_of(truth, lie), order] == pytest.approx(exact, abs=1e-4)
        # each set judged once: C(6, 4) leaves
        assert player.tables[image].leaf_evaluations == 15


def test_minimax_play_reaches_the_game_value(board4: Board) -> None:
    player = MinimaxPlayer()
    games = image_games(board4, np.arange(3), 4)
    logits = play(board4, games, player, player)
    margins = honest_margin(logits, games.truth, games.lie)
    player.prepare(board4, np.arange(3), 4)
    for g in range(len(games)):
        root = player.root_values(int(games.image[g]))
        expected = root[column_of(int(games.truth[g]), int(games.lie[g])),
                        0 if games.honest_first[g] else 1]
        assert margins[g] == pytest.approx(expected, abs=1e-4)
    assert (games.revealed >= 0).all()
    assert all(len(set(row)) == 4 for row in games.revealed)


def test_minimax_honest_keeps_every_won_game_against_other_liars(board4: Board) -> None:
    """Where the game value favours honesty, exact honest play wins whatever the liar does."""
    honest = MinimaxPlayer()
    honest.prepare(board4, np.arange(4), 4)
    for liar in (GreedyPlayer(), MctsPlayer(rollouts=20, seed=3)):
        games = image_games(board4, np.arange(4), 4)
        margins = honest_margin(play(board4, games, honest, liar), games.truth, games.lie)
        values = np.array([
            honest.root_values(int(i))[column_of(int(t), int(lie)), 0 if hf else 1]
            for i, t, lie, hf in zip(games.image, games.truth, games.lie, games.honest_first)
        ])
        assert np.all(margins[values > 0] > 0)
        assert np.all(margins >= values - 1e-4)  # a weaker liar can only do worse


def test_mcts_moves_are_legal_and_better_than_random(board4: Board) -> None:
    games = image_games(board4, np.arange(3), 2, orders=(True,))
    games.k = 4
    games.revealed = np.full((len(games), 4), -1)
    mcts = MctsPlayer(rollouts=60, seed=0)
    logits = play(board4, games, mcts, mcts)
    assert (games.revealed >= 0).all() and all(len(set(r)) == 4 for r in games.revealed)
    assert mcts.leaf_evaluations == 60 * 4 * len(games)
    assert np.isfinite(logits).all()

    # Last move, honest to move: MCTS should pick a better-than-average reveal.
    last = Games(games.image.copy(), games.truth.copy(), games.lie.copy(),
                 np.ones(len(games), bool), k=1)
    picks = MctsPlayer(rollouts=200, seed=1).choose(board4, last, np.arange(len(last)))
    better = 0
    for g, pick in enumerate(picks):
        nz = board4.nonzero[last.image[g]]
        nz = nz[nz >= 0]
        lg = board4.logits(np.full(len(nz), last.image[g]), nz[:, None])
        m = honest_margin(lg, np.full(len(nz), last.truth[g]), np.full(len(nz), last.lie[g]))
        better += m[list(nz).index(pick)] >= m.mean()
    assert better >= 0.8 * len(picks)


def test_batched_and_per_leaf_mcts_judge_alike(board4: Board) -> None:
    results = []
    for batched in (True, False):
        games = image_games(board4, np.arange(2), 2, orders=(True,))
        player = MctsPlayer(rollouts=15, seed=5, batched=batched)
        results.append((play(board4, games, player, player), player.leaf_evaluations))
    assert results[0][1] == results[1][1] == 15 * 2 * len(games)


def test_bad_k_and_player(board4: Board) -> None:
    games = image_games(board4, np.arange(1), 3)
    with pytest.raises(UserError, match="--k: 3 is not a positive even number"):
        play(board4, games, GreedyPlayer(), GreedyPlayer())
    with pytest.raises(UserError, match="--k: 60 is more than the nonzero pixels"):
        play(board4, image_games(board4, np.arange(1), 60), GreedyPlayer(), GreedyPlayer())
    with pytest.raises(UserError, match="needs k <= 4"):
        MinimaxPlayer().prepare(board4, np.arange(1), 6)
    with pytest.raises(UserError, match="unknown player 'alphazero'"):
        make_player("alphazero")
    with pytest.raises(UserError, match="--rollouts"):
        make_player("mcts", rollouts=0)


def test_table_counts_an_image_only_if_all_nine_lies_lose(board4: Board) -> None:
    player = MinimaxPlayer()
    result = run_table(board4, 4, player, player, images=np.arange(4))
    player.prepare(board4, np.arange(4), 4)
    for row, image in enumerate(range(4)):
        roots = player.root_values(image)
        assert list(result.precommit[row]) == list((roots[:9] > 0).all(0))
        assert list(result.no_precommit[row]) == list(roots[9] > 0)
    assert len(result.games) == 4 * 9 * 2
    summary = result.summary()
    for column in ("precommit", "no_precommit"):
        for key in ("honest_first", "liar_first", "mean"):
            cell = summary[column][key]
            assert cell["low"] <= cell["rate"] <= cell["high"]
    assert 0 <= summary["judge_alone"]["rate"] <= 1
    from rich.console import Console

    console = Console(record=True, width=150)
    console.print(render_table(summary))
    text = console.export_text()
    for label in ("honest first", "liar first", "mean", "judge alone", "no precommit",
                  "precommit", "48.2% / 85.2%"):
        assert label in text
