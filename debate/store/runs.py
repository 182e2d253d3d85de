"""What the engine reads and writes: leases on debates, their state, each step's turns.

Leases let several `debate run --worker` processes share one experiment. A worker claims
free debates (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED; SQLite: under BEGIN
IMMEDIATE), renews its leases while it works on them (with every step it writes, and from
a heartbeat during long agent calls), and gives them back when done. A lease is free when
it has expired (its worker died or hung) or when its owner is a process on this host that
no longer exists (a `kill -9`ed run resumes at once, without waiting for expiry).

Every write of a step happens in one transaction that first locks the debates it writes
and checks this worker still holds their leases; a debate whose lease was taken over is
skipped, so no turn is ever stored twice.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from debate.agents.base import recorded_max_words
from debate.protocols import Protocol, Slot
from debate.store.db import Store
from debate.store.models import Agent, Debate, Document, Quote, Seat, Turn
from debate.store.models import Question as QuestionRow

ACTIVE = ("pending", "running")
CHUNK = 1000  # ids per IN (...) list


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    status: str = "ok"


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


def parse_worker(worker: str) -> tuple[str, int] | None:
    """(host, pid) of a default worker id `host:pid:tag`; None for a custom name."""
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def dead_local_owners(owners: Iterable[str]) -> list[str]:
    """Lease owners that were processes on this host and exist no more."""
    host = socket.gethostname()
    dead = []
    for owner in owners:
        parsed = parse_worker(owner)
        if parsed and parsed[0] == host and parsed[1] != os.getpid() and not process_alive(
            parsed[1]
        ):
            dead.append(owner)
    return dead


def _free_condition(session: Session, experiment_id: int, worker: str, now: datetime):
    owners = session.scalars(
        select(Debate.lease_owner)
        .where(
            Debate.experiment_id == experiment_id,
            Debate.status.in_(ACTIVE),
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
                Debate.status.in_(ACTIVE),
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
    unfinished = and_(Debate.experiment_id == experiment_id, Debate.status.in_(ACTIVE))
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
                    Debate.experiment_id == experiment_id, Debate.status == "failed"
                )
            )
        )
        for chunk in chunks(ids):
            session.execute(delete(Turn).where(Turn.debate_id.in_(chunk), Turn.status == "failed"))
            session.execute(
                update(Debate).where(Debate.id.in_(chunk)).values(status="pending", error=None)
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
                .where(Turn.debate_id.in_(chunk), Turn.status != "failed")
                .order_by(Turn.debate_id, Turn.step, Turn.id)
            ):
                states[t.debate_id].turns.append(
                    StoredTurn(t.step, t.round, t.role, t.kind, t.text, t.status)
                )
    return [states[i] for i in ids if i in states]


# ---------------------------------------------------------------- writing a step


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


_TURNS = Turn.__table__
_QUOTES = Quote.__table__
# turns column <- TurnWrite attribute
_TURN_FIELDS = [
    (name, name)
    for name in (
        "debate_id", "step", "round", "role", "kind", "agent_id", "user_id", "text", "status",
        "shown", "shown_sha256", "template_version", "prompt_tokens", "completion_tokens",
        "latency_ms", "candidates",
    )
] + [("metadata", "meta")]
_QUOTE_FIELDS = ("position", "text", "verified", "source_start", "source_end", "fuzzy_score")


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
        if turns:
            conn = session.connection()
            columns: dict[str, list[Any]] = {
                name: [getattr(t, attr) for t in turns] for name, attr in _TURN_FIELDS
            }
            columns["created_at"] = [now] * len(turns)
            if conn.dialect.name == "sqlite":
                # This transaction holds SQLite's write lock (BEGIN IMMEDIATE): nobody else
                # can insert turns, so ids can be given here and RETURNING skipped.
                first = (conn.execute(select(func.max(_TURNS.c.id))).scalar() or 0) + 1
                turn_ids: Sequence[int] = range(first, first + len(turns))
                columns["id"] = list(turn_ids)
                _bulk_insert(conn, _TURNS, columns)
            else:
                rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
                turn_ids = conn.execute(
                    _TURNS.insert().returning(_TURNS.c.id, sort_by_parameter_order=True), rows
                ).scalars().all()
            quotes = [(tid, q) for tid, t in zip(turn_ids, turns) for q in t.quotes]
            if quotes:
                _bulk_insert(conn, _QUOTES, {
                    "turn_id": [tid for tid, _ in quotes],
                    **{name: [q[name] for _, q in quotes] for name in _QUOTE_FIELDS},
                })
        _apply_updates(session, updates, now, worker, lease_seconds)
    return lost


def _bulk_insert(conn: Connection, table: Table, columns: dict[str, list[Any]]) -> None:
    """Insert rows given column-wise (name -> one value per row).

    On SQLite the values go through the column types' own bind processors (JSON,
    DateTime...) straight to the driver's executemany, skipping SQLAlchemy's per-row
    statement machinery: this is the engine's hot path. None stays SQL NULL."""
    names = list(columns)
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), [dict(zip(names, v)) for v in zip(*columns.values())])
        return
    dialect = conn.dialect
    values = []
    for name, column in columns.items():
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        values.append(
            column if process is None else [None if v is None else process(v) for v in column]
        )
    quoted = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    marks = ", ".join("?" for _ in names)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({quoted}) VALUES ({marks})",
                         list(zip(*values)))


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
        if status in ("done", "failed", "waiting_human"):
            values.update(lease_owner=None, lease_expires_at=None)
            if status == "done":
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


def first_errors(store: Store, experiment_id: int, limit: int = 3) -> list[tuple[int, str]]:
    """(debate id, error) of the experiment's first failed debates."""
    with store.session() as session:
        return [
            (i, e)
            for i, e in session.execute(
                select(Debate.id, Debate.error)
                .where(Debate.experiment_id == experiment_id, Debate.status == "failed")
                .order_by(Debate.id)
                .limit(limit)
            )
        ]
