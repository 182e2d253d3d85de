"""Reading JSON Lines files with errors that name `file:line`. Pure: no store, no torch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from debate.errors import DatasetError, UserError


def iter_json_lines(
    path: Path, error: type[UserError] = DatasetError, field: str = ""
) -> Iterator[tuple[str, Any]]:
    """(`file:line`, decoded object) for each non-blank line.

    A line that is not JSON, or a file that is not UTF-8, raises `error` naming the place;
    `field` (e.g. "(line): ") is put before the problem for formats that name a field there.
    """
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(
                        f"{where}: {field}not valid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                yield where, obj
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {field and '(file): '}not UTF-8 text ({exc.reason})") from None
