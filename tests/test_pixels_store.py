"""Pixel debates in the store (SQLite and PostgreSQL), and the view people judge from."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import func, select

from debate.errors import UserError
from debate.pixels.data import digits_split
from debate.pixels.game import Board
from debate.pixels.judge import load_judge
from debate.pixels.players import MinimaxPlayer
from debate.pixels.store import store_games
from debate.pixels.table import run_table
from debate.pixels.view import HIDDEN, pixel_debate_view
from debate.store.models import Debate, Experiment, Judgment, Question, Seat, Turn


@pytest.fixture
def stored(store, pixel_judges: dict[int, Path]):
    torch.set_num_threads(1)
    data = digits_split()[1].head(2)
    board = Board(data, load_judge(pixel_judges[2]).judge)
    player = MinimaxPlayer()
    result = run_table(board, 2, player, player)
    exp_id, _name = store_games(
        store, name="pixels-test", data=data, image_ids={0: 0, 1: 1}, k=2, games=result.games,
        honest_name="minimax", liar_name="minimax", judge_name="pixels-judge-digits-k2",
        judge_settings={"k": 2}, config={"k": 2, "results": result.summary()},
    )
    return store, exp_id, data, result


def test_games_are_stored_as_debates(stored) -> None:
    store, exp_id, data, _result = stored
    with store.session() as s:
        exp = s.get(Experiment, exp_id)
        assert (exp.protocol, exp.source) == ("pixel-debate", "pixels")
        assert s.scalar(select(func.count()).select_from(Question)) == 2 * 9
        debates = s.scalars(select(Debate).where(Debate.experiment_id == exp_id)).all()
        assert len(debates) == 2 * 9 * 2
        assert {d.variant for d in debates} == {"honest-first", "liar-first"}
        assert all(d.status == "done" and d.protocol_spec["family"] == "pixel" for d in debates)
        assert s.scalar(select(func.count()).select_from(Turn)) == len(debates) * 2
        assert s.scalar(select(func.count()).select_from(Seat)) == len(debates) * 2

        d = next(d for d in debates if d.variant == "liar-first")
        q = s.get(Question, d.question_id)
        assert q.correct_index == 0
        assert q.answers[0] == str(int(data.labels[q.meta["split_index"]]))
        assert np.array_equal(np.array(q.meta["image"]), data.images[q.meta["split_index"]])
        assert d.answer_order == [1, 0]  # A (first speaker) is the liar, A's claim shown first
        seats = {seat.role: seat.answer_index for seat in d.seats}
        assert seats == {"A": 1, "B": 0}
        turns = s.scalars(select(Turn).where(Turn.debate_id == d.id).order_by(Turn.step)).all()
        assert [(t.role, t.round, t.kind) for t in turns] == [("A", 1, "pixel"), ("B", 1, "pixel")]
        for t in turns:
            row, col = t.meta["pixel"]
            value = int(q.meta["image"][row][col])
            assert value > 0 and t.meta["value"] == value
            assert t.text == f"({row}, {col}) = {value}"
            assert len(t.text.split()) <= d.protocol_spec["limits"]["max_words"]
        assert d.protocol_spec["rounds"] == 1  # k = 2: one pixel each
        j = s.scalars(select(Judgment).where(Judgment.debate_id == d.id)).one()
        assert len(j.meta["logits"]) == 10
        assert sum(j.probabilities) == pytest.approx(1.0)
        truth, lie = int(q.answers[0]), int(q.answers[1])
        honest_won = j.meta["logits"][truth] > j.meta["logits"][lie]
        assert (j.probabilities[0] > 0.5) == honest_won


def test_view_shows_revealed_pixels_and_claims_without_truth(stored) -> None:
    store, exp_id, _data, _ = stored
    with store.session() as s:
        d = s.scalars(select(Debate).where(Debate.experiment_id == exp_id,
                                           Debate.variant == "liar-first")).first()
        q = s.get(Question, d.question_id)
        turns = s.scalars(select(Turn).where(Turn.debate_id == d.id)).all()
    view = pixel_debate_view(store, d.id)
    assert view.claims == (q.answers[1], q.answers[0])  # display order: A (the liar) first
    assert not hasattr(view, "correct_index") and not hasattr(view, "label")
    img = Image.open(io.BytesIO(view.png)).convert("RGB")
    cell = img.width // 8
    assert img.size == (8 * cell, 8 * cell)
    revealed = {tuple(t.meta["pixel"]) for t in turns}
    assert {(p.row, p.col) for p in view.revealed} == revealed
    for r in range(8):
        for c in range(8):
            centre = img.getpixel((c * cell + cell // 2 - 3, r * cell + cell // 2 + 5))
            if (r, c) in revealed:
                assert centre[0] == centre[1] == centre[2]  # grey ink, not the hidden colour
            else:
                assert centre == HIDDEN
    # Stepped judging: only the first turns.
    first = pixel_debate_view(store, d.id, turns=1)
    assert len(first.revealed) == 1


def test_view_refuses_unknown_and_non_pixel_debates(stored) -> None:
    store, *_ = stored
    with pytest.raises(UserError, match="debate 999999: not found"):
        pixel_debate_view(store, 999999)
