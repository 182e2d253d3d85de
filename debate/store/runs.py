"""What the engine reads and writes: leases on debates, their state, each step's turns.

Leases let several `debate run --worker` processes share one experiment: a worker claims
free debates (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: under BEGIN IMMEDIATE), renews
its lease with every step it writes, and a lease left by a dead worker expires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update

from debate.protocols import Protocol
from debate.store.db import Store
from debate.store.models import Debate, Document, Quote, Seat, Turn
from debate.store.models import Question as QuestionRow

ACTIVE = ("pending", "running")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class StoredTurn:
    step: int
    round: int
    role: str
    kind: str
    text: str
    status: str = "ok"


@dataclass
class SeatState:
    agent_id: int | None
    answer_index: int | None


@dataclass
class DebateState:
    id: int
    question_id: str
    question: str
    answers: tuple[str, ...]
    correct_index: int
    source: str | None
    source_title: str | None
    document_id: int | None
    protocol: Protocol
    answer_order: tuple[int, ...]
    seats: dict[str, SeatState]
    seed: int
    turns: list[StoredTurn] = field(default_factory=list)


def claim_debates(
    store: Store, experiment_id: int, worker: str, limit: int, lease_seconds: float
) -> list[int]:
    """Lease up to `limit` unfinished debates that no live worker holds."""
    now = utcnow()
    free = or_(
        Debate.lease_owner.is_(None),
        Debate.lease_owner == worker,
        Debate.lease_expires_at.is_(None),
        Debate.lease_expires_at < now,
    )
    query = (
        select(Debate.id)
        .where(Debate.experiment_id == experiment_id, Debate.status.in_(ACTIVE), free)
        .order_by(Debate.id)
        .limit(limit)
    )
    with store.write_session() as session:
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        for i in range(0, len(ids), 1000):
            session.execute(
                update(Debate)
                .where(Debate.id.in_(ids[i : i + 1000]))
                .values(lease_owner=worker, lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
    return ids


def release_debates(store: Store, worker: str, ids: list[int]) -> None:
    with store.session() as session:
        for i in range(0, len(ids), 1000):
            session.execute(
                update(Debate)
                .where(Debate.id.in_(ids[i : i + 1000]), Debate.lease_owner == worker)
                .values(lease_owner=None, lease_expires_at=None)
            )


def reset_failed(store: Store, experiment_id: int) -> int:
    """Make failed debates runnable again: their failed turns go, the rest stays."""
    with store.write_session() as session:
        ids = list(
            session.scalars(
                select(Debate.id).where(
                    Debate.experiment_id == experiment_id, Debate.status == "failed"
                )
            )
        )
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            session.execute(delete(Turn).where(Turn.debate_id.in_(chunk), Turn.status == "failed"))
            session.execute(
                update(Debate).where(Debate.id.in_(chunk)).values(status="pending", error=None)
            )
        return len(ids)


def load_states(store: Store, ids: list[int]) -> list[DebateState]:
    states: dict[int, DebateState] = {}
    with store.session() as session:
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            rows = session.execute(
                select(Debate, QuestionRow, Document.text, Document.title)
                .join(QuestionRow, Debate.question_id == QuestionRow.id)
                .outerjoin(Document, QuestionRow.document_id == Document.id)
                .where(Debate.id.in_(chunk))
            ).all()
            protocols: dict[str, Protocol] = {}
            for d, q, text, title in rows:
                key = repr(sorted(d.protocol_spec.items()))
                if key not in protocols:
                    protocols[key] = Protocol.from_dict(d.protocol_spec)
                states[d.id] = DebateState(
                    id=d.id,
                    question_id=q.external_id,
                    question=q.text,
                    answers=tuple(q.answers),
                    correct_index=q.correct_index,
                    source=text,
                    source_title=title,
                    document_id=q.document_id,
                    protocol=protocols[key],
                    answer_order=tuple(d.answer_order),
                    seats={},
                    seed=d.seed,
                )
            for s in session.scalars(select(Seat).where(Seat.debate_id.in_(chunk))):
                states[s.debate_id].seats[s.role] = SeatState(s.agent_id, s.answer_index)
            for t in session.execute(
                select(Turn.debate_id, Turn.step, Turn.round, Turn.role, Turn.kind, Turn.text,
                       Turn.status)
                .where(Turn.debate_id.in_(chunk), Turn.status != "failed")
                .order_by(Turn.debate_id, Turn.step, Turn.id)
            ):
                states[t.debate_id].turns.append(
                    StoredTurn(t.step, t.round, t.role, t.kind, t.text, t.status)
                )
    return [states[i] for i in ids if i in states]


@dataclass
class TurnWrite:
    debate_id: int
    step: int
    round: int
    role: str
    kind: str
    agent_id: int | None
    user_id: int | None
    text: str
    status: str
    shown: str | None
    shown_sha256: str | None
    template_version: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    candidates: list[dict[str, Any]] | None
    meta: dict[str, Any]
    quotes: list[dict[str, Any]]  # position, text, verified, source_start, source_end, fuzzy_score


@dataclass
class DebateUpdate:
    debate_id: int
    steps_done: int
    status: str
    error: str | None = None
    seat_answers: dict[str, int] = field(default_factory=dict)


def write_step(
    store: Store,
    worker: str,
    turns: list[TurnWrite],
    updates: list[DebateUpdate],
    lease_seconds: float,
) -> set[int]:
    """Write one engine step in a single transaction.

    Only debates whose lease this worker still holds are written; returns the ids of
    debates whose lease was lost (their turns are dropped, another worker owns them).
    """
    now = utcnow()
    ids = sorted({u.debate_id for u in updates} | {t.debate_id for t in turns})
    with store.write_session() as session:
        held: set[int] = set()
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            held.update(
                session.scalars(
                    select(Debate.id).where(
                        Debate.id.in_(chunk),
                        Debate.lease_owner == worker,
                    )
                )
            )
        lost = set(ids) - held
        turns = [t for t in turns if t.debate_id in held]
        updates = [u for u in updates if u.debate_id in held]
        if turns:
            rows = [
                {
                    "debate_id": t.debate_id,
                    "step": t.step,
                    "round": t.round,
                    "role": t.role,
                    "kind": t.kind,
                    "agent_id": t.agent_id,
                    "user_id": t.user_id,
                    "text": t.text,
                    "status": t.status,
                    "shown": t.shown,
                    "shown_sha256": t.shown_sha256,
                    "template_version": t.template_version,
                    "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens,
                    "latency_ms": t.latency_ms,
                    "candidates": t.candidates,
                    "meta": t.meta,
                    "created_at": now,
                }
                for t in turns
            ]
            turn_ids = session.execute(
                insert(Turn).returning(Turn.id, sort_by_parameter_order=True), rows
            ).scalars().all()
            quote_rows = [
                dict(q, turn_id=tid) for tid, t in zip(turn_ids, turns) for q in t.quotes
            ]
            if quote_rows:
                session.execute(insert(Quote), quote_rows)
        _apply_updates(session, updates, now, worker, lease_seconds)
    return lost


def _apply_updates(session, updates: list[DebateUpdate], now, worker, lease_seconds) -> None:
    # Group identical updates so 10,000 debates advancing together cost a few statements.
    groups: dict[tuple, list[int]] = {}
    for u in updates:
        groups.setdefault((u.steps_done, u.status, u.error), []).append(u.debate_id)
        for role, answer in u.seat_answers.items():
            session.execute(
                update(Seat)
                .where(and_(Seat.debate_id == u.debate_id, Seat.role == role))
                .values(answer_index=answer)
            )
    expires = now + timedelta(seconds=lease_seconds)
    for (steps, status, error), ids in groups.items():
        values: dict[str, Any] = {"steps_done": steps, "status": status, "error": error}
        if status in ("done", "failed", "waiting_human"):
            values.update(lease_owner=None, lease_expires_at=None)
            if status == "done":
                values["finished_at"] = now
        else:
            values.update(lease_owner=worker, lease_expires_at=expires)
        for i in range(0, len(ids), 1000):
            session.execute(update(Debate).where(Debate.id.in_(ids[i : i + 1000])).values(values))


def renew_leases(store: Store, worker: str, ids: list[int], lease_seconds: float) -> None:
    expires = utcnow() + timedelta(seconds=lease_seconds)
    with store.session() as session:
        for i in range(0, len(ids), 1000):
            session.execute(
                update(Debate)
                .where(Debate.id.in_(ids[i : i + 1000]), Debate.lease_owner == worker)
                .values(lease_expires_at=expires)
            )


def count_by_status(store: Store, experiment_id: int) -> dict[str, int]:
    from sqlalchemy import func

    with store.session() as session:
        rows = session.execute(
            select(Debate.status, func.count())
            .where(Debate.experiment_id == experiment_id)
            .group_by(Debate.status)
        ).all()
    return {status: n for status, n in rows}
