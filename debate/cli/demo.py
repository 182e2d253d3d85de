"""`debate demo`: the main job. A small end-to-end run into the database (by default
sqlite:///debate.db) that says what it did and what to open next. Safe to rerun."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from debate.cli.inspect import experiment_counts, experiments_table
from debate.cli.options import db_option
from debate.demo import available_sections, run_demo
from debate.store.db import open_store


@click.command()
@db_option
def demo(db_url: str | None) -> None:
    """Run the demo: scripted debates and consultancies on the bundled sample data set,
    judge baselines, and the sections of the other parts (model debaters, image debate)
    where they can run here. Rerunning reuses and resumes the same experiments."""
    console = Console(highlight=False)
    started = time.perf_counter()
    store = open_store(db_url)
    try:
        console.print(Panel(
            Text.assemble(
                ("AI safety via debate: demo\n", "bold"),
                f"database: {store.url}\n",
                f"sections: {', '.join(s.split(':')[0] for s in available_sections())}",
            ),
            expand=False,
        ))
        run_demo(store, console)
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
