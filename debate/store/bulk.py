"""Loading many rows whose ids the caller gives (fixtures, benchmarks): batched inserts,
the next free id, and PostgreSQL's id sequences moved past the rows afterwards.

Each takes the caller's connection, so a whole load is one transaction
(`with store.engine.begin() as conn`). `next_id` also numbers the turn writer's rows on
SQLite (store.turns).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from debate.store.models import Base

BATCH = 20_000


def insert_rows(conn: Connection, model: type[Base], rows: list[dict[str, Any]],
                batch: int = BATCH) -> None:
    """Insert `rows` (dicts of column values, ids included) into the model's table,
    `batch` rows per statement."""
    for i in range(0, len(rows), batch):
        conn.execute(insert(model), rows[i : i + batch])


def next_id(conn: Connection, column: Any) -> int:
    """One past the largest id in `column` (1 for an empty table)."""
    return (conn.execute(select(func.max(column))).scalar() or 0) + 1


def catch_up_sequences(conn: Connection, tables: list[str]) -> None:
    """On PostgreSQL, move each table's id sequence past its largest id (explicit ids leave
    the sequences behind); nothing to do on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                          f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
