"""The judging-queue benchmark's naive arm keeps the queue's rules (so the ratio compares
the same service), and its server-side run checks every pair of calls."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from debate.store import open_store
from debate.store.models import Turn
from judges.queue import (
    QueueError,
    create_campaign,
    next_with_view,
    set_campaign_active,
    submit_judgment,
)

ROOT = Path(__file__).resolve().parents[1]
# The benchmark, loaded from its file (benchmarks/ is not on sys.path: its judges.py
# would hide the judges package).
_SPEC = importlib.util.spec_from_file_location(
    "judging_queue_benchmark", ROOT / "benchmarks" / "judging_queue.py")
JUDGING_QUEUE = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = JUDGING_QUEUE  # its dataclasses look their module up
_SPEC.loader.exec_module(JUDGING_QUEUE)


@pytest.fixture(scope="module")
def bench():
    return JUDGING_QUEUE


def _seeded(bench, tmp_path: Path, names: list[str]):
    store = open_store(f"sqlite:///{tmp_path / 'queue.db'}")
    bench.seed(store, 40, names)  # 20 questions, debates 2q-1 and 2q in both orders
    return store


def test_naive_queue_skips_what_the_judge_has_seen_like_ours(bench, tmp_path: Path):
    store = _seeded(bench, tmp_path, ["ours0", "naive0"])
    ours, naive = bench.users(store, ["ours0", "naive0"])
    # Each argued question 1 as a debater (one answer order each) ...
    with store.session() as s:
        s.execute(update(Turn).where(Turn.debate_id == 1, Turn.role == "A")
                  .values(user_id=naive.id))
        s.execute(update(Turn).where(Turn.debate_id == 2, Turn.role == "A")
                  .values(user_id=ours.id))
    # ... and judged question 2 in another campaign.
    other = create_campaign(store, name="other", experiment=bench.EXPERIMENT)
    for user, call in ((ours, lambda u: next_with_view(store, u, other)),
                       (naive, lambda u: bench.naive_next(store, u, other.id))):
        a, _view, _prog = call(user)
        assert a.question_id == 2
        submit_judgment(store, user, a.id, a.debate_id, a.rounds_shown, [60, 40], "seen")
    camp = {u.name: create_campaign(store, name=f"c-{u.name}", experiment=bench.EXPERIMENT,
                                    judges=[u.name]) for u in (ours, naive)}
    a_ours, view_ours, prog_ours = next_with_view(store, ours, camp["ours0"])
    a_naive, view_naive, prog_naive = bench.naive_next(store, naive, camp["naive0"].id)
    assert a_ours.question_id == a_naive.question_id == 3
    assert a_ours.debate_id == a_naive.debate_id == 5
    assert view_ours.turns == view_naive.turns and view_ours.answers == view_naive.answers
    assert prog_ours == prog_naive
    # an open assignment is handed out again, not a second debate
    assert bench.naive_next(store, naive, camp["naive0"].id)[0].id == a_naive.id
    # a campaign that allows repeats counts only its own assignments
    repeats = create_campaign(store, name="repeats", experiment=bench.EXPERIMENT,
                              judges=["naive0"], allow_repeats=True)
    assert bench.naive_next(store, naive, repeats.id)[0].debate_id == 1
    store.dispose()


def test_naive_queue_refuses_closed_and_foreign_campaigns(bench, tmp_path: Path):
    store = _seeded(bench, tmp_path, ["naive0", "naive1"])
    naive0, naive1 = bench.users(store, ["naive0", "naive1"])
    camp = create_campaign(store, name="c", experiment=bench.EXPERIMENT, judges=["naive0"])
    with pytest.raises(QueueError, match="no campaign with id"):
        bench.naive_next(store, naive1, camp.id)
    set_campaign_active(store, camp.id, False)
    with pytest.raises(QueueError, match="no campaign with id"):
        bench.naive_next(store, naive0, camp.id)
    store.dispose()


def test_server_side_run_pairs_the_same_debates(bench, tmp_path: Path):
    names = [f"{arm}{i}" for arm in ("ours", "naive") for i in range(3)]
    store = _seeded(bench, tmp_path, names)
    result = bench.server_side("sqlite", store, n_judges=3, rounds=2)
    assert result.checked == 6
    assert len(result.ours.wall_ms) == len(result.naive.wall_ms) == 6
    assert result.ratio > 0
    store.dispose()
