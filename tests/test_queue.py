"""The human judging queue on SQLite and PostgreSQL: limits, no repeated question, atomic
assignment under concurrency, validation that stores nothing on refusal."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from web_world import add_accounts, run_scripted

from debate.store.models import Assignment, Feedback, Judgment
from debate.users import get_user
from judges import queue


@pytest.fixture
def world(store, tmp_path: Path):
    run_scripted(store, tmp_path, "exp", n_questions=6, rounds=2)
    add_accounts(store, *[(f"j{i}", "judge") for i in range(8)], ("deb", "debater"))
    return store


def _count(store, model, *where) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def judge_all(store, user, campaign_id, limit=100) -> list[queue.AssignmentInfo]:
    got = []
    for _ in range(limit):
        a = queue.next_assignment(store, user, campaign_id)
        if a is None:
            return got
        got.append(a)
        for r in range(max(a.rounds_shown, 1), 3 if a.rounds_shown else 2):
            queue.submit_judgment(store, user, a.id, a.debate_id, r if a.rounds_shown else 0,
                                  [60, 40], "seen it")
    assert limit < 100, "queue never ran dry"
    return got


def test_limits_and_no_repeated_question(world):
    c = queue.create_campaign(world, name="c", experiment="exp", judgments_per_debate=2)
    users = [get_user(world, f"j{i}") for i in range(3)]
    per_user = {u.name: judge_all(world, u, c.id) for u in users}
    for name, items in per_user.items():
        qids = [a.question_id for a in items]
        assert len(qids) == len(set(qids)) == 6, name  # every question once, never twice
    with world.session() as s:
        counts = Counter(s.scalars(select(Assignment.debate_id)))
    assert max(counts.values()) <= 2
    assert sum(counts.values()) == 18
    assert _count(world, Judgment, Judgment.kind == "final") == 18


def test_open_assignment_survives_refresh(world):
    c = queue.create_campaign(world, name="c", experiment="exp")
    u = get_user(world, "j0")
    first = queue.next_assignment(world, u, c.id)
    again = queue.next_assignment(world, u, c.id)
    assert first is not None and again is not None and first.id == again.id
    assert queue.open_assignment(world, u.id, c.id).id == first.id
    assert queue.judge_view(world, again).debate_id == first.debate_id


def test_concurrent_judges_never_overfill(world):
    c = queue.create_campaign(world, name="c", experiment="exp", judgments_per_debate=1)
    users = [get_user(world, f"j{i}") for i in range(8)]
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []

    def work(user):
        try:
            barrier.wait()
            while True:
                a = queue.next_assignment(world, user, c.id)
                if a is None:
                    return
                queue.submit_judgment(world, user, a.id, a.debate_id, a.rounds_shown, [50, 50],
                                      "x")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with world.session() as s:
        rows = s.execute(select(Assignment.debate_id, Assignment.user_id,
                                Assignment.question_id)).all()
    assert len(rows) == 12  # 6 questions x 2 orders, each judged exactly once
    assert len({r.debate_id for r in rows}) == 12
    per_user = Counter((r.user_id, r.question_id) for r in rows)
    assert max(per_user.values()) == 1


def test_access_rules(world):
    c = queue.create_campaign(world, name="c", experiment="exp", judges=["j0"])
    # not open to them, closed, or missing: one answer that names nothing
    missing = f"no campaign with id {c.id} is open to you"
    with pytest.raises(queue.QueueError, match=missing):
        queue.next_assignment(world, get_user(world, "j1"), c.id)
    with pytest.raises(queue.QueueError, match=missing):
        queue.next_assignment(world, get_user(world, "deb"), c.id)
    queue.set_campaign_active(world, c.id, False)
    with pytest.raises(queue.QueueError, match=missing):
        queue.next_assignment(world, get_user(world, "j0"), c.id)
    assert queue.campaigns_for(world, get_user(world, "j0")) == []


CAMPAIGN_ERRORS = [
    ({"experiment": "nope"}, "experiment: no experiment called 'nope'"),
    ({"mode": "weird"}, "mode: 'weird' is not one of"),
    ({"judgments_per_debate": 0}, "judgments_per_debate"),
    ({"judges": ["ghost"]}, "judges: no user called 'ghost'"),
    ({"judges": ["deb"]}, "judges: 'deb' is a debater"),
    ({"name": " "}, "name: give a campaign name"),
]


def test_campaign_validation(world):
    for kwargs, message in CAMPAIGN_ERRORS:
        args = {"name": "c", "experiment": "exp"} | kwargs
        with pytest.raises(queue.QueueError, match=message):
            queue.create_campaign(world, **args)
    assert queue.list_campaigns(world) == []
    queue.create_campaign(world, name="c", experiment="exp")
    with pytest.raises(queue.QueueError, match="already exists"):
        queue.create_campaign(world, name="c", experiment="exp")


def test_refusals_store_nothing(world):
    c = queue.create_campaign(world, name="c", experiment="exp")
    j0, j1 = get_user(world, "j0"), get_user(world, "j1")
    a = queue.next_assignment(world, j0, c.id)
    bad = [
        (([0.5, 99.5], "x"), "outside 1-99%"),
        (([99, 2], "x"), "sum to 101%"),
        (([150, -50], "x"), "outside"),
        ((["nan", 50], "x"), "outside|not a number"),
        ((["abc", 50], "x"), "not a number"),
        (([50, 50, 0], "x"), "expected 2 values"),
        (([50, 50], "   "), "explanation: required"),
        (([50, 50], "w" * (queue.MAX_EXPLANATION + 1)), "over the limit"),
    ]
    for (probs, text), message in bad:
        with pytest.raises(queue.QueueError, match=message):
            queue.submit_judgment(world, j0, a.id, a.debate_id, a.rounds_shown, probs, text)
    with pytest.raises(queue.QueueError, match="not assigned to you"):
        queue.submit_judgment(world, j1, a.id, a.debate_id, a.rounds_shown, [50, 50], "x")
    with pytest.raises(queue.QueueError, match="not assigned to you"):
        queue.submit_judgment(world, j0, a.id, a.debate_id + 1, a.rounds_shown, [50, 50], "x")
    with pytest.raises(queue.QueueError, match="round"):
        queue.submit_judgment(world, j0, a.id, a.debate_id, 7, [50, 50], "x")
    assert _count(world, Judgment) == 0
    ok = queue.submit_judgment(world, j0, a.id, a.debate_id, a.rounds_shown, [70, 30], "fine")
    assert ok.final and ok.reveal is not None
    with pytest.raises(queue.QueueError, match="already submitted"):
        queue.submit_judgment(world, j0, a.id, a.debate_id, a.rounds_shown, [70, 30], "again")
    assert _count(world, Judgment) == 1


def test_stepped_judgments_and_reveal(world):
    c = queue.create_campaign(world, name="c", experiment="exp", mode="stepped",
                              reveal_truth=False)
    j0 = get_user(world, "j0")
    a = queue.next_assignment(world, j0, c.id)
    assert a.rounds_shown == 1
    view = queue.judge_view(world, a)
    assert view.total_rounds == 2 and {t.round for t in view.turns} == {1}
    r1 = queue.submit_judgment(world, j0, a.id, a.debate_id, 1, [20, 80], "round one")
    assert not r1.final and r1.after_round == 1 and r1.next_round == 2 and r1.reveal is None
    a2 = queue.next_assignment(world, j0, c.id)
    assert a2.id == a.id and a2.rounds_shown == 2
    assert {t.round for t in queue.judge_view(world, a2).turns} == {1, 2}
    r2 = queue.submit_judgment(world, j0, a.id, a.debate_id, 2, [35, 65], "round two")
    assert r2.final and r2.after_round == 2 and r2.reveal is None  # campaign hides the truth
    with world.session() as s:
        rows = s.execute(select(Judgment.kind, Judgment.after_round, Judgment.probabilities,
                                Judgment.shown_order, Judgment.time_taken_ms, Judgment.user_id)
                         .order_by(Judgment.id)).all()
    assert [(r.kind, r.after_round) for r in rows] == [("stepped", 1), ("final", 2)]
    order = rows[0].shown_order
    # probabilities are stored in the question's own answer order
    assert rows[1].probabilities[order[0]] == pytest.approx(0.35)
    assert rows[1].probabilities[order[1]] == pytest.approx(0.65)
    assert all(r.time_taken_ms is not None and r.time_taken_ms >= 0 for r in rows)
    assert {r.user_id for r in rows} == {j0.id}


def test_feedback(world):
    c = queue.create_campaign(world, name="c", experiment="exp")
    j0, j1 = get_user(world, "j0"), get_user(world, "j1")
    a = queue.next_assignment(world, j0, c.id)
    res = queue.submit_judgment(world, j0, a.id, a.debate_id, a.rounds_shown, [50, 50], "x")
    scores = {"clarity": 4, "evidence": 2, "confidence": 5}
    with pytest.raises(queue.QueueError, match="not yours"):
        queue.record_feedback(world, j1, res.judgment_id, scores)
    with pytest.raises(queue.QueueError, match="clarity"):
        queue.record_feedback(world, j0, res.judgment_id, scores | {"clarity": 9})
    with pytest.raises(queue.QueueError, match="evidence"):
        queue.record_feedback(world, j0, res.judgment_id, scores | {"evidence": None})
    assert _count(world, Feedback) == 0
    queue.record_feedback(world, j0, res.judgment_id, scores, "clear enough")
    with pytest.raises(queue.QueueError, match="already"):
        queue.record_feedback(world, j0, res.judgment_id, scores)
    with world.session() as s:
        fb = s.scalars(select(Feedback)).one()
    assert fb.answers == scores | {"comment": "clear enough"} and fb.user_id == j0.id


def test_progress(world):
    c = queue.create_campaign(world, name="c", experiment="exp", judgments_per_debate=2)
    j0 = get_user(world, "j0")
    judge_all(world, j0, c.id, limit=3)
    p = queue.progress(world, j0, c.id)
    assert (p.mine, p.mine_possible, p.campaign_total) == (3, 6, 24)
    assert p.campaign_done == 3
