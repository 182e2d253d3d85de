"""What went wrong with the database, in one line, and whether waiting can fix it.

A worker meets two kinds of database trouble:

- the database went away (connection refused or dropped, PostgreSQL restarting or shutting
  down, a session ended by the server's own timeouts): waiting and reconnecting fixes it,
  so the engine reconnects with backoff for a bounded window (`Reconnect`) and gives up
  with `DatabaseUnavailable` (exit 2) after it;
- the database refuses the work (disk full, read-only files or database, SQLite's write
  lock held by someone else past the busy timeout, anything else): `DatabaseFault` (exit 3).

Either way the transaction in flight was rolled back, so nothing is half-written, and the
worker's leases are left to expire (or to be taken at once by a rerun on this kernel).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from debate.errors import DatabaseFault, DatabaseUnavailable
from debate.store.db import Store

T = TypeVar("T")
log = logging.getLogger(__name__)
DEFAULT_RETRY_SECONDS = 60.0  # how long a worker waits for a database that went away

# PostgreSQL SQLSTATEs after which reconnecting (or simply retrying) can succeed.
_TRANSIENT_SQLSTATES = {
    "57P01": "the server is shutting down (administrator command)",
    "57P02": "the server crashed or was stopped in immediate mode",
    "57P03": "the server is starting up or shutting down",
    "57014": "a statement ran past the worker's statement timeout",
    "25P03": "the session sat in its transaction past the idle-in-transaction timeout",
    "53300": "the server has no free connection slots",
    "40001": "a serialization failure",
    "40P01": "a deadlock with another transaction",
}
# PostgreSQL SQLSTATEs that waiting does not fix.
_FAULT_SQLSTATES = {
    "53100": "disk full",
    "53200": "out of memory",
    "25006": "the database is read-only",
    "42501": "permission denied",
    "58030": "I/O error",
}
# SQLite messages (sqlite3.OperationalError and friends) -> cause.
_SQLITE_CAUSES = (
    ("database is locked",
     "database is locked: another process held its write lock past the busy timeout"),
    ("database or disk is full", "disk full"),
    ("readonly database", "the database files are read-only"),
    ("unable to open database file",
     "cannot open the database file (missing, or its folder is not writable)"),
    ("disk i/o error", "disk I/O error"),
    ("database disk image is malformed", "the database file is corrupt"),
)


@dataclass(frozen=True)
class Trouble:
    """A database error, classified: its cause in words and whether waiting may fix it."""

    cause: str
    transient: bool


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def classify(exc: BaseException) -> Trouble | None:
    """What `exc` says about the database, or None if it is no database error."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    detail = first_line(orig) if orig is not None else first_line(exc)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return Trouble(f"{_TRANSIENT_SQLSTATES[sqlstate]} ({detail})", True)
    if sqlstate in _FAULT_SQLSTATES:
        return Trouble(f"{_FAULT_SQLSTATES[sqlstate]} ({detail})", False)
    if sqlstate and sqlstate.startswith("08"):  # connection exceptions
        return Trouble(f"connection lost ({detail})", True)
    module = type(orig).__module__ if orig is not None else ""
    lowered = detail.lower()
    if module.startswith("sqlite3"):
        for needle, cause in _SQLITE_CAUSES:
            if needle in lowered:
                return Trouble(cause, False)
        return Trouble(detail, False)
    if exc.connection_invalidated or (
        module.startswith("psycopg") and sqlstate is None
        and type(orig).__name__ == "OperationalError"
    ):
        # No SQLSTATE: the client lost (or never got) its connection.
        return Trouble(f"connection lost ({detail})", True)
    return Trouble(detail, False)


def fault(url: str, exc: BaseException) -> DatabaseFault | DatabaseUnavailable:
    """The one-line error for `exc`: DatabaseUnavailable when the database went away
    (outside a Reconnect, or past its window), else DatabaseFault."""
    trouble = classify(exc)
    cause = trouble.cause if trouble else first_line(exc)
    kind = DatabaseUnavailable if trouble and trouble.transient else DatabaseFault
    return kind(
        f"database {url}: {cause}; nothing is half-written (the transaction in flight was "
        "rolled back, or committed whole); rerun the same command to resume"
    )


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn any raw database error inside the block into one line (DatabaseUnavailable
    or DatabaseFault)."""
    try:
        yield
    except DBAPIError as exc:
        raise fault(url, exc) from None


def reachable(store: Store) -> bool:
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError:
        return False
    return True


class Reconnect:
    """Rides out a database outage: waits with backoff until the database answers again,
    for at most `window` seconds from the first error since the last success.

    `notify` gets one line when an outage starts and one when it ends."""

    def __init__(self, store: Store, window: float, notify: Callable[[str], None] | None = None,
                 first_delay: float = 0.25, max_delay: float = 5.0):
        self.store = store
        self.window = window
        self.notify = notify or (lambda line: log.warning("%s", line))
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.since: float | None = None  # first error of the current outage
        self.back = False  # the current outage's end was announced
        self.outages = 0

    def succeeded(self) -> None:
        """The database did real work: an outage in progress is over."""
        self.since = None
        self.back = False

    def wait(self, exc: BaseException) -> None:
        """After `exc` (a database error): return once the database answers, or raise
        DatabaseFault (waiting cannot fix it) / DatabaseUnavailable (window ran out)."""
        trouble = classify(exc)
        if trouble is None:
            raise exc
        url = self.store.url
        if not trouble.transient:
            raise fault(url, exc) from None
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.outages += 1
            self.notify(f"database {url}: {trouble.cause}; reconnecting for up to "
                        f"{self.window:g}s (the step in flight is redone from the store)")
        delay = self.first_delay
        while True:
            elapsed = time.monotonic() - self.since
            if elapsed >= self.window:
                what = (f"kept failing for {elapsed:.0f}s although it answers" if self.back
                        else f"unreachable for {elapsed:.0f}s")
                raise DatabaseUnavailable(
                    f"database {url}: {what} ({trouble.cause}); gave up; this worker's "
                    "leases are left to expire, rerun the same command to resume"
                )
            # A dropped pool connection cannot be reused; fresh ones are made on demand.
            self.store.engine.dispose()
            if reachable(self.store):
                if not self.back:
                    self.back = True
                    self.notify(f"database {url}: reachable again after {elapsed:.1f}s; "
                                "resuming")
                return
            time.sleep(min(delay, max(self.window - elapsed, 0.0)))
            delay = min(delay * 2, self.max_delay)

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """fn(*args, **kwargs), retried across outages (for reads and idempotent writes)."""
        while True:
            try:
                result = fn(*args, **kwargs)
            except DBAPIError as exc:
                self.wait(exc)
                continue
            self.succeeded()
            return result
