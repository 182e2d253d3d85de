"""One small stored image debate (Irving et al. 2018), for tests that need pixel debates
in the store: the first digits test image, k = 2, minimax honest vs minimax liar."""

from __future__ import annotations

from pathlib import Path

import torch

from debate.pixels.data import digits_split
from debate.pixels.game import Board
from debate.pixels.judge import load_judge
from debate.pixels.players import MinimaxPlayer
from debate.pixels.store import store_games
from debate.pixels.table import run_table
from debate.store.db import Store


def store_small_pixel_debate(store: Store, judge_path: Path, name: str) -> None:
    """Play and store the games of one image as experiment `name` (judge: the k = 2
    sparse-pixel judge at `judge_path`)."""
    torch.set_num_threads(1)
    data = digits_split()[1].head(1)
    board = Board(data, load_judge(judge_path).judge)
    result = run_table(board, 2, MinimaxPlayer(), MinimaxPlayer())
    store_games(store, name=name, data=data, image_ids={0: 0}, k=2,
                games=result.games, honest_name="minimax-honest", liar_name="minimax-liar",
                judge_name="pixel-judge", judge_settings={"k": 2}, config={"k": 2})
