"""The one way a turn is written: its row, its quotes and its captured activations.

Every path that stores turns (the engine's step writer, the human-turn service, the NYU
importer, the pixel-debate store) builds `TurnWrite`s and hands them to `write_turns`
inside its own `store.write_session()`, so the turns table, the quotes table and the
activations table are filled the same way whoever spoke.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.orm import Session

from debate.errors import UserError
from debate.store.bulk import next_id
from debate.store.db import Store
from debate.store.models import Activation, Debate, Quote, Seat, Turn, utcnow
from debate.store.vectors import encode_vector
from debate.vocabulary import DebateStatus

QUOTE_FIELDS = ("position", "text", "verified", "source_start", "source_end", "fuzzy_score")


@dataclass
class TurnWrite:
    """One turns row to write, with its quotes (dicts of QUOTE_FIELDS) and activations."""

    debate_id: int
    step: int
    round: int
    role: str
    kind: str
    agent_id: int | None
    user_id: int | None
    text: str
    status: str
    shown: str | None = None
    shown_sha256: str | None = None
    template_version: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    candidates: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    quotes: list[dict[str, Any]] = field(default_factory=list)
    activations: dict[tuple[int, str], Any] | None = None  # (layer, position) -> numpy vector
    created_at: datetime | None = None  # None: the time of the write


TURNS = Turn.__table__
QUOTES = Quote.__table__
ACTIVATIONS = Activation.__table__
# turns column <- TurnWrite attribute
_TURN_FIELDS = [
    (name, name)
    for name in (
        "debate_id", "step", "round", "role", "kind", "agent_id", "user_id", "text", "status",
        "shown", "shown_sha256", "template_version", "prompt_tokens", "completion_tokens",
        "latency_ms", "candidates",
    )
] + [("metadata", "meta")]


def activation_columns(vectors: list[tuple[int, tuple[int, str], Any]]) -> dict[str, list[Any]]:
    """Rows of the activations table, column-wise, from (turn id, (layer, position), vector)."""
    encoded = [encode_vector(vec) for _, _, vec in vectors]
    return {
        "turn_id": [tid for tid, _, _ in vectors],
        "layer": [int(key[0]) for _, key, _ in vectors],
        "position": [key[1] for _, key, _ in vectors],
        "dtype": [e[2] for e in encoded],
        "shape": [e[1] for e in encoded],
        "data": [e[0] for e in encoded],
    }


def write_turns(session: Session, turns: Sequence[TurnWrite]) -> list[int]:
    """Insert `turns` with their quotes and activations; returns the new turn ids in order.

    Call it inside `store.write_session()`: on SQLite that transaction holds the write lock
    (BEGIN IMMEDIATE), so nobody else can insert turns and the ids are given here
    (RETURNING skipped, the engine's hot path)."""
    if not turns:
        return []
    now = utcnow()
    conn = session.connection()
    columns: dict[str, list[Any]] = {
        name: [getattr(t, attr) for t in turns] for name, attr in _TURN_FIELDS
    }
    columns["created_at"] = [t.created_at or now for t in turns]
    if conn.dialect.name == "sqlite":
        first = next_id(conn, TURNS.c.id)
        turn_ids: list[int] = list(range(first, first + len(turns)))
        columns["id"] = turn_ids
        bulk_insert(conn, TURNS, columns)
    else:
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        turn_ids = list(conn.execute(
            TURNS.insert().returning(TURNS.c.id, sort_by_parameter_order=True), rows
        ).scalars())
    quotes = [(tid, q) for tid, t in zip(turn_ids, turns) for q in t.quotes]
    if quotes:
        bulk_insert(conn, QUOTES, {
            "turn_id": [tid for tid, _ in quotes],
            **{name: [q[name] for _, q in quotes] for name in QUOTE_FIELDS},
        })
    vectors = [(tid, key, vec) for tid, t in zip(turn_ids, turns)
               for key, vec in (t.activations or {}).items()]
    if vectors:
        bulk_insert(conn, ACTIVATIONS, activation_columns(vectors))
    return turn_ids


def write_turn(session: Session, turn: TurnWrite) -> int:
    """`write_turns` for one turn; returns its id."""
    return write_turns(session, [turn])[0]


def bulk_insert(conn: Connection, table: Table, columns: dict[str, list[Any]]) -> None:
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


class TurnRefused(UserError):
    """A turn that can no longer be written (the debate moved on); shown to the person."""


def write_waiting_turn(
    store: Store,
    turn: TurnWrite,
    seat_answers: dict[str, int],
    worker: str,
    lease_seconds: float,
) -> int:
    """Write a person's turn into a debate waiting for it and lease the debate to `worker`
    (status running) so that it alone advances it next; returns the experiment id.

    The debate row is locked for the transaction: of two people submitting the same turn,
    one writes it and the other gets TurnRefused."""
    did = turn.debate_id
    with store.write_session() as session:
        query = select(Debate).where(Debate.id == did)
        if store.dialect == "postgresql":
            query = query.with_for_update()
        debate = session.scalar(query)
        if debate is None or debate.status != DebateStatus.WAITING_HUMAN:
            raise TurnRefused(f"debate {did}: not waiting for a person any more; reload")
        taken = session.scalar(select(Turn.id).where(
            Turn.debate_id == did, Turn.round == turn.round, Turn.role == turn.role))
        if taken is not None:
            raise TurnRefused(f"debate {did}: this turn was already given; reload")
        write_turn(session, turn)
        for role, answer in seat_answers.items():
            session.execute(update(Seat).where(Seat.debate_id == did, Seat.role == role)
                            .values(answer_index=answer))
        debate.status = DebateStatus.RUNNING
        debate.lease_owner = worker
        debate.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
        return debate.experiment_id


def return_to_pending(store: Store, debate_id: int, worker: str) -> None:
    """Hand a debate `worker` leases back to `debate run` (status pending), its turns kept."""
    with store.session() as session:
        session.execute(update(Debate).where(Debate.id == debate_id,
                                             Debate.lease_owner == worker)
                        .values(status=DebateStatus.PENDING))


def debate_status(store: Store, debate_id: int) -> str:
    with store.session() as session:
        return session.scalar(select(Debate.status).where(Debate.id == debate_id)) or "unknown"
