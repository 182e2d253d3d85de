"""`debate demo`: the main job, a small end-to-end run into the default database.

The demo is made of sections, each owned by the part it shows off. A section is a
function `run(store, console) -> None` that does its work, prints what it did, and
prints what to open next. Sections whose module is absent are left out. A section that
cannot run here (no model can be loaded, say) prints one line saying so and returns.
"""

from __future__ import annotations

import importlib

SECTIONS: list[str] = [
    "debate.demo_scripted:run",  # scripted debates and consultancies on the bundled data set
    "debate.backends.demo:run",  # model debaters and a model judge, when a model loads
    "debate.pixels.demo:run",  # image debate on the digits data set
]


def available_sections() -> list[str]:
    return list(SECTIONS)


def run_demo(store, console) -> None:
    for target in available_sections():
        module, attr = target.split(":")
        getattr(importlib.import_module(module), attr)(store, console)
