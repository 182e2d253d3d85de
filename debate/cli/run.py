"""`debate run CONFIG.yaml`."""

from __future__ import annotations

from pathlib import Path

import click

from debate.cli.options import db_option
from debate.config import load_config
from debate.run import run_experiment
from debate.store.db import open_store


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--worker", is_flag=True, help="Share the experiment with other workers: "
              "lease debates in small chunks (use with PostgreSQL across machines).")
@click.option("--worker-id", default=None, help="Name of this worker (default: host:pid).")
@click.option("--chunk", default=64, show_default=True, help="Debates leased at once by a worker.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(config: Path, db_url: str | None, worker: bool, worker_id: str | None, chunk: int,
        quiet: bool) -> None:
    """Run (or resume) the experiment described by CONFIG."""
    cfg = load_config(config)
    store = open_store(db_url)
    result = run_experiment(
        store,
        cfg,
        config.resolve().parent,
        worker=worker_id,
        claim_size=chunk if worker else None,
        show_progress=not quiet,
    )
    s = result.stats
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items()))
    verb = "created and ran" if result.created else "resumed"
    click.echo(
        f"experiment {cfg.name!r} (id {result.experiment_id}) {verb}: {s.turns} turns in "
        f"{s.seconds:.1f}s ({s.turns_per_second:.0f}/s); debates: {counts}"
    )
    if result.counts.get("waiting_human"):
        click.echo("some debates wait for a person's turn: open `debate serve`, Debate tab")
