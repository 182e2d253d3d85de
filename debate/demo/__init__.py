"""`debate demo`: the main job, a small end-to-end run into the default database.

The demo is made of sections, one module each, named for what it shows; `SECTIONS` (a
`debate.registry.Registry`) lists them, in the order the demo runs them:

    scripted    debate.demo.scripted      scripted debates, a consultancy and the judge
                                          baselines on the bundled sample data set
    models      judges.demo_models        model debaters and a log-probability judge, when
                                          a model can be loaded here
    pixels      debate.demo.pixels        image debate (Irving et al. 2018) on the digits
    tournament  judges.demo_tournament    a round robin of debaters of planted strength and
                                          its strength-accuracy curve

A section is a function `run(store, console) -> None` that does its work, prints what it
did, and prints what to open next; one that cannot run here (no model can be loaded, say)
prints one line saying so and returns. Sections that judge live in `judges/`, above
`debate`: nothing in `debate` imports `judges`, and their registry strings are resolved
only when the `debate demo` command runs them (the registry is the lazy-loading mechanism).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console

from debate.registry import Registry
from debate.store.db import Store

Section = Callable[[Store, Console], None]

SECTIONS: Registry[Section] = Registry("demo section", {
    "scripted": "debate.demo.scripted:run",
    "models": "judges.demo_models:run",
    "pixels": "debate.demo.pixels:run",
    "tournament": "judges.demo_tournament:run",
})


def run_sections(store: Store, console: Console, names: Sequence[str] = (),
                 where: str = "section") -> None:
    """Run the named sections in the order given (every section, in order, when none is
    named). An unknown name is refused, naming `where`, before any section runs."""
    names = list(names) or SECTIONS.names()
    for name in names:
        SECTIONS.target(name, where)
    for name in names:
        SECTIONS.get(name, where)(store, console)
