"""Writes of accounts, web sessions and the login throttle.

Each takes the caller's session: `debate.users` and `debate.accounts` keep the rules
(names, password hashing, throttle policy) and compose the transactions; these write
the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from debate.store.models import LoginThrottle, User, WebSession, as_utc


def insert_user(session: Session, *, name: str, role: str, password_hash: str) -> int:
    """A new users row; returns its id (IntegrityError when the name is taken)."""
    row = User(name=name, role=role, password_hash=password_hash)
    session.add(row)
    session.flush()
    return row.id


def set_password_hash(session: Session, user_id: int, password_hash: str) -> None:
    session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


def set_disabled(session: Session, user_id: int, disabled: bool) -> None:
    session.execute(update(User).where(User.id == user_id).values(disabled=disabled))


def revoke_user_sessions(session: Session, user_id: int, now: datetime) -> int:
    """Revoke every live web session of the user; returns how many."""
    return session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount or 0


def insert_web_session(session: Session, *, token_sha256: str, user_id: int,
                       client: str | None, created_at: datetime, expires_at: datetime) -> None:
    session.add(WebSession(token_sha256=token_sha256, user_id=user_id, client=client,
                           created_at=created_at, expires_at=expires_at))


def revoke_web_session(session: Session, token_sha256: str, now: datetime) -> None:
    """Revoke the one session with this token digest (if it is live)."""
    session.execute(
        update(WebSession)
        .where(WebSession.token_sha256 == token_sha256, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def record_login_failure(
    session: Session,
    scope: str,
    key: str,
    now: datetime,
    forget_after: timedelta,
    next_allowed: Callable[[int], datetime | None],
) -> int:
    """Count one failed login of (scope, key) at `now`; returns the failures counted.

    A last failure older than `forget_after` starts the count again; the next attempt is
    allowed at `next_allowed(failures)`. A read-modify-write of one row: call it inside
    `store.write_session()` (BEGIN IMMEDIATE on SQLite). On PostgreSQL two first failures
    may both make the row; the loser gets IntegrityError and its caller counts again."""
    row = session.scalar(select(LoginThrottle).where(
        LoginThrottle.scope == scope, LoginThrottle.key == key))
    if row is None:
        row = LoginThrottle(scope=scope, key=key, failures=0)
        session.add(row)
    last = as_utc(row.last_failure_at)
    failures = 0 if last is None or now - last > forget_after else row.failures
    row.failures = failures + 1
    row.last_failure_at = now
    row.next_allowed_at = next_allowed(row.failures)
    return row.failures


def clear_login_failures(session: Session, scope: str, key: str) -> None:
    session.execute(delete(LoginThrottle).where(
        LoginThrottle.scope == scope, LoginThrottle.key == key))
