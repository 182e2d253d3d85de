"""Options shared by subcommands."""

from __future__ import annotations

import click

db_option = click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="Database URL (default: $DEBATE_DB, else sqlite:///debate.db).",
)
