"""`debate datasets list` and `debate datasets show NAME --path P --limit 5`."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml

from debate.datasets import load_questions, loaders, validate_dataset_settings
from debate.errors import ConfigError
from debate.questions import Question


@click.group()
def datasets() -> None:
    """Question sources: list the loaders, or show what one loads."""


@datasets.command("list")
def list_loaders() -> None:
    """Name every data set loader with a line about it."""
    known = loaders()
    width = max(len(name) for name in known)
    for name, loader in known.items():
        click.echo(f"{name:<{width}}  {loader.description}")


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option: {pair!r} is not KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--option: {key.strip()}: cannot read value {value!r}") from None
    return out


def stored_lines(questions: list[Question], with_source: bool) -> Iterator[str]:
    """The questions in the project's JSONL format, each hidden source given once as a
    document line (as the store keeps it), so the output loads back with `name: jsonl`."""
    written: set[str] = set()
    for q in questions:
        row: dict[str, Any] = {
            "id": q.id,
            "question": q.question,
            "answers": list(q.answers),
            "correct_index": q.correct_index,
            "dataset": q.dataset,
        }
        if q.source is not None:
            doc_id = hashlib.sha256(q.source.encode("utf-8")).hexdigest()[:16]
            if with_source:
                if doc_id not in written:
                    written.add(doc_id)
                    doc = {"id": doc_id, "title": q.source_title, "text": q.source}
                    yield json.dumps({"document": doc}, ensure_ascii=False)
                row["document_id"] = doc_id
            else:
                row["source_title"] = q.source_title
                row["source_chars"] = len(q.source)
        row["metadata"] = q.metadata
        yield json.dumps(row, ensure_ascii=False)


@datasets.command("show")
@click.argument("name")
@click.option("--path", default=None, help="Local file or folder in the data set's format.")
@click.option("--hub", default=None, help="A Hugging Face hub id (needs `datasets`, online).")
@click.option("--split", default=None, help="Hub split (each loader has a default).")
@click.option("--limit", type=int, default=5, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--shuffle", is_flag=True, help="Seeded shuffle before the slice.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A loader setting, e.g. -o hard_only=false -o distractor=random.")
@click.option("--no-source", is_flag=True, help="Leave the hidden source texts out.")
def show(name: str, path: str | None, hub: str | None, split: str | None, limit: int,
         offset: int, shuffle: bool, seed: int, options: tuple[str, ...],
         no_source: bool) -> None:
    """Print NAME's questions as they would be stored, one JSON object a line."""
    cfg: dict[str, Any] = {"name": name, **parse_options(options)}
    given = {"path": path, "hub": hub, "split": split}
    cfg.update({k: v for k, v in given.items() if v is not None})
    cfg.update(limit=limit, offset=offset, shuffle=shuffle, seed=seed)
    settings = validate_dataset_settings(cfg)
    log = logging.getLogger("debate.datasets")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        questions = load_questions(settings, Path.cwd())
    finally:
        log.removeHandler(handler)
    for line in stored_lines(questions, with_source=not no_source):
        click.echo(line)
    click.echo(f"{len(questions)} question(s) from {name}", err=True)
