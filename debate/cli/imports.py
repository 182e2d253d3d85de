"""`debate import nyu DIR`: bring debates recorded elsewhere into the store."""

from __future__ import annotations

from pathlib import Path

import click

from debate.cli.options import db_option


@click.group("import")
def import_group() -> None:
    """Import debates recorded elsewhere (the NYU 2023 human-debate rooms)."""


@import_group.command("nyu")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@db_option
@click.option("--experiment", default="nyu-2023", show_default=True,
              help="Name of the import experiment the rooms go into.")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The debates-metadata JSONL (default: *metadata*.jsonl in DIR, or beside it).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def nyu(directory: Path, db_url: str | None, experiment: str, metadata: Path | None,
        quiet: bool) -> None:
    """Import NYU debate rooms: DIR holds debates/*.json (and the metadata JSONL), or the rooms."""
    from rich.progress import Progress

    from debate.importers.nyu import find_rooms, import_nyu
    from debate.store.db import open_store

    rooms, _ = find_rooms(directory)
    store = open_store(db_url)
    try:
        with Progress(disable=quiet, transient=True) as progress:
            task = progress.add_task("importing rooms", total=len(rooms))
            report = import_nyu(store, directory, experiment, metadata,
                                on_room=lambda _name, _outcome: progress.advance(task))
    finally:
        store.dispose()
    for problem in report.skipped:
        click.echo(f"skipped {problem}", err=True)
    for problem in report.unverified_quotes:
        click.echo(f"quote kept unverified: {problem}", err=True)
    click.echo(report.summary())
