"""Connecting to the database, applying migrations, refusing schemas we do not know."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from debate.errors import SchemaError, UserError

DEFAULT_URL = "sqlite:///debate.db"
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def resolve_url(url: str | None) -> str:
    """--db URL, else $DEBATE_DB, else sqlite:///debate.db."""
    return url or os.environ.get("DEBATE_DB") or DEFAULT_URL


SQLITE_BUSY_ENV = "DEBATE_SQLITE_BUSY_SECONDS"


def sqlite_busy_seconds() -> float:
    """How long a SQLite connection waits for another process's write lock before failing
    with "database is locked": $DEBATE_SQLITE_BUSY_SECONDS, else 30 s."""
    raw = os.environ.get(SQLITE_BUSY_ENV)
    if raw is None:
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"${SQLITE_BUSY_ENV}: expected a number of seconds >= 0, got {raw!r}")
    return value


def redact(url: str) -> str:
    """The URL as shown in messages: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_pragmas(busy_seconds: float):
    def apply(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cur.close()

    return apply


# libpq settings so that a server that vanishes (a failover, a cut network: no TCP reset)
# is noticed within about a minute rather than the OS's TCP timeouts; the URL's own
# query parameters win.
PG_NETWORK_LIMITS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 45_000,
}


def _network_limits(_dialect, _record, _cargs, cparams) -> None:
    for key, value in PG_NETWORK_LIMITS.items():
        cparams.setdefault(key, value)


def make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            busy = sqlite_busy_seconds()
            engine = create_engine(url, connect_args={"timeout": busy})
            event.listen(engine, "connect", _sqlite_pragmas(busy))
            # Take over BEGIN from pysqlite so that a writing transaction can take the
            # write lock up front (BEGIN IMMEDIATE): concurrent writers then queue on
            # busy_timeout instead of failing on a read-to-write upgrade.
            @event.listens_for(engine, "connect")
            def _no_autobegin(dbapi_conn, _record):
                dbapi_conn.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin(conn):
                immediate = conn.get_execution_options().get("sqlite_immediate")
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        else:
            engine = create_engine(url, pool_pre_ping=True)
            event.listen(engine, "do_connect", _network_limits)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise UserError(f"--db: cannot use database URL {url!r}: {exc}") from None
    return engine


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise UserError(f"--db: cannot open {engine.url!r}: {exc.orig}") from None


MIGRATION_LOCK_KEY = 0x64656261  # PostgreSQL advisory lock held while migrating


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply migrations up to `revision`; refuses a database from a newer version.

    Safe when several processes start on one database at once: PostgreSQL migrates under
    an advisory lock, SQLite under BEGIN IMMEDIATE; the later ones find it up to date."""
    from alembic import command

    check_known(engine, allow_empty=True)
    cfg = _alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
    else:
        cfg.attributes["engine"] = engine.execution_options(sqlite_immediate=True)
        command.upgrade(cfg, revision)
    return current_revision(engine) or ""


def check_known(engine: Engine, allow_empty: bool = False) -> str | None:
    rev = current_revision(engine)
    if rev is None:
        if allow_empty:
            return None
        has_tables = bool(inspect(engine).get_table_names())
        what = "was not created by this tool" if has_tables else "has no schema yet"
        raise SchemaError(f"database {engine.url!r} {what}; run `debate db upgrade` first")
    if rev not in known_revisions():
        raise SchemaError(
            f"database {engine.url!r} is at schema revision {rev!r}, which this version of "
            f"debate does not know (newest known: {head_revision()}); upgrade the debate "
            "package or use another database"
        )
    return rev


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]
    # PostgreSQL: the longest a session may sit idle in a transaction or run a statement
    # (see limit_transactions); None: the server's defaults.
    transaction_limit_ms: int | None = None
    _limit_listener: bool = False

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """Like session(), but on SQLite takes the write lock at BEGIN (BEGIN IMMEDIATE).

        Use it for read-then-write transactions (claiming leases, assigning work) so two
        processes cannot both read the same free row.
        """
        with self.write_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def limit_transactions(self, seconds: float | None) -> None:
        """On PostgreSQL, make the server end any session of this store that sits idle
        inside a transaction, or runs one statement, for longer than `seconds`
        (idle_in_transaction_session_timeout, statement_timeout): its transaction is
        rolled back and its row locks are freed. A worker frozen (SIGSTOP, a paused VM)
        in the middle of a step thus cannot hold its debates' rows past its lease, and
        its late commit is refused. No-op on SQLite, where one writer holds the whole
        database and a frozen one blocks the others until it is killed."""
        if self.dialect != "postgresql":
            return
        ms = None if seconds is None else max(int(seconds * 1000), 1)
        if ms == self.transaction_limit_ms:
            return
        self.transaction_limit_ms = ms
        if not self._limit_listener:
            event.listen(self.engine, "do_connect", self._session_options)
            self._limit_listener = True
        self.engine.dispose()  # pooled connections were made with the old settings

    def _session_options(self, _dialect, _record, _cargs, cparams) -> None:
        ms = self.transaction_limit_ms
        if ms is None:
            return
        ours = f"-c idle_in_transaction_session_timeout={ms} -c statement_timeout={ms}"
        cparams["options"] = f"{cparams['options']} {ours}" if cparams.get("options") else ours


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open the database at `url` (see resolve_url), bringing its schema up to date.

    With migrate=False a database that is not at the newest revision is refused.
    """
    engine = make_engine(resolve_url(url))
    if migrate:
        rev = upgrade(engine)
    else:
        rev = check_known(engine)
    if rev != head_revision():
        raise SchemaError(
            f"database {engine.url!r} is at revision {rev!r}, not {head_revision()!r}; "
            "run `debate db upgrade`"
        )
    return Store(
        engine,
        sessionmaker(engine, expire_on_commit=False),
        sessionmaker(engine.execution_options(sqlite_immediate=True), expire_on_commit=False),
    )


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
