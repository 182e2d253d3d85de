"""`debate db upgrade|current`."""

from __future__ import annotations

from pathlib import Path

import click

from debate.cli.options import db_option
from debate.store.db import check_known, current_revision, head_revision, make_engine, resolve_url
from debate.store.db import upgrade as apply_upgrade


@click.group()
def db() -> None:
    """Create or migrate the database schema."""


@db.command()
@db_option
def upgrade(db_url: str | None) -> None:
    """Apply all migrations (creates the database if needed)."""
    engine = make_engine(resolve_url(db_url))
    before = current_revision(engine)
    after = apply_upgrade(engine)
    if before == after:
        click.echo(f"{engine.url.render_as_string(hide_password=True)}: already at {after}")
    else:
        click.echo(f"{engine.url.render_as_string(hide_password=True)}: {before or 'empty'} -> {after}")


@db.command()
@db_option
def current(db_url: str | None) -> None:
    """Print the database's schema revision (creates nothing)."""
    url = resolve_url(db_url)
    engine = make_engine(url)
    head = head_revision()
    database = engine.url.database
    is_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
    if is_file and not Path(database).exists():
        click.echo(f"none (no database file at {database}; head is {head})")
        return
    rev = check_known(engine, allow_empty=True)
    engine.dispose()
    if rev is None:
        click.echo(f"none (empty database; head is {head})")
    else:
        click.echo(f"{rev}{' (head)' if rev == head else f' (head is {head})'}")
