"""Accounts: argon2id hashes, login checks, and the `debate users` / `debate campaigns` CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from web_world import run_scripted

from debate.cli import cli, main
from debate.errors import UserError
from debate.store import open_store
from debate.store.models import User
from debate.users import add_user, get_user, set_password, verify_login


def test_add_and_verify(sqlite_store):
    u = add_user(sqlite_store, "alice", "judge", "s3cret-pass")
    assert (u.name, u.role) == ("alice", "judge")
    with sqlite_store.session() as s:
        digest = s.scalar(select(User.password_hash))
    assert digest.startswith("$argon2id$") and "s3cret-pass" not in digest
    assert verify_login(sqlite_store, "alice", "s3cret-pass")
    assert not verify_login(sqlite_store, "alice", "wrong-pass!")
    assert not verify_login(sqlite_store, "nobody", "s3cret-pass")
    assert not verify_login(sqlite_store, "alice", "")
    set_password(sqlite_store, "alice", "another-pass")
    assert verify_login(sqlite_store, "alice", "another-pass")
    assert not verify_login(sqlite_store, "alice", "s3cret-pass")


@pytest.mark.parametrize("name, role, password, message", [
    ("bob", "king", "longenough", "role: 'king' is not one of"),
    ("bad name", "judge", "longenough", "name: 'bad name' is not a valid user name"),
    ("<script>", "judge", "longenough", "is not a valid user name"),
    ("bob", "judge", "short", "password: needs at least 8"),
])
def test_add_refuses_bad_input(sqlite_store, name, role, password, message):
    with pytest.raises(UserError, match=message):
        add_user(sqlite_store, name, role, password)
    assert get_user(sqlite_store, name) is None


def test_duplicate_name(sqlite_store):
    add_user(sqlite_store, "alice", "judge", "longenough")
    with pytest.raises(UserError, match="already exists"):
        add_user(sqlite_store, "alice", "admin", "longenough")


def test_cli_users_and_campaigns(sqlite_url, tmp_path, capsys):
    runner = CliRunner()
    out = runner.invoke(cli, ["users", "add", "root", "--role", "admin", "--generate-password",
                              "--db", sqlite_url])
    assert out.exit_code == 0, out.output
    password = out.output.strip().splitlines()[-1].removeprefix("password: ")
    store = open_store(sqlite_url)
    assert verify_login(store, "root", password)
    out = runner.invoke(cli, ["users", "add", "jo", "--role", "judge", "--db", sqlite_url],
                        input="typed-password\ntyped-password\n")
    assert out.exit_code == 0, out.output
    assert "typed-password" not in out.output
    assert verify_login(store, "jo", "typed-password")
    out = runner.invoke(cli, ["users", "list", "--db", sqlite_url])
    assert "root\tadmin" in out.output and "jo\tjudge" in out.output

    with pytest.raises(SystemExit) as exit_info:
        main(["users", "add", "jo", "--role", "judge", "--generate-password", "--db", sqlite_url])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: name: a user called 'jo' already exists"

    with pytest.raises(SystemExit) as exit_info:
        main(["campaigns", "create", "c1", "--experiment", "missing", "--db", sqlite_url])
    assert exit_info.value.code == 2
    assert "experiment: no experiment called 'missing'" in capsys.readouterr().err

    run_scripted(store, tmp_path, "exp", n_questions=2, rounds=1)
    out = runner.invoke(cli, ["campaigns", "create", "c1", "--experiment", "exp", "--judge", "jo",
                              "--mode", "stepped", "--judgments-per-debate", "2", "--no-reveal",
                              "--db", sqlite_url])
    assert out.exit_code == 0, out.output
    assert "stepped, 2 judgment(s) per debate, no reveal, judges: jo" in out.output
    out = runner.invoke(cli, ["campaigns", "list", "--db", sqlite_url])
    assert "c1\texp\tstepped\tactive\t0/8 judgments" in out.output
    out = runner.invoke(cli, ["campaigns", "close", "1", "--db", sqlite_url])
    assert "closed" in runner.invoke(cli, ["campaigns", "list", "--db", sqlite_url]).output
    store.dispose()


def test_serve_help_lists_options():
    out = CliRunner().invoke(cli, ["serve", "--help"])
    assert out.exit_code == 0
    for opt in ("--db", "--host", "--port"):
        assert opt in out.output
