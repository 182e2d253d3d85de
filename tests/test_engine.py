"""The batched engine against a real store (SQLite file and PostgreSQL): batching, one
transaction per step, determinism, what each turn records, and every protocol family."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from engine_agents import (
    PASSAGES,
    ExplodingDebater,
    FailingTurnsDebater,
    RecordingDebater,
    make_config,
    setup_experiment,
    transcript_snapshot,
    write_questions,
)
from sqlalchemy import event, func, select

from debate.agents.base import WordLimitedDebater
from debate.engine import Engine, EngineOptions
from debate.protocols import JUDGE
from debate.quotes import TRUNCATION_MARK, count_words
from debate.run import run_experiment
from debate.steps import request_sha256
from debate.store import open_store
from debate.store.models import Agent, Debate, Quote, Seat, Turn
from debate.store.runs import DebateUpdate, claim_debates, reset_failed, write_step
from debate.store.turns import TurnWrite


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    return write_questions(tmp_path / "questions.jsonl", 6)


def count(store, model, *where) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_each_agent_gets_one_call_per_step_with_the_whole_batch(store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate", "rounds": 3}, both_orders=True,
                      honest_debater={"type": "scripted", "name": "honest"},
                      deceptive_debater={"type": "scripted", "name": "deceptive"})
    honest, deceptive = RecordingDebater("honest"), RecordingDebater("deceptive")
    exp, agents = setup_experiment(store, cfg, {"honest": honest, "deceptive": deceptive},
                                   tmp_path)
    stats = Engine(store, agents).run(exp)

    n_debates = 12  # 6 questions x both answer orders
    assert stats.steps == 6 and stats.turns == n_debates * 6 and stats.debates_done == n_debates
    for agent in (honest, deceptive):
        # Each step has honest and deceptive speakers (seats follow the answer order).
        assert len(agent.calls) == 6
        for batch in agent.calls:
            assert len(batch) == n_debates // 2
            assert len({r.debate_id for r in batch}) == len(batch)
            assert len({(r.round, r.role) for r in batch}) == 1  # one step per call
    assert count(store, Turn) == n_debates * 6
    assert count(store, Debate, Debate.status == "done") == n_debates


def test_one_agent_for_both_seats_is_called_once_per_step(sqlite_store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate-simultaneous", "rounds": 2}, both_orders=True)
    agent = RecordingDebater("scripted")
    exp, agents = setup_experiment(sqlite_store, cfg, {"honest": agent, "deceptive": agent},
                                   tmp_path)
    Engine(sqlite_store, agents).run(exp)
    # Simultaneous rounds: one step per round, both seats of all 12 debates in one call.
    assert [len(batch) for batch in agent.calls] == [24, 24]


def test_each_seat_is_told_and_held_to_its_own_word_limit(store, questions, tmp_path):
    """An agent's own max_words tightens the protocol's for its seat only: its requests
    carry it (what a prompt states), and its turns are cut to it with the engine's mark,
    while the other seat gets and keeps the protocol's limits."""
    cfg = make_config(questions, {"name": "debate", "rounds": 2, "max_words": 12,
                                  "max_quoted_words": 10}, both_orders=True,
                      honest_debater={"type": "scripted", "name": "honest", "max_words": 5},
                      deceptive_debater={"type": "scripted", "name": "deceptive"})
    honest, deceptive = RecordingDebater("honest"), RecordingDebater("deceptive")
    exp, agents = setup_experiment(
        store, cfg, {"honest": WordLimitedDebater(honest, 5), "deceptive": deceptive}, tmp_path)
    assert Engine(store, agents).run(exp).debates_done == 12
    told = {name: {(r.limits.min_words, r.limits.max_words, r.limits.max_quoted_words)
                   for call in agent.calls for r in call}
            for name, agent in (("honest", honest), ("deceptive", deceptive))}
    assert told == {"honest": {(0, 5, 5)}, "deceptive": {(0, 12, 10)}}
    with store.session() as s:
        rows = s.execute(select(Agent.name, Agent.settings, Turn.text, Turn.status, Turn.meta)
                         .join(Agent, Agent.id == Turn.agent_id)).all()
    assert {r.name: r.settings.get("max_words") for r in rows} == {"honest": 5,
                                                                   "deceptive": None}
    for r in rows:
        limit = 5 if r.name == "honest" else 12
        # the scripted template is longer than 12 words: every turn is cut, and marked
        assert r.status == "truncated" and r.text.endswith(TRUNCATION_MARK), r
        assert count_words(r.text.removesuffix(TRUNCATION_MARK)) == limit
        assert count_words(r.meta["raw_text"]) > 12


def test_each_step_is_written_in_one_transaction(sqlite_store, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 1200)
    cfg = make_config(questions, {"name": "debate", "rounds": 1})
    agent = RecordingDebater("scripted")
    exp, agents = setup_experiment(sqlite_store, cfg, {"honest": agent, "deceptive": agent},
                                   tmp_path)
    commits_with_turns: list[set[str]] = []
    seen_after_step: list[int] = []

    @event.listens_for(sqlite_store.engine, "before_cursor_execute")
    def _mark(conn, cursor, statement, params, context, executemany):
        words = statement.split()
        if words[:2] == ["INSERT", "INTO"] or words[:1] == ["UPDATE"]:
            table = words[2] if words[0] == "INSERT" else words[1]
            conn.info.setdefault("writes", set()).add(f"{words[0]} {table}")

    @event.listens_for(sqlite_store.engine, "commit")
    def _commit(conn):
        writes = conn.info.pop("writes", set())
        if "INSERT turns" in writes:
            commits_with_turns.append(writes)

    def after_step(stats, _active):
        seen_after_step.append(count(sqlite_store, Turn))

    Engine(sqlite_store, agents, progress=after_step).run(exp)
    # Two steps (A, then B): one commit each, holding the turns, their quotes and the
    # debates' new state together.
    assert commits_with_turns == [{"INSERT turns", "INSERT quotes", "UPDATE debates"}] * 2
    assert seen_after_step == [1200, 2400]  # never a partial step


def test_runs_are_seeded_and_deterministic(tmp_path, questions):
    def run(name: str, seed: int, claim: int | None) -> dict:
        store = open_store(f"sqlite:///{tmp_path / name}")
        cfg = make_config(questions, "open-debate", seed=seed, both_orders=True,
                          debater={"type": "scripted", "choose": "second"})
        run_experiment(store, cfg, tmp_path, show_progress=False, claim_size=claim)
        snap = transcript_snapshot(store)
        store.dispose()
        return snap

    first = run("a.db", seed=3, claim=None)
    assert first == run("b.db", seed=3, claim=5)  # same seed, other chunking: same debates
    assert all(status == "done" for _, status, _, _ in first.values())
    other = run("c.db", seed=4, claim=None)
    assert {k[0]: v[0] for k, v in first.items()} != {k[0]: v[0] for k, v in other.items()}


def test_turn_records_text_prompt_tokens_latency_and_agent(store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate", "rounds": 1, "max_words": 20},
                      debater={"type": "scripted", "name": "rec"})
    agent = RecordingDebater("rec")
    exp, agents = setup_experiment(store, cfg, {"honest": agent, "deceptive": agent}, tmp_path)
    worker = "host-x:1:test"
    Engine(store, agents, EngineOptions(worker=worker)).run(exp)
    with store.session() as s:
        turns = s.scalars(select(Turn).order_by(Turn.id)).all()
        assert len(turns) == 12
        for t in turns:
            assert t.shown and t.shown_sha256 == hashlib.sha256(t.shown.encode()).hexdigest()
            assert t.template_version == "test-v1"
            assert t.prompt_tokens == 101 and t.completion_tokens and t.completion_tokens > 0
            assert t.latency_ms is not None and t.latency_ms >= 0
            assert t.meta["worker"] == worker
            # The template runs past 20 words: the text is cut, the raw text is kept.
            assert t.status == "truncated" and t.text.endswith("[truncated]")
            assert t.meta["raw_text"].startswith(t.text.removesuffix(" [truncated]")[:20])
            who = s.get(Agent, t.agent_id)
            assert (who.name, who.kind) == ("rec", "scripted")
            assert who.settings["template"]
        quotes = s.scalars(select(Quote)).all()
        assert quotes and all(q.verified for q in quotes), [(q.text, q.verified) for q in quotes]
        for q in quotes:
            source = next(p for p in PASSAGES if q.source_end and len(p) >= q.source_end
                          and p[q.source_start:q.source_end].lower() == q.text.lower())
            assert source


def test_scripted_turns_store_a_hash_of_the_request(sqlite_store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate", "rounds": 1})
    result = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 6}
    with sqlite_store.session() as s:
        rows = s.execute(select(Turn.shown, Turn.shown_sha256, Turn.template_version)).all()
    assert all(shown is None and len(h) == 64 for shown, h, _ in rows)
    assert {v for _, _, v in rows} == {"template"}
    assert len({h for _, h, _ in rows}) == len(rows)  # each request differs
    assert request_sha256  # the engine's digest of what the speaker was shown


def _requests(agent: RecordingDebater):
    return [r for batch in agent.calls for r in batch]


def test_sequential_and_simultaneous_visibility(sqlite_store, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 2)
    seen = {}
    for name in ("debate", "debate-simultaneous"):
        cfg = make_config(questions, {"name": name, "rounds": 2}, name=name)
        agent = RecordingDebater("scripted")
        exp, agents = setup_experiment(sqlite_store, cfg, {"honest": agent, "deceptive": agent},
                                       tmp_path)
        Engine(sqlite_store, agents).run(exp)
        seen[name] = {(r.debate_id, r.role, r.round): [(t.role, t.round) for t in r.transcript]
                      for r in _requests(agent)}
    seq = seen["debate"]
    d = min(k[0] for k in seq)
    assert seq[(d, "A", 1)] == []
    assert seq[(d, "B", 1)] == [("A", 1)]  # in sequence, B answers A
    assert seq[(d, "A", 2)] == [("A", 1), ("B", 1)]
    sim = seen["debate-simultaneous"]
    d = min(k[0] for k in sim)
    assert sim[(d, "A", 1)] == [] and sim[(d, "B", 1)] == []  # blind to each other
    assert sorted(sim[(d, "B", 2)]) == [("A", 1), ("B", 1)]  # not A's round 2


@pytest.mark.parametrize("protocol", ["interactive-debate", "interactive-consultancy"])
def test_interactive_protocols_ask_judge_questions(sqlite_store, tmp_path, protocol):
    questions = write_questions(tmp_path / "q.jsonl", 2)
    cfg = make_config(questions, {"name": protocol, "rounds": 3},
                      interactive_judge={"type": "scripted", "name": "judge",
                                         "question_template": "Which line decides it?"})
    debater, judge = RecordingDebater("scripted"), RecordingDebater(
        "judge", question_template="Which line decides it?")
    exp, agents = setup_experiment(
        sqlite_store, cfg, {"honest": debater, "deceptive": debater, "judge": judge}, tmp_path)
    Engine(sqlite_store, agents).run(exp)
    with sqlite_store.session() as s:
        judge_turns = s.execute(
            select(Turn.round, Turn.kind, Turn.text).where(Turn.role == JUDGE)).all()
        n_debates = s.scalar(select(func.count()).select_from(Debate))
        assert s.scalar(select(func.count()).select_from(Debate).where(
            Debate.status != "done")) == 0
    assert sorted({(r, k) for r, k, _ in judge_turns}) == [(1, "question"), (2, "question")]
    assert len(judge_turns) == 2 * n_debates
    assert {t for _, _, t in judge_turns} == {"Which line decides it?"}
    jreqs = _requests(judge)
    assert jreqs and all(r.kind == "question" and r.source is None for r in jreqs)
    for r in _requests(debater):
        assert r.source is not None
        judged = [(t.role, t.round) for t in r.transcript if t.role == JUDGE]
        assert judged == [(JUDGE, k) for k in range(1, r.round)]  # saw every earlier question


@pytest.mark.parametrize("protocol", ["open-debate", "open-consultancy"])
def test_open_protocols_choice_turn_sets_the_seats(store, tmp_path, protocol):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    cfg = make_config(questions, protocol, debater={"type": "scripted", "choose": "second"})
    result = run_experiment(store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 3}
    with store.session() as s:
        for d in s.scalars(select(Debate)):
            seats = dict(s.execute(select(Seat.role, Seat.answer_index)
                                   .where(Seat.debate_id == d.id)).all())
            chooser = "A" if protocol == "open-debate" else "consultant"
            assert seats[chooser] == d.answer_order[1]  # chose the second answer shown
            if protocol == "open-debate":
                assert seats["B"] == d.answer_order[0]
            choice = s.execute(select(Turn.step, Turn.round, Turn.meta).where(
                Turn.debate_id == d.id, Turn.kind == "choice")).one()
            assert choice.step == 0 and choice.round == 0
            assert choice.meta["choice"] == d.answer_order[1]
            speeches = s.scalars(select(Turn.text).where(
                Turn.debate_id == d.id, Turn.role == chooser, Turn.kind == "speech")).all()
            answer_text = s.scalar(select(Debate).where(Debate.id == d.id)).question.answers[
                d.answer_order[1]]
            assert speeches and all(answer_text in t for t in speeches)


def test_consultancy_runs_honest_and_deceptive(store, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 4)
    cfg = make_config(questions, {"name": "consultancy", "rounds": 2},
                      honest_debater={"type": "scripted", "name": "honest"},
                      deceptive_debater={"type": "scripted", "name": "deceptive"})
    result = run_experiment(store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 8}
    with store.session() as s:
        rows = s.execute(
            select(Debate.variant, Seat.answer_index, Agent.name, Debate.question_id)
            .join(Seat, Seat.debate_id == Debate.id).join(Agent, Agent.id == Seat.agent_id)
        ).all()
        correct = {d.id: d.question.correct_index for d in s.scalars(select(Debate))}
        qid_correct = {d.question_id: c for d in s.scalars(select(Debate))
                       for i, c in correct.items() if i == d.id}
        assert s.scalar(select(func.count()).select_from(Turn)) == 8 * 2
    assert sorted(v.split(",")[1] for v, *_ in rows) == ["deceptive"] * 4 + ["honest"] * 4
    for variant, answer, agent_name, qid in rows:
        honest = variant.endswith("honest")
        assert (answer == qid_correct[qid]) == honest
        assert agent_name == ("honest" if honest else "deceptive")


@pytest.mark.parametrize("protocol", ["naive-judge", "expert-judge"])
def test_judge_only_protocols_create_finished_debates(store, tmp_path, protocol):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    cfg = make_config(questions, protocol, both_orders=True)
    result = run_experiment(store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 6} and result.stats.turns == 0
    assert count(store, Turn) == 0
    assert count(store, Debate, Debate.finished_at.is_(None)) == 0


def test_agent_exception_leaves_debates_consistent_and_resumable(store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate", "rounds": 2},
                      debater={"type": "scripted", "name": "flaky"})
    flaky = ExplodingDebater(explode_on=3, name="flaky")
    exp, agents = setup_experiment(store, cfg, {"honest": flaky, "deceptive": flaky}, tmp_path)
    stats = Engine(store, agents).run(exp)

    assert stats.debates_failed == 6 and "RuntimeError: model server went away" in stats.errors[0]
    with store.session() as s:
        errors = set(s.scalars(select(Debate.error)))
        steps = set(s.scalars(select(Debate.steps_done)))
        turn_steps = s.execute(select(Turn.step, func.count()).group_by(Turn.step)).all()
    assert len(errors) == 1 and "model server went away" in errors.pop()
    assert steps == {2}
    assert sorted(turn_steps) == [(0, 6), (1, 6)]  # the failed step left nothing behind

    # A rerun retries them and ends where an uninterrupted run ends.
    assert reset_failed(store, exp) == 6
    good = RecordingDebater("flaky")
    stats = Engine(store, {aid: good for aid in agents}).run(exp)
    assert stats.debates_done == 6 and len(good.calls) == 2  # only the missing steps
    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    run_experiment(reference, cfg, tmp_path, show_progress=False)
    assert transcript_snapshot(store) == transcript_snapshot(reference)
    reference.dispose()


def test_failed_turn_fails_its_debate_and_a_rerun_retries_it(store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate-simultaneous", "rounds": 2},
                      debater={"type": "scripted", "name": "rec"})
    probe = RecordingDebater("rec")
    exp, agents = setup_experiment(store, cfg, {"honest": probe, "deceptive": probe}, tmp_path)
    with store.session() as s:
        first, second = s.scalars(select(Debate.id).order_by(Debate.id).limit(2)).all()
    failing = FailingTurnsDebater({first}, fail_round=2, name="rec")
    stats = Engine(store, {aid: failing for aid in agents}).run(exp)
    assert stats.debates_failed == 1 and stats.debates_done == 5
    with store.session() as s:
        d = s.get(Debate, first)
        assert d.status == "failed" and d.error == "generation timed out"
        assert d.lease_owner is None
        failed_turns = s.scalars(select(Turn).where(Turn.debate_id == first,
                                                    Turn.status == "failed")).all()
        assert {(t.round, t.meta["error"]) for t in failed_turns} == {
            (2, "generation timed out")}
        assert s.get(Debate, second).status == "done"

    # `debate run` on the same experiment resets the failed debate and finishes it.
    result = run_experiment(store, cfg, tmp_path, show_progress=False)
    assert result.reset == 1 and result.counts == {"done": 6} and result.stats.turns == 2
    assert count(store, Turn, Turn.status == "failed") == 0
    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    run_experiment(reference, cfg, tmp_path, show_progress=False)
    assert transcript_snapshot(store) == transcript_snapshot(reference)
    reference.dispose()


def test_a_step_for_debates_whose_lease_was_taken_over_is_dropped(store, questions, tmp_path):
    cfg = make_config(questions, {"name": "debate", "rounds": 1})
    agent = RecordingDebater("scripted")
    exp, _ = setup_experiment(store, cfg, {"honest": agent, "deceptive": agent}, tmp_path)
    ids = claim_debates(store, exp, "w1", 100, lease_seconds=60)
    assert len(ids) == 6
    # Someone else holds one of them now (as after an expired lease).
    with store.session() as s:
        s.get(Debate, ids[0]).lease_owner = "w2"
    assert claim_debates(store, exp, "w3", 100, lease_seconds=60) == []  # all held

    writes = [TurnWrite(i, 0, 1, "A", "speech", None, None, "hi", "ok", None, None, None, None,
                        None, None, None, {}, []) for i in ids]
    lost = write_step(store, "w1", writes, [DebateUpdate(i, 1, "running") for i in ids], 60)
    assert lost == {ids[0]}
    assert count(store, Turn) == 5 and count(store, Turn, Turn.debate_id == ids[0]) == 0
