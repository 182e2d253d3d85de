"""What the engine reads and writes: leases on debates, their state, each step's turns.

Leases let several `debate run --worker` processes share one experiment. A worker claims
free debates (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED; SQLite: under BEGIN
IMMEDIATE), renews its leases while it works on them (with every step it writes, and from
a heartbeat during long agent calls), and gives them back when done. A lease is free when
it has expired (its worker died or hung) or when its owner is provably a process on this
kernel that no longer exists (a `kill -9`ed run resumes at once, without waiting for
expiry; see store.workers for how workers are named and what counts as proof).

Every write of a step happens in one transaction that first locks the debates it writes
and checks this worker still holds their leases; a debate whose lease was taken over is
skipped, so no turn is ever stored twice. The turns themselves (rows, quotes, activations)
are written by store.turns.write_turns, the one turn writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from debate.agents.base import recorded_max_words
from debate.protocols import Protocol, Slot
from debate.store.db import Store
from debate.store.models import Activation, Agent, Debate, Document, Seat, Turn, utcnow
from debate.store.models import Question as QuestionRow
from debate.store.turns import TurnWrite, write_turns
from debate.store.workers import dead_local_owners
from debate.vocabulary import ACTIVE_DEBATE_STATUSES, DebateStatus, TurnStatus

CHUNK = 1000  # ids per IN (...) list


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


@lru_cache(maxsize=256)
def protocol_schedule(protocol: Protocol) -> tuple[tuple[Slot, ...], ...]:
    """The protocol's steps, computed once per protocol value."""
    return tuple(protocol.schedule())


@dataclass
class StoredTurn:
    step: int
    round: int
    role: str
    kind: str
    text: str
    status: str = TurnStatus.OK


@dataclass
class SeatState:
    agent_id: int | None
    answer_index: int | None
    max_words: int | None = None  # the seat's agent's own word limit (tightens the protocol's)


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

    @property
    def schedule(self) -> tuple[tuple[Slot, ...], ...]:
        return protocol_schedule(self.protocol)


# ---------------------------------------------------------------- leases


def _free_condition(session: Session, experiment_id: int, worker: str, now: datetime):
    owners = session.scalars(
        select(Debate.lease_owner)
        .where(
            Debate.experiment_id == experiment_id,
            Debate.status.in_(ACTIVE_DEBATE_STATUSES),
            Debate.lease_owner.is_not(None),
            Debate.lease_owner != worker,
            Debate.lease_expires_at >= now,
        )
        .distinct()
    ).all()
    conditions = [
        Debate.lease_owner.is_(None),
        Debate.lease_owner == worker,
        Debate.lease_expires_at.is_(None),
        Debate.lease_expires_at < now,
    ]
    dead = dead_local_owners(owners)
    if dead:
        conditions.append(Debate.lease_owner.in_(dead))
    return or_(*conditions)


def claim_debates(
    store: Store, experiment_id: int, worker: str, limit: int, lease_seconds: float
) -> list[int]:
    """Lease up to `limit` unfinished debates that no live worker holds, oldest first."""
    now = utcnow()
    with store.write_session() as session:
        query = (
            select(Debate.id)
            .where(
                Debate.experiment_id == experiment_id,
                Debate.status.in_(ACTIVE_DEBATE_STATUSES),
                _free_condition(session, experiment_id, worker, now),
            )
            .order_by(Debate.id)
            .limit(limit)
        )
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        expires = now + timedelta(seconds=lease_seconds)
        for chunk in chunks(ids):
            session.execute(
                update(Debate)
                .where(Debate.id.in_(chunk))
                .values(lease_owner=worker, lease_expires_at=expires)
            )
    return ids


def release_debates(store: Store, worker: str, ids: list[int]) -> None:
    with store.write_session() as session:
        for chunk in chunks(ids):
            session.execute(
                update(Debate)
                .where(Debate.id.in_(chunk), Debate.lease_owner == worker)
                .values(lease_owner=None, lease_expires_at=None)
            )


def renew_leases(store: Store, worker: str, ids: list[int], lease_seconds: float) -> int:
    """Push this worker's leases on `ids` forward; returns how many it still held."""
    expires = utcnow() + timedelta(seconds=lease_seconds)
    held = 0
    with store.write_session() as session:
        for chunk in chunks(sorted(ids)):
            result = session.execute(
                update(Debate)
                .where(Debate.id.in_(chunk), Debate.lease_owner == worker)
                .values(lease_expires_at=expires)
            )
            held += result.rowcount
    return held


@dataclass(frozen=True)
class ActiveCounts:
    """Unfinished debates of an experiment: all of them, and those a live worker holds."""

    active: int
    leased_by_others: int


def active_counts(store: Store, experiment_id: int, worker: str) -> ActiveCounts:
    now = utcnow()
    unfinished = and_(Debate.experiment_id == experiment_id, Debate.status.in_(ACTIVE_DEBATE_STATUSES))
    with store.session() as session:
        active = session.scalar(select(func.count()).where(unfinished)) or 0
        others = session.scalar(
            select(func.count()).where(
                unfinished,
                Debate.lease_owner.is_not(None),
                Debate.lease_owner != worker,
                Debate.lease_expires_at >= now,
            )
        ) or 0
    return ActiveCounts(active, others)


def reset_failed(store: Store, experiment_id: int) -> int:
    """Make failed debates runnable again: their failed turns go, the rest stays."""
    with store.write_session() as session:
        ids = list(
            session.scalars(
                select(Debate.id).where(
                    Debate.experiment_id == experiment_id, Debate.status == DebateStatus.FAILED
                )
            )
        )
        for chunk in chunks(ids):
            session.execute(delete(Turn).where(Turn.debate_id.in_(chunk),
                                               Turn.status == TurnStatus.FAILED))
            session.execute(
                update(Debate).where(Debate.id.in_(chunk))
                .values(status=DebateStatus.PENDING, error=None)
            )
        return len(ids)


# ---------------------------------------------------------------- reading state


def load_states(store: Store, ids: list[int]) -> list[DebateState]:
    """The debates' questions, seats and stored turns (failed turns left out).

    Each hidden source text is read once and shared by the debates that use it."""
    states: dict[int, DebateState] = {}
    protocols: dict[str, Protocol] = {}
    documents: dict[int, tuple[str, str | None]] = {}
    word_limits: dict[int, int | None] = {}  # agent id -> its own word limit
    with store.session() as session:
        for chunk in chunks(ids):
            rows = session.execute(
                select(
                    Debate.id, Debate.protocol_spec, Debate.answer_order, Debate.seed,
                    QuestionRow.external_id, QuestionRow.text, QuestionRow.answers,
                    QuestionRow.correct_index, QuestionRow.document_id,
                )
                .join(QuestionRow, Debate.question_id == QuestionRow.id)
                .where(Debate.id.in_(chunk))
            ).all()
            wanted = {r.document_id for r in rows if r.document_id is not None} - set(documents)
            for doc_chunk in chunks(sorted(wanted)):
                for did, text, title in session.execute(
                    select(Document.id, Document.text, Document.title).where(
                        Document.id.in_(doc_chunk)
                    )
                ):
                    documents[did] = (text, title)
            for r in rows:
                key = repr(sorted(r.protocol_spec.items()))
                protocol = protocols.get(key)
                if protocol is None:
                    protocol = protocols[key] = Protocol.from_dict(r.protocol_spec)
                text, title = documents.get(r.document_id, (None, None))
                states[r.id] = DebateState(
                    id=r.id,
                    question_id=r.external_id,
                    question=r.text,
                    answers=tuple(r.answers),
                    correct_index=r.correct_index,
                    source=text,
                    source_title=title,
                    document_id=r.document_id,
                    protocol=protocol,
                    answer_order=tuple(r.answer_order),
                    seats={},
                    seed=r.seed,
                )
            seats = session.execute(
                select(Seat.debate_id, Seat.role, Seat.agent_id, Seat.answer_index).where(
                    Seat.debate_id.in_(chunk)
                )
            ).all()
            agents = {a for _, _, a, _ in seats if a is not None} - set(word_limits)
            for agent_chunk in chunks(sorted(agents)):
                for aid, settings in session.execute(
                    select(Agent.id, Agent.settings).where(Agent.id.in_(agent_chunk))
                ):
                    word_limits[aid] = recorded_max_words(settings)
            for did, role, agent, answer in seats:
                states[did].seats[role] = SeatState(agent, answer, word_limits.get(agent))
            for t in session.execute(
                select(Turn.debate_id, Turn.step, Turn.round, Turn.role, Turn.kind, Turn.text,
                       Turn.status)
                .where(Turn.debate_id.in_(chunk), Turn.status != TurnStatus.FAILED)
                .order_by(Turn.debate_id, Turn.step, Turn.id)
            ):
                states[t.debate_id].turns.append(
                    StoredTurn(t.step, t.round, t.role, t.kind, t.text, t.status)
                )
    return [states[i] for i in ids if i in states]


# ---------------------------------------------------------------- writing a step


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

    Only debates whose lease this worker still holds are written (they are locked for
    the transaction, so no other worker can take them over half-way); returns the ids of
    debates whose lease was lost: their turns are dropped, another worker owns them.
    """
    now = utcnow()
    ids = sorted({u.debate_id for u in updates} | {t.debate_id for t in turns})
    with store.write_session() as session:
        held: set[int] = set()
        for chunk in chunks(ids):
            held.update(
                session.scalars(
                    select(Debate.id)
                    .where(Debate.id.in_(chunk), Debate.lease_owner == worker)
                    .order_by(Debate.id)
                    .with_for_update()
                )
            )
        lost = set(ids) - held
        if lost:
            turns = [t for t in turns if t.debate_id in held]
            updates = [u for u in updates if u.debate_id in held]
        write_turns(session, turns)
        _apply_updates(session, updates, now, worker, lease_seconds)
    return lost


def _apply_updates(
    session: Session, updates: list[DebateUpdate], now: datetime, worker: str,
    lease_seconds: float,
) -> None:
    # Group identical updates so 10,000 debates advancing together cost a few statements.
    groups: dict[tuple[int, str, str | None], list[int]] = {}
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
        if status in (DebateStatus.DONE, DebateStatus.FAILED, DebateStatus.WAITING_HUMAN):
            values.update(lease_owner=None, lease_expires_at=None)
            if status == DebateStatus.DONE:
                values["finished_at"] = now
        else:
            values.update(lease_owner=worker, lease_expires_at=expires)
        for chunk in chunks(ids):
            session.execute(update(Debate).where(Debate.id.in_(chunk)).values(values))


def count_by_status(store: Store, experiment_id: int) -> dict[str, int]:
    with store.session() as session:
        rows = session.execute(
            select(Debate.status, func.count())
            .where(Debate.experiment_id == experiment_id)
            .group_by(Debate.status)
        ).all()
    return {status: n for status, n in rows}


@dataclass(frozen=True)
class ActivationTotals:
    vectors: int
    turns: int
    bytes: int

    @property
    def bytes_per_turn(self) -> float:
        return self.bytes / self.turns if self.turns else 0.0


def activation_totals(store: Store, experiment_id: int) -> ActivationTotals:
    """How many captured vectors the experiment's turns have, over how many turns, in bytes."""
    with store.session() as session:
        vectors, turns, size = session.execute(
            select(func.count(), func.count(func.distinct(Activation.turn_id)),
                   func.coalesce(func.sum(func.length(Activation.data)), 0))
            .join(Turn, Turn.id == Activation.turn_id)
            .join(Debate, Debate.id == Turn.debate_id)
            .where(Debate.experiment_id == experiment_id)
        ).one()
    return ActivationTotals(int(vectors), int(turns), int(size))


def first_errors(store: Store, experiment_id: int, limit: int = 3) -> list[tuple[int, str]]:
    """(debate id, error) of the experiment's first failed debates."""
    with store.session() as session:
        return [
            (i, e)
            for i, e in session.execute(
                select(Debate.id, Debate.error)
                .where(Debate.experiment_id == experiment_id, Debate.status == DebateStatus.FAILED)
                .order_by(Debate.id)
                .limit(limit)
            )
        ]
