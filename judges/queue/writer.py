"""The queue's write transactions: one writer per process at a time on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from debate.store.db import Store

_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


@contextmanager
def writing(store: Store) -> Iterator[Session]:
    """store.write_session(), and on SQLite one writer per process at a time.

    SQLite's busy handler sleeps in growing steps (up to 100 ms) while another connection
    holds the write lock; threads of one web server queue on a Python lock instead and
    take BEGIN IMMEDIATE only when it is theirs, so a burst of judges costs no sleeps.
    Other processes still serialise through BEGIN IMMEDIATE.
    """
    if store.dialect != "sqlite":
        with store.write_session() as session:
            yield session
        return
    with _SQLITE_WRITERS_GUARD:
        lock = _SQLITE_WRITERS.setdefault(store.url, threading.Lock())
    with lock, store.write_session() as session:
        yield session
