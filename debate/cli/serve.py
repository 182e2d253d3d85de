"""`debate serve`: the web app for judges, debaters and admins."""

from __future__ import annotations

import click

from debate.accounts import LoginPolicy
from debate.cli.options import db_option
from debate.store.db import open_store
from debate.users import list_users


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
def serve(db_url: str | None, host: str, port: int) -> None:
    """Launch the web app (tabs Judge, Debate, Browse, Results, Admin); login required.

    Login throttling and session lifetime come from DEBATE_LOGIN_* and
    DEBATE_SESSION_HOURS (see the README's security section)."""
    policy = LoginPolicy.from_env()  # a bad DEBATE_LOGIN_* / DEBATE_SESSION_HOURS: exit 2
    store = open_store(db_url)
    if not any(u.is_admin for u in list_users(store)):
        click.echo("note: no admin account yet; add one with "
                   "`debate users add NAME --role admin`", err=True)
    from web.app import launch_app

    click.echo(f"serving {store.url} on http://{host}:{port} (Ctrl+C to stop)")
    launch_app(store, host, port, block=True, quiet=True, policy=policy)
