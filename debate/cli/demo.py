"""`debate demo`: the main job. A small end-to-end run into the database (by default
sqlite:///debate.db) that says what it did and what to open next. Safe to rerun.

The sections and their order are `debate.demo.SECTIONS`; this command adds the header,
`--section` and the summary of everything in the database."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from debate.cli.inspect import experiment_counts, experiments_table
from debate.cli.options import db_option
from debate.demo import SECTIONS, run_sections
from debate.store.db import open_store


@click.command()
@db_option
@click.option("--section", "sections", multiple=True, metavar="NAME",
              help=f"Run only this section (repeatable): {', '.join(SECTIONS.names())}.")
def demo(db_url: str | None, sections: tuple[str, ...]) -> None:
    """Run the demo: scripted debates and consultancies on the bundled sample data set,
    judge baselines, model debaters and a model judge where a model can be loaded here, an
    image debate and a planted tournament. Rerunning reuses and resumes the same
    experiments."""
    console = Console(highlight=False)
    started = time.perf_counter()
    store = open_store(db_url)
    try:
        names = sections or tuple(SECTIONS.names())
        console.print(Panel(
            Text.assemble(
                ("AI safety via debate: demo\n", "bold"),
                f"database: {store.url}\n",
                f"sections: {', '.join(names)}",
            ),
            expand=False,
        ))
        run_sections(store, console, sections, where="--section")
        console.rule("Summary")
        counts = experiment_counts(store)
        console.print(experiments_table(counts, title="Everything in the database"))
        debates = sum(c.total_debates for c in counts)
        turns = sum(c.turns for c in counts)
        judgments = sum(c.judgments for c in counts)
        console.print(Text(
            f"Demo finished in {time.perf_counter() - started:.1f}s: {len(counts)} experiments, "
            f"{debates} debates, {turns} turns, {judgments} judgments in {store.url}.",
            style="bold",
        ))
    finally:
        store.dispose()
