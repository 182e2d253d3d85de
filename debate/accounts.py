"""Logins that resist guessing, and web sessions that end.

Throttling. Failed logins are counted per account name (known or not, so names cannot be
probed) and per client address. After `free_failures` failures a further attempt is
refused, without checking the password, until a delay has passed: `base_delay_s`,
doubling with each further failure up to `max_delay_s`; at `lock_after` failures the
name or address is locked for `lock_s`. A refused attempt costs no password hash and
does not count, so a flood of guesses is answered cheaply and cannot starve people who
log in from elsewhere. Failures older than `forget_after_s` are forgotten; a successful
login clears its account's count (not its address's: an attacker with one account
cannot reset the address's count). State lives in the store (`login_throttle`), so
every server process and restart sees it.

Sessions. A login makes a `web_sessions` row (only a SHA-256 of the browser's token is
stored) that expires after `session_hours` (default 12). Every request's token is
checked against it; a password change, `debate users disable NAME` and logout revoke
every session of the account at once.

Settings come from the environment (`DEBATE_LOGIN_*`, `DEBATE_SESSION_HOURS`) with the
defaults below; `LoginPolicy.from_env()` names the variable of a bad value.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from debate.errors import UserError
from debate.store import accounts as writes
from debate.store.db import Store
from debate.store.models import LoginThrottle, User, WebSession, as_utc, utcnow
from debate.users import revoke_sessions, verify_login

__all__ = ["revoke_sessions"]

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class LoginPolicy:
    account_free_failures: int = 3
    account_lock_after: int = 10
    address_free_failures: int = 20
    address_lock_after: int = 100
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    lock_s: float = 900.0
    forget_after_s: float = 900.0
    session_hours: float = 12.0
    enabled: bool = True  # False only to measure the unprotected server (benchmarks)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "enabled" and not value > 0:
                raise UserError(f"{_env_name(f.name)}: must be > 0, not {value!r}")
        if self.account_lock_after < self.account_free_failures:
            raise UserError("DEBATE_LOGIN_ACCOUNT_LOCK_AFTER: must be at least "
                            "DEBATE_LOGIN_ACCOUNT_FREE_FAILURES")
        if self.address_lock_after < self.address_free_failures:
            raise UserError("DEBATE_LOGIN_ADDRESS_LOCK_AFTER: must be at least "
                            "DEBATE_LOGIN_ADDRESS_FREE_FAILURES")

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> LoginPolicy:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(LoginPolicy):
            if f.name == "enabled":
                continue
            name = _env_name(f.name)
            if name in env:
                kind = int if f.type in ("int", int) else float
                try:
                    values[f.name] = kind(env[name])
                except ValueError:
                    raise UserError(f"{name}: {env[name]!r} is not a number") from None
        return LoginPolicy(**values)  # type: ignore[arg-type]

    def limits(self, scope: str) -> tuple[int, int]:
        if scope == ACCOUNT:
            return self.account_free_failures, self.account_lock_after
        return self.address_free_failures, self.address_lock_after


def _env_name(field_name: str) -> str:
    if field_name == "session_hours":
        return "DEBATE_SESSION_HOURS"
    return "DEBATE_LOGIN_" + field_name.upper()


def next_allowed(policy: LoginPolicy, scope: str, failures: int, now: datetime) -> datetime | None:
    """When the next attempt is allowed after `failures` failures (None: at once)."""
    free, lock_after = policy.limits(scope)
    if failures >= lock_after:
        return now + timedelta(seconds=policy.lock_s)
    if failures < free:
        return None
    delay = min(policy.base_delay_s * 2 ** (failures - free), policy.max_delay_s)
    return now + timedelta(seconds=delay)


# ---------------------------------------------------------------- throttling


def _keys(name: str, address: str | None) -> list[tuple[str, str]]:
    keys = [(ACCOUNT, (name or "")[:200])]
    if address:
        keys.append((ADDRESS, address[:200]))
    return keys


def login_wait(store: Store, policy: LoginPolicy, name: str, address: str | None,
               now: datetime | None = None) -> float:
    """Seconds until this name may try from this address (0: now)."""
    if not policy.enabled:
        return 0.0
    now = now or utcnow()
    wait = 0.0
    with store.session() as session:
        for scope, key in _keys(name, address):
            allowed = as_utc(session.scalar(
                select(LoginThrottle.next_allowed_at)
                .where(LoginThrottle.scope == scope, LoginThrottle.key == key)
            ))
            if allowed is not None and allowed > now:
                wait = max(wait, (allowed - now).total_seconds())
    return wait


def record_failure(store: Store, policy: LoginPolicy, name: str, address: str | None,
                   now: datetime | None = None) -> None:
    if not policy.enabled:
        return
    now = now or utcnow()
    forget = timedelta(seconds=policy.forget_after_s)
    for scope, key in _keys(name, address):
        for _attempt in range(3):
            try:
                with store.write_session() as session:
                    writes.record_login_failure(
                        session, scope, key, now, forget,
                        lambda failures, scope=scope: next_allowed(policy, scope, failures, now))
                break
            except IntegrityError:
                continue  # another thread made the row first: count on it


def record_success(store: Store, name: str) -> None:
    where = (LoginThrottle.scope == ACCOUNT, LoginThrottle.key == name[:200])
    with store.session() as session:  # most logins have no failures to clear: no write
        if session.scalar(select(LoginThrottle.id).where(*where)) is None:
            return
    with store.write_session() as session:
        writes.clear_login_failures(session, ACCOUNT, name[:200])


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    wait_s: float = 0.0  # > 0: refused unchecked, try again after this many seconds


def attempt_login(store: Store, policy: LoginPolicy, name: str, password: str,
                  address: str | None) -> LoginOutcome:
    """Check a login under the throttle (see the module docstring)."""
    if not isinstance(name, str) or not isinstance(password, str):
        return LoginOutcome(False)
    wait = login_wait(store, policy, name, address)
    if wait > 0:
        return LoginOutcome(False, wait)
    if verify_login(store, name, password):
        if policy.enabled:
            record_success(store, name)
        return LoginOutcome(True)
    record_failure(store, policy, name, address)
    return LoginOutcome(False)


# ---------------------------------------------------------------- sessions


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(store: Store, policy: LoginPolicy, user_name: str, token: str,
                 client: str | None = None) -> datetime:
    """Record a new login's session; returns when it expires."""
    now = utcnow()
    expires = now + timedelta(hours=policy.session_hours)
    # BEGIN IMMEDIATE on SQLite: a read-then-write transaction waits for the write lock
    # instead of failing when other logins write at the same moment
    with store.write_session() as session:
        user_id = session.scalar(select(User.id).where(User.name == user_name))
        if user_id is None:
            raise UserError(f"name: no user called {user_name!r}")
        writes.insert_web_session(session, token_sha256=token_digest(token), user_id=user_id,
                                  client=(client or "")[:100] or None, created_at=now,
                                  expires_at=expires)
    return expires


def session_user(store: Store, token: str, now: datetime | None = None) -> str | None:
    """The user name of a live session (not expired, not revoked, account enabled)."""
    now = now or utcnow()
    with store.session() as session:
        row = session.execute(
            select(User.name, User.disabled, WebSession.expires_at, WebSession.revoked_at)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_sha256 == token_digest(token))
        ).first()
    if row is None:
        return None
    name, disabled, expires, revoked = row
    if disabled or revoked is not None or as_utc(expires) <= now:  # type: ignore[operator]
        return None
    return name


def revoke_token(store: Store, token: str) -> None:
    with store.write_session() as session:
        writes.revoke_web_session(session, token_digest(token), utcnow())
