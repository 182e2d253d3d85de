"""Adversarial: accounts that resist guessing, and sessions that end.

The attacks (issue 12, point 4): thirty wrong passwords, then the right one, logged in at
once; a changed password left old sessions working; sessions never expired. Here:
throttling per account and per client address (growing delays, then a lock), refused
attempts answered without a password check, sessions that expire, and revocation on
password change, `debate users disable NAME` and logout, through the launched app.
(The flood that must not starve real users is measured in benchmarks/login_flood.py.)
"""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from cli_runner import run_cli
from sqlalchemy import select, update
from web_world import PASSWORD, add_accounts, free_port

from debate.accounts import (
    ACCOUNT,
    ADDRESS,
    LoginPolicy,
    attempt_login,
    login_wait,
    next_allowed,
)
from debate.errors import UserError
from debate.store import open_store
from debate.store.models import LoginThrottle, WebSession, utcnow
from web import security
from web.app import launch_app

FAST = LoginPolicy(account_free_failures=3, account_lock_after=10, address_free_failures=6,
                   address_lock_after=40, base_delay_s=0.2, max_delay_s=0.2, lock_s=300,
                   forget_after_s=300, session_hours=12)


# ---------------------------------------------------------------- the policy


def test_delays_grow_then_lock():
    p = LoginPolicy()
    now = utcnow()
    waits = [(next_allowed(p, ACCOUNT, n, now) or now) - now for n in range(1, 12)]
    assert waits[0] == waits[1] == timedelta(0)  # the first failures are free
    grown = [w.total_seconds() for w in waits[2:9]]
    assert grown == sorted(grown) and grown[-1] > grown[0]  # growing delays
    assert waits[9] == timedelta(seconds=p.lock_s)  # the lock, at lock_after failures
    assert p.session_hours <= 12


def test_settings_from_the_environment_name_the_bad_variable():
    assert LoginPolicy.from_env({"DEBATE_SESSION_HOURS": "2"}).session_hours == 2
    with pytest.raises(UserError, match="DEBATE_LOGIN_LOCK_S"):
        LoginPolicy.from_env({"DEBATE_LOGIN_LOCK_S": "soon"})
    with pytest.raises(UserError, match="DEBATE_SESSION_HOURS"):
        LoginPolicy.from_env({"DEBATE_SESSION_HOURS": "0"})
    with pytest.raises(UserError, match="ACCOUNT_LOCK_AFTER"):
        LoginPolicy.from_env({"DEBATE_LOGIN_ACCOUNT_LOCK_AFTER": "1"})


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    add_accounts(s, ("alice", "judge"), ("bob", "judge"))
    yield s
    s.dispose()


def test_thirty_wrong_then_right_is_refused_unchecked(store):
    policy = LoginPolicy(base_delay_s=30)
    outcomes = [attempt_login(store, policy, "alice", f"wrong-{i}", "10.0.0.1")
                for i in range(30)]
    assert not any(o.ok for o in outcomes)
    assert sum(o.wait_s > 0 for o in outcomes) >= 26  # refused without a hash check
    right = attempt_login(store, policy, "alice", PASSWORD, "10.0.0.1")
    assert not right.ok and right.wait_s > 0
    # from another address too: the account is what is being guessed
    assert attempt_login(store, policy, "alice", PASSWORD, "10.9.9.9").wait_s > 0
    # bob is unaffected from elsewhere
    assert attempt_login(store, policy, "bob", PASSWORD, "10.9.9.9").ok


def test_lock_after_repeated_failures_and_release_after(store):
    policy = LoginPolicy(account_free_failures=2, account_lock_after=4, base_delay_s=0.01,
                         max_delay_s=0.01, lock_s=600)
    for i in range(4):
        with store.session() as s:  # let every attempt through the short delays
            s.execute(update(LoginThrottle).values(next_allowed_at=None))
        assert not attempt_login(store, policy, "alice", f"bad{i}", None).ok
    wait = login_wait(store, policy, "alice", None)
    assert 590 < wait <= 600  # locked
    with store.session() as s:  # the lock runs out
        s.execute(update(LoginThrottle).where(LoginThrottle.scope == ACCOUNT)
                  .values(next_allowed_at=utcnow() - timedelta(seconds=1)))
    assert attempt_login(store, policy, "alice", PASSWORD, None).ok
    with store.session() as s:  # success clears the account's count
        assert s.scalar(select(LoginThrottle).where(LoginThrottle.scope == ACCOUNT)) is None


def test_spraying_many_names_from_one_address_is_throttled(store):
    policy = LoginPolicy(address_free_failures=5, address_lock_after=8, base_delay_s=30)
    for i in range(12):
        attempt_login(store, policy, f"name{i}", "guess", "10.0.0.66")
    assert login_wait(store, policy, "bob", "10.0.0.66") > 0  # the address waits
    assert attempt_login(store, policy, "bob", PASSWORD, "10.0.0.77").ok  # others do not
    with store.session() as s:
        row = s.scalar(select(LoginThrottle).where(LoginThrottle.scope == ADDRESS))
        assert row.key == "10.0.0.66"


def test_unknown_names_are_throttled_like_known_ones(store):
    policy = LoginPolicy(base_delay_s=30)
    for i in range(4):
        attempt_login(store, policy, "nobody-here", f"x{i}", "10.0.0.2")
    assert login_wait(store, policy, "nobody-here", "10.0.0.3") > 0


# ---------------------------------------------------------------- through the app


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setattr(security, "SESSION_CACHE_SECONDS", 0.0)
    url = f"sqlite:///{tmp_path / 'acc.db'}"
    s = open_store(url)
    add_accounts(s, ("alice", "judge"), ("bob", "judge"), ("carol", "judge"))
    demo, base = launch_app(s, "127.0.0.1", free_port(), block=False, quiet=True, policy=FAST)
    yield s, base.rstrip("/") + "/", url
    demo.close()
    s.dispose()


def login(base: str, user: str, password: str = PASSWORD, address: str | None = None):
    http = httpx.Client(base_url=base, timeout=60)
    headers = {"X-Forwarded-For": address} if address else {}
    r = http.post("login", data={"username": user, "password": password}, headers=headers)
    return http, r


def logged_in(http: httpx.Client) -> bool:
    r = http.get("config")
    return r.status_code == 200


def test_app_throttles_a_guessing_run_and_answers_429(site):
    store, base, _url = site
    # A patient guesser waits out each short delay (FAST: 0.2 s), so the lock comes however
    # fast the machine answers; the right password is then refused too.
    codes = []
    for i in range(30):
        codes.append(login(base, "alice", f"wrong{i}", "10.1.1.1")[1].status_code)
        if codes[-1] == 429:
            time.sleep(0.25)
    assert codes[0] == 400 and 429 in codes
    http, r = login(base, "alice", PASSWORD, "10.1.1.1")
    assert r.status_code == 429 and "try again" in r.json()["detail"]
    assert not logged_in(http)
    http, r = login(base, "bob", PASSWORD, "10.2.2.2")  # someone else, elsewhere
    assert r.status_code == 200 and logged_in(http)
    with store.session() as s:  # the client's address reached the throttle
        keys = set(s.execute(select(LoginThrottle.scope, LoginThrottle.key)).all())
    assert (ADDRESS, "10.1.1.1") in keys and (ACCOUNT, "alice") in keys


def test_sessions_expire(site):
    store, base, _url = site
    http, r = login(base, "alice")
    assert r.status_code == 200 and logged_in(http)
    with store.session() as s:
        row = s.scalar(select(WebSession))
        assert row.expires_at is not None and row.token_sha256 not in http.cookies.values()
        s.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not logged_in(http)


def test_password_change_ends_every_session(site, capsys, monkeypatch):
    _store, base, url = site
    one, _ = login(base, "alice")
    two, _ = login(base, "alice")
    other, _ = login(base, "bob")
    assert logged_in(one) and logged_in(two)
    monkeypatch.setattr("click.prompt", lambda *a, **k: "a-brand-new-password")
    code, out, err = run_cli(["users", "passwd", "alice", "--db", url], capsys)
    assert code == 0, err
    assert "2 web session(s) ended" in out
    assert not logged_in(one) and not logged_in(two)
    assert logged_in(other)
    fresh, r = login(base, "alice", "a-brand-new-password")
    assert r.status_code == 200 and logged_in(fresh)


def test_disable_ends_sessions_and_logins_until_enabled(site, capsys):
    _store, base, url = site
    http, _ = login(base, "carol")
    assert logged_in(http)
    code, out, _ = run_cli(["users", "disable", "carol", "--db", url], capsys)
    assert code == 0 and "disabled" in out
    assert not logged_in(http)
    _code, listing, _ = run_cli(["users", "list", "--db", url], capsys)
    assert "\tcarol\tjudge\tdisabled" in listing and "\tbob\tjudge\n" in listing
    _again, r = login(base, "carol")
    assert r.status_code == 400
    code, _out, _ = run_cli(["users", "disable", "nobody", "--db", url], capsys)
    assert code == 2
    run_cli(["users", "enable", "carol", "--db", url], capsys)
    back, r = login(base, "carol")
    assert r.status_code == 200 and logged_in(back)


def test_logout_ends_the_session(site):
    _store, base, _url = site
    http, _ = login(base, "bob")
    token = dict(http.cookies)
    assert logged_in(http)
    http.get("logout")
    replay = httpx.Client(base_url=base, timeout=60, cookies=token)
    assert not logged_in(replay)


def test_a_token_the_store_never_saw_is_refused(site):
    _store, base, _url = site
    http, _ = login(base, "bob")
    name = next(k for k in http.cookies if k.startswith("access-token-") and "unsecure" not in k)
    forged = httpx.Client(base_url=base, timeout=60, cookies={name: "made-up-token"})
    assert not logged_in(forged)


def test_serve_refuses_bad_settings_before_starting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEBATE_LOGIN_MAX_DELAY_S", "-5")
    code, out, err = run_cli(["serve", "--db", f"sqlite:///{tmp_path / 's.db'}"], capsys)
    assert code == 2
    assert "DEBATE_LOGIN_MAX_DELAY_S" in err and "serving" not in out
