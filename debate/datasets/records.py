"""Reading data set files as (where, record) pairs, and checking their fields.

`where` is the `file:line` a record starts on (for Parquet files, `file:row N`; for hub
data sets, `hub-id[split]:row N`), so that every loader can report a bad record as
`file:line: field: problem`. Nothing here knows a particular data set.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import model_validator

from debate.datasets import DatasetSettings, resolve_path
from debate.datasets.hub import hub_records
from debate.errors import ConfigError, DatasetError
from debate.jsonl import iter_json_lines

Record = tuple[str, Any]


class SourceSettings(DatasetSettings):
    """Options shared by the real data sets: a local path, or a hub id (with config and
    split) read through the optional `datasets` package."""

    hub: str | None = None
    hub_config: str | None = None
    split: str | None = None

    @model_validator(mode="after")
    def _path_or_hub(self) -> SourceSettings:
        if self.path and self.hub:
            raise ValueError("give either path (a local file) or hub (a hub id), not both")
        return self


def json_lines(path: Path) -> Iterator[Record]:
    """Each non-blank line of a JSONL file, decoded."""
    return iter_json_lines(path, DatasetError)


def json_array(path: Path) -> Iterator[Record]:
    """The items of a JSON file holding one array, each with the line it starts on."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise DatasetError(f"{path}:{_line(text, pos)}: expected a JSON array of records")
    pos = _skip_space(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    line, counted = 1, 0  # line numbers counted incrementally: big files stay linear
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        where = f"{path}:{line}"
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        yield where, item
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            return
        raise DatasetError(f"{path}:{_line(text, pos)}: not valid JSON (expected ',' or ']')")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def parquet_rows(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from None
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"{path}:row {i}", row


def csv_rows(path: Path, header: bool) -> Iterator[Record]:
    """CSV rows with the line each starts on (quoted fields may span lines).

    With `header`, rows are dicts keyed by the header; otherwise lists.
    """
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        names: list[str] | None = None
        start = reader.line_num + 1
        for row in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if header and names is None:
                names = [name.strip() for name in row]
                continue
            if names is not None:
                if len(row) > len(names):
                    raise DatasetError(
                        f"{where}: expected {len(names)} columns as in the header, got {len(row)}"
                    )
                yield where, dict(zip(names, row))
            else:
                yield where, row


def records(
    path: Path, csv_header: bool | None = None, other_suffix_jsonl: bool = False
) -> Iterator[Record]:
    """Records of a local file by its suffix: .jsonl, .json (an array), .parquet, .csv.
    With `other_suffix_jsonl`, any other name is read as JSONL (QuALITY's official files
    are named like `QuALITY.v1.0.1.htmlstripped.dev`)."""
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder; give the data file itself")
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return json_lines(path)
    if suffix == ".json":
        return json_array(path)
    if suffix == ".parquet":
        return parquet_rows(path)
    if suffix == ".csv" and csv_header is not None:
        return csv_rows(path, csv_header)
    if other_suffix_jsonl:
        return json_lines(path)
    kinds = ".jsonl, .json, .parquet" + (", .csv" if csv_header is not None else "")
    raise DatasetError(f"{path}: unsupported file type {suffix or '(none)'}; expected {kinds}")


def source_records(
    settings: SourceSettings,
    base_dir: Path,
    *,
    default_hub: tuple[str, str | None, str] | None,
    csv_header: bool | None = None,
    other_suffix_jsonl: bool = False,
) -> Iterator[Record]:
    """Records from `settings.path` (a file) or from the hub (`settings.hub`, else the data
    set's default hub id when no path is given)."""
    if settings.path:
        yield from records(resolve_path(settings.path, base_dir), csv_header, other_suffix_jsonl)
        return
    if settings.hub:
        hub_id, config = settings.hub, settings.hub_config
    elif default_hub is not None:
        hub_id, config = default_hub[0], settings.hub_config or default_hub[1]
    else:
        raise ConfigError("dataset.path: missing (give the data file, or a hub id as dataset.hub)")
    split = settings.split or (default_hub[2] if default_hub else "train")
    yield from hub_records(hub_id, config, split)


# --- field checks: each names the record's place and the field -------------------------


def require(obj: Any, key: str, where: str, prefix: str = "") -> Any:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: {prefix.rstrip('.') or 'record'}: expected an object")
    value = obj.get(key)
    if value is None:
        raise DatasetError(f"{where}: {prefix}{key}: missing")
    return value


def require_text(obj: Any, key: str, where: str, prefix: str = "") -> str:
    value = require(obj, key, where, prefix)
    if not isinstance(value, str):
        raise DatasetError(f"{where}: {prefix}{key}: expected text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise DatasetError(f"{where}: {prefix}{key}: empty")
    return value


def require_list(obj: Any, key: str, where: str, prefix: str = "", min_len: int = 1) -> list:
    value = require(obj, key, where, prefix)
    if not isinstance(value, (list, tuple)):
        raise DatasetError(f"{where}: {prefix}{key}: expected a list, got {type(value).__name__}")
    if len(value) < min_len:
        what = "empty" if not value else f"{len(value)} items"
        raise DatasetError(f"{where}: {prefix}{key}: {what}; need at least {min_len}")
    return list(value)


def require_int(obj: Any, key: str, where: str, prefix: str = "") -> int:
    value = require(obj, key, where, prefix)
    if isinstance(value, bool):
        raise DatasetError(f"{where}: {prefix}{key}: expected a whole number, got {value}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise DatasetError(f"{where}: {prefix}{key}: expected a whole number, got {value!r}")
    return value


def answer_texts(values: list, where: str, field: str) -> list[str]:
    """Answer options as stripped, non-empty strings."""
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{where}: {field}[{i}]: must be non-empty text")
        out.append(value.strip())
    return out


def one_based_label(obj: Any, key: str, n_options: int, where: str, prefix: str = "") -> int:
    """A 1-based option label checked against the options; returns the 0-based index."""
    label = require_int(obj, key, where, prefix)
    if not 1 <= label <= n_options:
        raise DatasetError(
            f"{where}: {prefix}{key}: {label} is out of range 1..{n_options} for "
            f"{n_options} options"
        )
    return label - 1
