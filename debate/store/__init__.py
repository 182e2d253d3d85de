"""The store: schema, connection, migrations and queries. The only module that writes SQL."""

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
