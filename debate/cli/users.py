"""`debate users add|list|passwd`: accounts for the web app."""

from __future__ import annotations

import click

from debate.cli.options import db_option
from debate.store.db import open_store
from debate.users import (
    ROLES,
    add_user,
    disabled_names,
    generate_password,
    list_users,
    set_disabled,
    set_password,
)


@click.group()
def users() -> None:
    """Accounts of judges, debaters and admins (passwords stored as argon2id hashes)."""


def _password(generate: bool) -> tuple[str, bool]:
    if generate:
        return generate_password(), True
    return click.prompt("Password", hide_input=True, confirmation_prompt=True), False


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--generate-password", "generate", is_flag=True,
              help="Generate a password and print it once, instead of prompting for one.")
@db_option
def add(name: str, role: str, generate: bool, db_url: str | None) -> None:
    """Add user NAME; the password is prompted for, or generated and printed."""
    store = open_store(db_url)
    password, generated = _password(generate)
    user = add_user(store, name, role, password)
    click.echo(f"added {user.role} {user.name!r} (id {user.id})")
    if generated:
        click.echo(f"password: {password}")


@users.command("passwd")
@click.argument("name")
@click.option("--generate-password", "generate", is_flag=True,
              help="Generate a password and print it once.")
@db_option
def passwd(name: str, generate: bool, db_url: str | None) -> None:
    """Set a new password for NAME; every web session of NAME ends at once."""
    store = open_store(db_url)
    password, generated = _password(generate)
    revoked = set_password(store, name, password)
    click.echo(f"password of {name!r} changed; {revoked} web session(s) ended")
    if generated:
        click.echo(f"password: {password}")


@users.command("disable")
@click.argument("name")
@db_option
def disable(name: str, db_url: str | None) -> None:
    """Disable NAME: no more logins, and every web session of NAME ends at once."""
    revoked = set_disabled(open_store(db_url), name, True)
    click.echo(f"user {name!r} disabled; {revoked} web session(s) ended")


@users.command("enable")
@click.argument("name")
@db_option
def enable(name: str, db_url: str | None) -> None:
    """Enable NAME again (it logs in afresh)."""
    set_disabled(open_store(db_url), name, False)
    click.echo(f"user {name!r} enabled")


@users.command("list")
@db_option
def list_cmd(db_url: str | None) -> None:
    """List the accounts (disabled ones marked)."""
    store = open_store(db_url)
    disabled = disabled_names(store)
    for u in list_users(store):
        click.echo(f"{u.id}\t{u.name}\t{u.role}" + ("\tdisabled" if u.name in disabled else ""))
