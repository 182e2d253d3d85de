"""What model judging reads from the store, and its judgments written through store.judgments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from debate.store.db import Store
from debate.store.judgments import insert_judgments
from debate.store.models import Debate, Experiment, Judgment
from debate.store.models import Question as QuestionRow
from debate.store.views import load_facts
from debate.view import DebateFacts
from debate.vocabulary import DebateStatus


@dataclass(frozen=True)
class DebateRecord:
    """A debate to judge: the facts a judge may be shown (debate.view builds the blind
    view from them) and, kept apart from them, the correct answer for the summary."""

    facts: DebateFacts
    correct_index: int
    protocol_spec: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.facts.debate_id

    @property
    def answer_order(self) -> tuple[int, ...]:
        return self.facts.answer_order


@dataclass
class JudgmentWrite:
    debate_id: int
    kind: str
    after_round: int | None
    probabilities: list[float] | None
    shown_order: list[int]
    explanation: str | None
    time_taken_ms: float
    meta: dict[str, Any]


def find_experiment_id(store: Store, name: str) -> int | None:
    with store.session() as s:
        return s.scalar(select(Experiment.id).where(Experiment.name == name))


def experiment_judges(store: Store, experiment_id: int) -> list[dict[str, Any]]:
    with store.session() as s:
        config = s.scalar(select(Experiment.config).where(Experiment.id == experiment_id)) or {}
    judges = config.get("judges") or []
    return [j for j in judges if isinstance(j, dict)]


def finished_debate_ids(store: Store, experiment_id: int) -> list[int]:
    with store.session() as s:
        return list(s.scalars(
            select(Debate.id)
            .where(Debate.experiment_id == experiment_id, Debate.status == DebateStatus.DONE)
            .order_by(Debate.id)
        ))


def judged_keys(store: Store, judge_agent_id: int, debate_ids: list[int]
                ) -> set[tuple[int, str, int | None]]:
    """(debate, kind, after_round) already judged by this judge."""
    keys: set[tuple[int, str, int | None]] = set()
    with store.session() as s:
        for i in range(0, len(debate_ids), 1000):
            chunk = debate_ids[i: i + 1000]
            for row in s.execute(
                select(Judgment.debate_id, Judgment.kind, Judgment.after_round).where(
                    Judgment.judge_agent_id == judge_agent_id, Judgment.debate_id.in_(chunk)
                )
            ):
                keys.add((row.debate_id, row.kind, row.after_round))
    return keys


def load_debates(store: Store, ids: list[int]) -> list[DebateRecord]:
    with store.session() as s:
        facts = load_facts(s, ids)
        extra: dict[int, tuple[int, dict[str, Any]]] = {}
        for i in range(0, len(ids), 1000):
            chunk = ids[i: i + 1000]
            for did, correct, spec in s.execute(
                select(Debate.id, QuestionRow.correct_index, Debate.protocol_spec)
                .join(QuestionRow, Debate.question_id == QuestionRow.id)
                .where(Debate.id.in_(chunk))
            ):
                extra[did] = (correct, dict(spec))
    return [DebateRecord(facts[i], *extra[i]) for i in ids if i in facts]


def write_judgments(store: Store, judge_agent_id: int, rows: list[JudgmentWrite]) -> None:
    """All rows in one transaction: a killed judging run loses at most one batch."""
    if not rows:
        return
    with store.session() as s:
        insert_judgments(s, [
            {
                "debate_id": r.debate_id,
                "judge_agent_id": judge_agent_id,
                "kind": r.kind,
                "after_round": r.after_round,
                "probabilities": r.probabilities,
                "shown_order": r.shown_order,
                "explanation": r.explanation,
                "time_taken_ms": r.time_taken_ms,
                "meta": r.meta,
            }
            for r in rows
        ])


def judgments_of(store: Store, judge_agent_id: int, debate_ids: list[int]) -> list[dict[str, Any]]:
    """Stored judgments of one judge with each debate's correct answer (for summaries)."""
    out: list[dict[str, Any]] = []
    with store.session() as s:
        for i in range(0, len(debate_ids), 1000):
            chunk = debate_ids[i: i + 1000]
            for j, correct in s.execute(
                select(Judgment, QuestionRow.correct_index)
                .join(Debate, Judgment.debate_id == Debate.id)
                .join(QuestionRow, Debate.question_id == QuestionRow.id)
                .where(Judgment.judge_agent_id == judge_agent_id, Judgment.debate_id.in_(chunk))
            ):
                out.append({"debate_id": j.debate_id, "kind": j.kind, "after_round": j.after_round,
                            "probabilities": j.probabilities, "correct_index": correct,
                            "meta": j.meta})
    return out
