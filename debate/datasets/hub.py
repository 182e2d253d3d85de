"""Optional access to the Hugging Face hub through the `datasets` package.

`datasets` is imported only here and only when a config names a hub id, so the platform
works without it. Offline (or when the hub refuses), the user gets one line saying that
the hub cannot be reached and how to give a local path instead.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from debate.errors import ConfigError, DatasetError

LOCAL_HINT = "download the data set's files and give their local path as dataset.path instead"

# Words in an exception's text that mean the hub (or the network) could not be reached.
_UNREACHABLE_HINTS = (
    "offline",
    "couldn't reach",
    "could not reach",
    "connection",
    "max retries",
    "name resolution",
    "network is unreachable",
    "timed out",
    "cannot find the requested files in the local cache",
    "not found in cache",
    "localentrynotfound",
)


def _is_unreachable(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        text = f"{type(current).__name__} {current}".lower()
        if any(hint in text for hint in _UNREACHABLE_HINTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def unreachable_message(hub_id: str) -> str:
    if offline_mode():
        note = "(offline mode is set and the local cache has no copy)"
    else:
        note = "(or set HF_HUB_OFFLINE=1 to use a copy in the local cache)"
    return f"dataset.hub: cannot reach the Hugging Face hub to load {hub_id!r}; {LOCAL_HINT} {note}"


def offline_mode() -> bool:
    """The user asked for cache-only access (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(n, "").strip().lower() in ("1", "true", "yes", "on") for n in names)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout_s: float = 5.0) -> bool:
    """One quick request to the hub, so that an offline machine gets its answer at once
    instead of after the hub client's retries."""
    import httpx

    try:
        httpx.head(hub_endpoint(), timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError:
        return False
    return True


def load_hub_dataset(hub_id: str, config: str | None, split: str) -> Any:
    local = Path(hub_id).expanduser().exists()  # `datasets` also reads a local folder
    if not local and not offline_mode() and not hub_reachable():
        raise DatasetError(unreachable_message(hub_id))
    try:
        datasets = importlib.import_module("datasets")
    except ModuleNotFoundError:
        raise ConfigError(
            "dataset.hub: reading from the Hugging Face hub needs the optional `datasets` "
            f"package (pip install 'debate-platform[hub]'); or {LOCAL_HINT}"
        ) from None
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings would bury our one line
    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # noqa: BLE001 - `datasets` raises many types; we sort them
        if _is_unreachable(exc):
            raise DatasetError(unreachable_message(hub_id)) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(
            f"dataset.hub: cannot load {hub_id!r} (config {config!r}, split {split!r}): {first}"
        ) from None
    finally:
        hub_log.setLevel(level)


def hub_records(hub_id: str, config: str | None, split: str) -> Iterator[tuple[str, Any]]:
    """Rows of a hub data set as (where, dict), `where` being `hub-id[split]:row N`."""
    rows = load_hub_dataset(hub_id, config, split)
    for i, row in enumerate(rows, 1):
        yield f"{hub_id}[{split}]:row {i}", dict(row)
