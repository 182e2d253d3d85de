"""The store: schema, connection, migrations, and every write to the database.

Each write is a named function of a module here (turns.py, experiments.py, runs.py,
accounts.py, judging.py, judgments.py, probes.py, tournaments.py, bulk.py), taking the
caller's session where the caller composes the transaction. Features keep their own
read queries; tests/test_store_owns_writes.py keeps writes from creeping back out."""

from debate.store import models
from debate.store.db import (
    DEFAULT_URL,
    Store,
    current_revision,
    open_store,
    resolve_url,
    upgrade,
)

__all__ = [
    "DEFAULT_URL",
    "Store",
    "current_revision",
    "models",
    "open_store",
    "resolve_url",
    "upgrade",
]
