"""`debate run CONFIG.yaml`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from debate.cli.options import db_option
from debate.config import load_config
from debate.run import plan_run, run_experiment
from debate.store.db import open_store


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--worker", is_flag=True, help="Share the experiment with other workers: "
              "lease debates in small chunks (use with PostgreSQL across machines).")
@click.option("--worker-id", default=None,
              help="Name of this worker (default: host:pid:tag, which lets a rerun on the "
              "same host take over a killed run's debates at once).")
@click.option("--chunk", default=64, show_default=True, type=click.IntRange(min=1),
              help="Debates leased at once by a worker.")
@click.option("--lease-seconds", default=300.0, show_default=True, envvar="DEBATE_LEASE_SECONDS",
              type=click.FloatRange(min=0.1),
              help="How long a worker's claim on a debate lasts without renewal; the debates "
              "of a worker that died go to others after this. [env: DEBATE_LEASE_SECONDS]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(config: Path, db_url: str | None, worker: bool, worker_id: str | None, chunk: int,
        lease_seconds: float, quiet: bool) -> None:
    """Run (or resume) the experiment described by CONFIG.

    Rerunning the same command resumes a stopped or killed run and retries failed
    debates. Exits 1 if debates failed, 2 on bad input (nothing is written then)."""
    cfg = load_config(config)
    plan = plan_run(cfg, config.resolve().parent, str(config))
    store = open_store(db_url)
    try:
        result = run_experiment(
            store,
            cfg,
            config.resolve().parent,
            plan=plan,
            worker=worker_id,
            claim_size=chunk if worker else None,
            lease_seconds=lease_seconds,
            show_progress=not quiet,
        )
    finally:
        store.dispose()
    s = result.stats
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items()))
    verb = "created and ran" if result.created else "resumed"
    retried = f" (retrying {result.reset} failed)" if result.reset else ""
    failed_turns = f" ({s.turns_failed} more failed)" if s.turns_failed else ""
    click.echo(
        f"experiment {cfg.name!r} (id {result.experiment_id}) {verb}{retried}: {s.turns} turns "
        f"made{failed_turns} in {s.seconds:.1f}s ({s.turns_per_second:.0f}/s); "
        f"debates: {counts}"
    )
    if s.waited_seconds:
        click.echo(f"waited {s.waited_seconds:.1f}s for debates leased by other workers")
    if s.lost_leases:
        click.echo(f"lost {s.lost_leases} leases to other workers (their steps were dropped)")
    if result.counts.get("waiting_human"):
        click.echo("some debates wait for a person's turn: open `debate serve`, Debate tab")
    if result.counts.get("failed"):
        debate_id, error = result.errors[0]
        n = result.counts["failed"]
        for_good = s.debates_failed_for_good
        if for_good and for_good >= n:
            advice = "a rerun will not fix this: change what the error names first"
        elif for_good:
            advice = (f"{for_good} of them for a reason a rerun will not fix; rerun the same "
                      "command to retry the others")
        else:
            advice = "rerun the same command to retry them"
        click.echo(f"{n} debates failed (first: debate {debate_id}: {error}); {advice}",
                   err=True)
        sys.exit(1)
