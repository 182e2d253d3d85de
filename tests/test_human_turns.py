"""The human-turn service's own guarantees: its agent cache is bounded and closes what it
drops, its lease is a setting, and a person's turn is written through the store (one
writer, refusing a turn the debate no longer waits for)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_agents import write_questions
from sqlalchemy import select
from web_world import add_accounts, run_scripted

from debate.agents.base import AgentIdentity, Debater, TurnRequest, TurnResult
from debate.config import parse_config
from debate.errors import ConfigError
from debate.human_turns import (
    AgentCache,
    HumanTurnError,
    HumanTurnSettings,
    submit_human_turn,
    waiting_turns,
)
from debate.run import run_experiment
from debate.store.models import Debate, Quote, Turn
from debate.store.turns import TurnRefused, TurnWrite, write_waiting_turn
from debate.users import get_user

ROOT = Path(__file__).resolve().parents[1]


class Closable(Debater):
    def __init__(self, name: str):
        self.name, self.closed = name, 0

    @property
    def identity(self) -> AgentIdentity:
        return AgentIdentity(name=self.name, kind="test")

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        return [TurnResult(text="x") for _ in requests]

    def close(self) -> None:
        self.closed += 1


class FakeStore:
    url = "sqlite:///fake.db"


def test_agent_cache_is_bounded_and_closes_what_it_drops():
    built: dict[int, list[Closable]] = {}

    def build(store, experiment_id):
        agent = Closable(f"exp{experiment_id}-{len(built.get(experiment_id, []))}")
        built.setdefault(experiment_id, []).append(agent)
        return {1: agent}, [agent]

    cache = AgentCache(2, build)
    store = FakeStore()
    first = cache.get(store, 1)
    assert cache.get(store, 1) is first  # cached: built once
    cache.get(store, 2)
    cache.get(store, 1)  # 1 is now the most recently used
    cache.get(store, 3)  # evicts 2, the least recently used
    assert len(cache) == 2
    assert built[2][0].closed == 1 and built[1][0].closed == 0
    cache.get(store, 2)  # rebuilt, evicting 1
    assert len(built[2]) == 2 and built[1][0].closed == 1
    cache.clear()
    assert len(cache) == 0
    assert all(a.closed == 1 for agents in built.values() for a in agents)


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("DEBATE_LEASE_SECONDS", "45")
    monkeypatch.setenv("DEBATE_HUMAN_AGENT_CACHE", "7")
    assert HumanTurnSettings.from_env() == HumanTurnSettings(45.0, 7)
    monkeypatch.setenv("DEBATE_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="DEBATE_LEASE_SECONDS"):
        HumanTurnSettings.from_env()
    monkeypatch.setenv("DEBATE_LEASE_SECONDS", "-1")
    with pytest.raises(ConfigError, match="lease_seconds"):
        HumanTurnSettings.from_env()
    monkeypatch.delenv("DEBATE_LEASE_SECONDS")
    monkeypatch.setenv("DEBATE_HUMAN_AGENT_CACHE", "0")
    with pytest.raises(ConfigError, match="agent_cache_size"):
        HumanTurnSettings.from_env()


def _waiting_debate(store, tmp_path):
    add_accounts(store, ("p1", "debater"))
    run_scripted(store, tmp_path, "h", n_questions=1, rounds=1, both_orders=False,
                 honest={"type": "human", "user": "p1"})
    p1 = get_user(store, "p1")
    return p1, waiting_turns(store, "p1", p1.id)[0]


def test_waiting_turn_written_through_the_store_under_the_set_lease(sqlite_store, tmp_path):
    store = sqlite_store
    p1, pending = _waiting_debate(store, tmp_path)
    turn = TurnWrite(debate_id=pending.debate_id, step=0, round=pending.round,
                     role=pending.role, kind=pending.kind, agent_id=None, user_id=p1.id,
                     text="<quote>Boat number 0</quote>", status="ok",
                     quotes=[{"position": 0, "text": "Boat number 0", "verified": True,
                              "source_start": 0, "source_end": 13, "fuzzy_score": 1.0}])
    before = datetime.now(UTC)
    write_waiting_turn(store, turn, {}, "web:test", 42.0)
    with store.session() as s:
        debate = s.get(Debate, pending.debate_id)
        assert debate.status == "running" and debate.lease_owner == "web:test"
        expires = debate.lease_expires_at.replace(tzinfo=UTC)
        assert before + timedelta(seconds=41) < expires < datetime.now(UTC) + timedelta(seconds=43)
        tid = s.scalar(select(Turn.id).where(Turn.debate_id == pending.debate_id,
                                             Turn.user_id == p1.id))
        assert s.scalar(select(Quote.text).where(Quote.turn_id == tid)) == "Boat number 0"
    # the debate no longer waits: a second write of a turn is refused, nothing added
    with pytest.raises(TurnRefused, match="not waiting for a person any more"):
        write_waiting_turn(store, turn, {}, "web:other", 42.0)
    with store.session() as s:
        assert len(s.scalars(select(Turn.id).where(Turn.user_id == p1.id)).all()) == 1


def test_submitted_turn_keeps_its_verified_quote(sqlite_store, tmp_path):
    store = sqlite_store
    p1, pending = _waiting_debate(store, tmp_path)
    status = submit_human_turn(store, "p1", p1.id, pending.debate_id, pending.role,
                               pending.round, "It is so: <quote>Boat number 0</quote>",
                               settings=HumanTurnSettings(lease_seconds=30, agent_cache_size=1))
    assert status == "done"
    with store.session() as s:
        quotes = s.execute(select(Quote.text, Quote.verified).join(Turn)
                           .where(Turn.user_id == p1.id)).all()
    assert quotes == [("Boat number 0", True)]
    with pytest.raises(HumanTurnError, match="no turn of yours"):
        submit_human_turn(store, "p1", p1.id, pending.debate_id, pending.role,
                          pending.round, "again")


def _constructs_turn_rows(path: Path) -> bool:
    """Whether a module builds turns rows itself: `Turn(...)` or `insert(Turn)`."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "Turn":
                return True
            if node.func.id == "insert" and any(
                isinstance(a, ast.Name) and a.id in ("Turn", "Quote") for a in node.args
            ):
                return True
    return False


def test_turns_are_written_only_by_the_store():
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("debate", "judges", "web")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if "store" not in p.relative_to(ROOT).parts and _constructs_turn_rows(p)
    ]
    assert offenders == []


def test_web_handlers_send_no_sql():
    for p in sorted((ROOT / "web").glob("*.py")):
        text = p.read_text()
        assert "import select" not in text and "from sqlalchemy" not in text, p.name
        assert "store.session()" not in text and "store.write_session()" not in text, p.name


def test_steps_is_pure_of_models():
    """Applying a protocol loads no model library (debate.steps is shared by the engine, the
    human-turn service and the benchmarks)."""
    import subprocess
    import sys

    code = ("import sys, debate.steps; "
            "print(sorted(m for m in ('torch', 'transformers', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_a_persons_choice_turn_sets_the_seats(sqlite_store, tmp_path):
    """Open debate: the person in seat A chooses the second answer shown; seat A then argues
    it and seat B the other, as after a model's choice (debate.steps.choice_seat_answers)."""
    store = sqlite_store
    add_accounts(store, ("p1", "debater"), ("p2", "debater"))
    cfg = parse_config({
        "name": "open", "protocol": {"name": "open-debate", "rounds": 1}, "both_orders": False,
        "dataset": {"name": "jsonl", "path": str(write_questions(tmp_path / "q.jsonl", 1))},
        "debater": {"type": "human"},
    })
    run_experiment(store, cfg, tmp_path, show_progress=False)
    who = get_user(store, "p1")
    (pending,) = waiting_turns(store, "p1", who.id)
    assert pending.kind == "choice"
    with pytest.raises(HumanTurnError, match="choice: pick"):
        submit_human_turn(store, who.name, who.id, pending.debate_id, pending.role,
                          pending.round, "I argue for the second.", choice=2)
    status = submit_human_turn(store, who.name, who.id, pending.debate_id, pending.role,
                               pending.round, "I argue for the second.", choice=1)
    assert status == "waiting_human"
    with store.session() as s:
        debate = s.get(Debate, pending.debate_id)
        seats = {seat.role: seat.answer_index for seat in debate.seats}
        meta = s.scalar(select(Turn.meta).where(Turn.debate_id == debate.id,
                                                Turn.kind == "choice"))
    assert seats[pending.role] == debate.answer_order[1] == meta["choice"]
    other = next(r for r in seats if r not in (pending.role, "judge"))
    assert seats[other] == debate.answer_order[0]
