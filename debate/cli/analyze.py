"""`debate analyze`: how well debate exposed deception, as tables, JSON, CSV and plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from debate.cli.options import db_option
from debate.errors import UserError

FORMATS = ("table", "markdown", "json")


def _parse_where(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise UserError(f"--where: expected FIELD=VALUE, got {item!r}")
        out[field.strip()] = value.strip()
    return out


@click.command()
@click.option("--experiment", "experiments", multiple=True, metavar="NAME",
              help="Experiment to analyse (repeatable; default: all).")
@click.option("--tournament", "tournaments", multiple=True, metavar="NAME",
              help="Analyse this tournament's experiments (repeatable; adds to --experiment).")
@click.option("--by", default="protocol,judge", show_default=True,
              help="Comma-separated grouping fields: protocol, judge, experiment, family, "
                   "judge_type, judging, dataset, status, debater, honest_debater, "
                   "deceptive_debater, or a debate/question metadata key "
                   "(e.g. setting, included_in_paper for the NYU import).")
@click.option("--where", "where", multiple=True, metavar="FIELD=VALUE",
              help="Keep only debates/verdicts whose FIELD equals VALUE (repeatable).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--table", "only", multiple=True, metavar="NAME",
              help="Print only these tables (repeatable; default: all).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write every table as CSV and the plots as PNG into this folder.")
@click.option("--bootstrap", default=0, show_default=True, type=int,
              help="Cluster-bootstrap replicates (resampling source documents; for the "
                   "strength tables, questions) for intervals. With --table strength and "
                   "no --bootstrap: 200.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@db_option
def analyze(experiments: tuple[str, ...], tournaments: tuple[str, ...], by: str, where: tuple[str, ...], fmt: str,
            only: tuple[str, ...], out: Path | None, bootstrap: int, seed: int,
            db_url: str | None) -> None:
    """Judge accuracy, deceptive win rate, calibration, ratings, biases, agreement, and
    the strength-accuracy curve (`--table strength`: judge accuracy in self-play against
    the debaters' ratings, with slopes; add `--out DIR` for strength.png)."""
    from debate.analysis import TABLE_ORDER
    from debate.analysis import analyze as run_analysis
    from debate.analysis.strength import DEFAULT_REPLICATES
    from debate.analysis.tables import rich_width, to_markdown, to_rich
    from debate.store.db import open_store
    from debate.store.tournaments import tournament_games, tournament_names

    unknown = sorted(set(only) - set(TABLE_ORDER))
    if unknown:
        raise UserError(f"--table: unknown table {', '.join(unknown)}; known: {', '.join(TABLE_ORDER)}")
    if "strength" in only:  # the curve's points come with their slopes and the rating check
        only = (*only, "strength_fit", "side_ratings", "connectivity")
    store = open_store(db_url, migrate=False)
    try:
        names = list(experiments)
        for t in tournaments:
            games = tournament_games(store, t)
            if games is None:
                raise UserError(f"--tournament: no tournament named {t!r}; known: "
                                f"{', '.join(tournament_names(store)) or '(none)'}")
            names += [g.experiment for g in games]
        strength_boot = bootstrap or (DEFAULT_REPLICATES if "strength" in only else 0)
        result = run_analysis(store, names or None, by.split(","), bootstrap, seed,
                              _parse_where(where), strength_bootstrap=strength_boot)
    finally:
        store.dispose()
    names = [n for n in TABLE_ORDER if not only or n in only]
    written: list[Path] = []
    if out is not None:
        written = result.write_csv(out) + result.plot_pngs(out)
    if fmt == "json":
        doc = result.to_json()
        doc["tables"] = {n: doc["tables"][n] for n in names}
        doc["meta"]["files"] = [str(p) for p in written]
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return
    meta = result.meta
    header = (f"{meta['debates']} debates, {meta['verdicts']} verdicts, "
              f"{meta['stepped_judgments']} stepped judgments; grouped by {', '.join(meta['by'])}")
    if fmt == "markdown":
        click.echo(f"_{header}_\n")
        for name in names:
            frame = result.tables[name]
            click.echo(f"## {name}\n\n" + (to_markdown(frame) if not frame.empty else "_no data_") + "\n")
    else:
        from rich.console import Console

        # As wide as the widest table needs: a squeezed table truncates its figures.
        needed = max((rich_width(result.tables[n]) for n in names), default=80)
        console = Console(width=max(Console().width, needed))
        console.print(header)
        for name in names:
            frame = result.tables[name]
            if frame.empty and name == "connectivity" and not result.tables["side_ratings"].empty:
                console.print("[dim]connectivity: every (debater, side) player can be rated[/dim]")
            elif frame.empty:
                console.print(f"[dim]{name}: no data[/dim]")
            else:
                console.print(to_rich(frame, name))
    if written:
        click.echo(f"wrote {len(written)} files to {out}")
