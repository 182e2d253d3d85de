"""Database errors, classified: outages a worker waits out, faults it reports in one line
(debate.store.faults), and the session limits that bound a step transaction on PostgreSQL."""

from __future__ import annotations

import socket
import sqlite3

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from debate.errors import DatabaseFault, DatabaseUnavailable, UserError
from debate.store import open_store
from debate.store.db import Store, make_engine
from debate.store.faults import Reconnect, classify, database_errors


def wrapped(orig: BaseException, invalidated: bool = False) -> OperationalError:
    return OperationalError("INSERT ...", {}, orig, connection_invalidated=invalidated)



@pytest.mark.parametrize(("orig", "transient", "cause"), [
    (sqlite3.OperationalError("database is locked"), False, "database is locked"),
    (sqlite3.OperationalError("database or disk is full"), False, "disk full"),
    (sqlite3.OperationalError("attempt to write a readonly database"), False, "read-only"),
    (sqlite3.OperationalError("disk I/O error"), False, "disk I/O error"),
    (psycopg.OperationalError("connection failed: Connection refused\n\tIs the server "
                              "running?"), True, "connection lost (connection failed"),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
     True, "shutting down"),
    (psycopg.errors.CannotConnectNow("the database system is starting up"), True,
     "starting up"),
    (psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to "
                                                    "idle-in-transaction timeout"),
     True, "idle-in-transaction timeout"),
    (psycopg.errors.DiskFull("could not extend file: No space left on device"), False,
     "disk full"),
    (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only "
                                           "transaction"), False, "read-only"),
])
def test_database_errors_are_classified(orig, transient, cause):
    trouble = classify(wrapped(orig))
    assert trouble is not None
    assert trouble.transient is transient
    assert cause in trouble.cause
    assert "\n" not in trouble.cause  # one line, whatever the driver said


def test_errors_that_are_not_the_databases_are_not_classified():
    assert classify(ValueError("bad")) is None
    assert classify(RuntimeError("database is locked")) is None


def test_a_dropped_connection_is_transient_even_without_a_sqlstate():
    trouble = classify(wrapped(psycopg.errors.UndefinedTable("x"), invalidated=True))
    assert trouble.transient  # SQLAlchemy saw the connection die with it
    trouble = classify(ProgrammingError("SELECT", {}, psycopg.errors.UndefinedTable(
        'relation "turns" does not exist')))
    assert not trouble.transient and "turns" in trouble.cause


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def store_for(url: str) -> Store:
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(url)
    return Store(engine, sessionmaker(engine), sessionmaker(engine))


def test_reconnect_gives_up_after_its_window_with_one_line_each(monkeypatch):
    url = f"postgresql+psycopg://nobody@127.0.0.1:{closed_port()}/none"
    store = store_for(url)
    lines: list[str] = []
    reconnect = Reconnect(store, window=1.0, notify=lines.append, first_delay=0.05)
    err = wrapped(psycopg.OperationalError("server closed the connection unexpectedly"))
    with pytest.raises(DatabaseUnavailable) as info:
        reconnect.wait(err)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert message.startswith(f"database {store.url}: unreachable for ")
    assert "leases are left to expire" in message and "\n" not in message
    assert len(lines) == 1 and "reconnecting for up to 1s" in lines[0]
    store.dispose()


def test_reconnect_does_not_wait_for_a_fault(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    lines: list[str] = []
    reconnect = Reconnect(store, window=60, notify=lines.append)
    with pytest.raises(DatabaseFault) as info:
        reconnect.wait(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert info.value.exit_code == 3 and lines == []
    assert str(info.value).startswith(f"database {store.url}: disk full")
    store.dispose()


def test_reconnect_returns_once_the_database_answers(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    lines: list[str] = []
    reconnect = Reconnect(store, window=60, notify=lines.append)
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise wrapped(psycopg.errors.AdminShutdown("terminating connection"))
        return 42

    assert reconnect.call(flaky) == 42
    assert len(calls) == 3
    assert len(lines) == 2 and "reachable again" in lines[1]  # one outage, two lines
    store.dispose()


def test_errors_that_persist_while_the_database_answers_are_bounded_too(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    reconnect = Reconnect(store, window=0.3, notify=lambda _line: None, first_delay=0.05)

    def always() -> None:
        raise wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement "
                                                   "timeout"))

    with pytest.raises(DatabaseUnavailable, match=r"kept failing for .* although it answers"):
        reconnect.call(always)
    store.dispose()


def test_database_errors_become_one_line_errors():
    with (pytest.raises(DatabaseFault, match=r"^database sqlite:///x.db: database is locked"),
          database_errors("sqlite:///x.db")):
        raise wrapped(sqlite3.OperationalError("database is locked"))
    with (pytest.raises(DatabaseUnavailable, match="connection lost"),
          database_errors("postgresql+psycopg://u@h/db")):
        raise wrapped(psycopg.OperationalError("connection refused"))


def test_a_bad_sqlite_busy_timeout_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBATE_SQLITE_BUSY_SECONDS", "soon")
    with pytest.raises(UserError, match=r"DEBATE_SQLITE_BUSY_SECONDS.*'soon'"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("DEBATE_SQLITE_BUSY_SECONDS", "inf")
    with pytest.raises(UserError, match="DEBATE_SQLITE_BUSY_SECONDS"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("DEBATE_SQLITE_BUSY_SECONDS", "2.5")
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 2500
    store.dispose()


@pytest.mark.postgres
def test_postgresql_sessions_bound_their_transactions_by_the_lease(pg_url):
    store = open_store(pg_url)
    with store.session() as s:
        before = s.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
    assert before == "0"
    store.limit_transactions(2.0)  # the engine passes half its lease
    for _ in range(2):  # new connections (the pool was emptied) and reused ones
        with store.session() as s:
            assert s.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "2s"
            assert s.execute(text("SHOW statement_timeout")).scalar() == "2s"
    # A statement past the limit is cancelled: a transient error, the worker redoes it.
    with pytest.raises(OperationalError) as info, store.session() as s:
        s.execute(text("SELECT pg_sleep(3)"))
    assert classify(info.value).transient
    store.dispose()


def test_sqlite_stores_have_no_session_limits(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    store.limit_transactions(1.0)
    assert store.transaction_limit_ms is None
    store.dispose()
