"""`debate run CONFIG.yaml`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from debate.cli.options import db_option
from debate.config import parse_config, read_yaml
from debate.errors import UserError
from debate.run import plan_run, run_experiment
from debate.store.db import open_store, redact, resolve_url
from debate.store.faults import database_errors
from debate.tournaments.config import is_tournament, parse_tournament
from debate.vocabulary import DebateStatus


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--worker", is_flag=True, help="Share the experiment with other workers: "
              "lease debates in small chunks (use with PostgreSQL across machines).")
@click.option("--worker-id", default=None,
              help="Name of this worker, unique among live workers (default: "
              "host:pid:kernel:tag, unique across machines, which lets a rerun on the same "
              "kernel take over a killed run's debates at once; a custom name waits for "
              "lease expiry).")
@click.option("--chunk", default=64, show_default=True, type=click.IntRange(min=1),
              help="Debates leased at once by a worker.")
@click.option("--lease-seconds", default=300.0, show_default=True, envvar="DEBATE_LEASE_SECONDS",
              type=click.FloatRange(min=0.1),
              help="How long a worker's claim on a debate lasts without renewal; the debates "
              "of a worker that died go to others after this. [env: DEBATE_LEASE_SECONDS]")
@click.option("--db-retry-seconds", default=60.0, show_default=True,
              envvar="DEBATE_DB_RETRY_SECONDS", type=click.FloatRange(min=0),
              help="When the database goes away mid-run, keep reconnecting (with backoff) "
              "this long before giving up with exit code 2. [env: DEBATE_DB_RETRY_SECONDS]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(config: Path, db_url: str | None, worker: bool, worker_id: str | None, chunk: int,
        lease_seconds: float, db_retry_seconds: float, quiet: bool) -> None:
    """Run (or resume) the experiment or tournament described by CONFIG.

    A config with a top-level `tournament:` is a tournament: it is expanded once into one
    experiment per game, which are run and judged round by round. Rerunning the same
    command resumes a stopped or killed run and retries failed debates (a tournament
    with more debaters plays only the new games). Exits 0 when done, 1 if debates failed,
    2 on bad input (nothing is written then) or a database unreachable past
    --db-retry-seconds, 3 when the database refused the work (disk full, read-only,
    locked); nothing is half-written in either case."""
    if worker_id is not None and not 0 < len(worker_id) <= 100:
        raise UserError("--worker-id: give 1 to 100 characters")
    data = read_yaml(config, f"{config}: no such file")
    if is_tournament(data):
        if worker:
            raise UserError("--worker: tournaments run in one process for now; run the "
                            "tournament without --worker")
        run_tournament_file(config, data, db_url, quiet)
        return
    cfg = parse_config(data, str(config))
    plan = plan_run(cfg, config.resolve().parent, str(config))
    url = resolve_url(db_url)
    with database_errors(redact(url)):
        store = open_store(url)
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
                db_retry_seconds=db_retry_seconds,
                notify=lambda line: click.echo(line, err=True),
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
    if result.activations:
        a = result.activations
        click.echo(f"activations: {a.vectors} vectors for {a.turns} turns, "
                   f"{a.bytes / 2**20:.2f} MiB ({a.bytes_per_turn:,.0f} bytes per turn)")
    if s.waited_seconds:
        click.echo(f"waited {s.waited_seconds:.1f}s for debates leased by other workers")
    if s.outages:
        click.echo(f"rode out {s.outages} database outage(s); the steps in flight were redone "
                   "from the store")
    if s.lost_leases:
        click.echo(f"lost {s.lost_leases} leases to other workers (their steps were dropped)")
    if result.counts.get(DebateStatus.WAITING_HUMAN):
        click.echo("some debates wait for a person's turn: open `debate serve`, Debate tab")
    if result.counts.get(DebateStatus.FAILED):
        debate_id, error = result.errors[0]
        n = result.counts[DebateStatus.FAILED]
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


def run_tournament_file(config: Path, data: object, db_url: str | None, quiet: bool) -> None:
    from debate.tournaments.run import plan_tournament, run_tournament
    from judges.tournament import judge_games_with

    cfg = parse_tournament(data, str(config))
    config_dir = config.resolve().parent
    plan = plan_tournament(cfg, config_dir, str(config))

    def report(summary: dict) -> None:
        click.echo(f"judge {summary['judge']!r}: {summary['judgments_written']} judgments written")

    url = resolve_url(db_url)
    with database_errors(redact(url)):
        store = open_store(url)
        try:
            judge = judge_games_with(cfg.judges, config_dir, report) if cfg.judges else None
            result = run_tournament(store, cfg, config_dir, plan=plan, judge_games=judge,
                                    show_progress=not quiet)
        finally:
            store.dispose()
    s = result.stats
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.debates.items()))
    retried = f" (retrying {result.reset} failed debates)" if result.reset else ""
    click.echo(
        f"tournament {cfg.tournament!r} (id {result.tournament_id}, {cfg.schedule.type}, "
        f"{len(plan.debaters)} debaters): {result.games} games ({result.created} new){retried} "
        f"in {result.rounds} round(s); {s.turns} turns in {s.seconds:.1f}s; debates: {counts}")
    click.echo(f"next: debate analyze --tournament {cfg.tournament} --table strength "
               "--out results/")
    if result.debates.get(DebateStatus.FAILED):
        debate_id, error = result.errors[0] if result.errors else (None, "?")
        n = result.debates[DebateStatus.FAILED]
        click.echo(f"{n} debates failed (first: debate {debate_id}: "
                   f"{error}); rerun the same command to retry them", err=True)
        sys.exit(1)
