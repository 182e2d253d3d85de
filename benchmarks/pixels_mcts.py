"""MCTS for the pixel debate: leaf evaluations per second, batched vs one judge call a leaf.

    python benchmarks/pixels_mcts.py [--quick]

Both arms run the same search (debate.pixels.players.MctsPlayer, k = 4, the cached digits
judge) over the same games for one move: G games search together, each simulation step
judges one leaf per game. "batched" judges the G leaves in one call; "per-leaf" calls
the judge once for each leaf. Then the seconds per 4-pixel game at 10,000 rollouts per
move (1,000 with --quick), for one game alone and per game when 20 games search
together (anchor: a public PyTorch reproduction took 234 s per game on a CPU).

The last line is `pixels_mcts ratio=<batched/per-leaf leaf evaluations per second> target=10`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from debate.pixels.data import digits_split
from debate.pixels.game import Board, image_games, play
from debate.pixels.judge import ensure_judge
from debate.pixels.players import MctsPlayer


def leaf_rate(board: Board, images: int, rollouts: int, batched: bool) -> tuple[float, int]:
    games = image_games(board, np.arange(images), 4)
    player = MctsPlayer(rollouts=rollouts, seed=0, batched=batched)
    started = time.perf_counter()
    player.choose(board, games, np.arange(len(games)))
    seconds = time.perf_counter() - started
    return player.leaf_evaluations / seconds, len(games)


def seconds_per_game(board: Board, n_games: int, rollouts: int) -> float:
    games = image_games(board, np.arange(3), 4)
    pick = np.arange(n_games) % len(games)
    games.image, games.truth, games.lie = games.image[pick], games.truth[pick], games.lie[pick]
    games.honest_first = games.honest_first[pick]
    games.revealed = games.revealed[pick]
    player = MctsPlayer(rollouts=rollouts, seed=0)
    started = time.perf_counter()
    play(board, games, player, player)
    return (time.perf_counter() - started) / n_games


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = digits_split()
    judge = ensure_judge(4, train, test).judge
    board = Board(test.head(16), judge)
    images, rollouts = (4, 50) if args.quick else (16, 200)
    game_rollouts = 1_000 if args.quick else 10_000

    batched_rate, n_games = leaf_rate(board, images, rollouts, batched=True)
    single_rate, _ = leaf_rate(board, images, rollouts, batched=False)
    print(f"MCTS k=4, {n_games} games searching together, {rollouts} rollouts, one move, "
          f"torch threads={args.threads}")
    print(f"  batched judge calls (one per simulation step): {batched_rate:12,.0f} leaf evals/s")
    print(f"  one judge call per leaf:                       {single_rate:12,.0f} leaf evals/s")
    alone = seconds_per_game(board, 1, game_rollouts)
    together = seconds_per_game(board, 20, game_rollouts)
    print(f"4-pixel game (4 moves) at {game_rollouts:,} rollouts per move:")
    print(f"  one game alone:                 {alone:8.2f} s/game")
    print(f"  20 games searching together:    {together:8.2f} s/game")
    print("  anchor: a public PyTorch reproduction, 234 s/game at 10,000 rollouts per move (CPU)")
    print(f"pixels_mcts ratio={batched_rate / single_rate:.2f} target=10")


if __name__ == "__main__":
    main()
