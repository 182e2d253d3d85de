"""`debate export --format jsonl|csv|parquet --out DIR [--experiment NAME]`."""

from __future__ import annotations

from pathlib import Path

import click

from debate.cli.inspect import open_existing_store
from debate.cli.options import db_option
from debate.export import FORMATS, export_store


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="File format: jsonl keeps nested values; csv and parquet hold them as JSON.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              metavar="DIR", help="Directory to create (written whole or not at all).")
@click.option("--experiment", default=None, metavar="NAME",
              help="Export only this experiment (default: all).")
@click.option("--overwrite", is_flag=True, help="Replace DIR if it exists and is not empty.")
@db_option
def export(fmt: str, out_dir: Path, experiment: str | None, overwrite: bool,
           db_url: str | None) -> None:
    """Write experiments, debates, turns, quotes and judgments as files, one row per
    entity, with stable ids and provenance (experiment config, agent model and settings)."""
    store = open_existing_store(db_url)
    try:
        result = export_store(store, out_dir, fmt, experiment=experiment, overwrite=overwrite)
    finally:
        store.dispose()
    counts = ", ".join(f"{n} {table}" for table, n in result.rows.items())
    click.echo(f"wrote {result.out_dir}: {counts}")
