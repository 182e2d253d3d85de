"""`debate demo`: the main job. A small end-to-end run into the database (by default
sqlite:///debate.db) that says what it did and what to open next. Safe to rerun."""

from __future__ import annotations

import importlib
import time

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from debate.cli.inspect import experiment_counts, experiments_table
from debate.cli.options import db_option
from debate.demo import available_sections, run_demo
from debate.errors import UserError
from debate.store.db import Store, open_store

# Sections of parts above `debate` (which may not import them): run after debate's own.
CLI_SECTIONS = ["judges.demo_tournament:run"]


def all_sections() -> list[str]:
    return available_sections() + CLI_SECTIONS


def section_name(target: str) -> str:
    """A section's short name: debate.demo_scripted:run -> scripted, debate.pixels.demo:run
    -> pixels."""
    return target.split(":")[0].split(".")[1].removeprefix("demo_")


def run_sections(store: Store, console: Console, only: tuple[str, ...]) -> None:
    if not only:
        run_demo(store, console)
        only = tuple(section_name(t) for t in all_sections() if t not in available_sections())
    targets = {section_name(t): t for t in all_sections()}
    unknown = [name for name in only if name not in targets]
    if unknown:
        raise UserError(f"--section: no demo section {unknown[0]!r} here; "
                        f"available: {', '.join(targets)}")
    for name in only:
        module, attr = targets[name].split(":")
        getattr(importlib.import_module(module), attr)(store, console)


@click.command()
@db_option
@click.option("--section", "sections", multiple=True, metavar="NAME",
              help="Run only this section (repeatable): scripted, backends, pixels, tournament.")
def demo(db_url: str | None, sections: tuple[str, ...]) -> None:
    """Run the demo: scripted debates and consultancies on the bundled sample data set,
    judge baselines, and the sections of the other parts (model debaters, image debate)
    where they can run here. Rerunning reuses and resumes the same experiments."""
    console = Console(highlight=False)
    started = time.perf_counter()
    store = open_store(db_url)
    try:
        names = sections or tuple(section_name(s) for s in all_sections())
        console.print(Panel(
            Text.assemble(
                ("AI safety via debate: demo\n", "bold"),
                f"database: {store.url}\n",
                f"sections: {', '.join(names)}",
            ),
            expand=False,
        ))
        run_sections(store, console, sections)
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
