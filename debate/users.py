"""People who use the web app: judges, debaters and admins, with argon2id password hashes."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from debate.errors import UserError
from debate.store import accounts as writes
from debate.store.db import Store
from debate.store.models import User, utcnow
from debate.vocabulary import UserRole

ROLES = tuple(r.value for r in UserRole)  # plain strings: click and gradio choices
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 200


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    # argon2id with the library's RFC 9106 "low memory" defaults (t=3, m=64 MiB, p=4).
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when a name is unknown, so both cases take the same time.
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UserError(
            f"name: {name!r} is not a valid user name (1-100 characters: letters, digits, "
            "'_', '.', '@', '-'; starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"password: at most {MAX_PASSWORD} characters")
    return password


def add_user(store: Store, name: str, role: str, password: str) -> UserInfo:
    check_name(name)
    check_role(role)
    check_password(password)
    digest = hash_password(password)
    try:
        with store.session() as session:
            user_id = writes.insert_user(session, name=name, role=role, password_hash=digest)
            return UserInfo(user_id, name, role)
    except IntegrityError:
        raise UserError(f"name: a user called {name!r} already exists") from None


def set_password(store: Store, name: str, password: str) -> int:
    """Change the password and, in the same transaction, revoke every web session of the
    account (a stolen session does not outlive the password). Returns sessions revoked."""
    check_password(password)
    digest = hash_password(password)
    with store.write_session() as session:
        user_id = _user_id(session, name)
        writes.set_password_hash(session, user_id, digest)
        return _revoke(session, user_id)


def set_disabled(store: Store, name: str, disabled: bool) -> int:
    """Disable an account (it cannot log in; every web session of it is revoked at once)
    or enable it again. Returns the sessions revoked."""
    with store.write_session() as session:
        user_id = _user_id(session, name)
        writes.set_disabled(session, user_id, disabled)
        return _revoke(session, user_id) if disabled else 0


def revoke_sessions(store: Store, name: str) -> int:
    """Revoke every live web session of the account; returns how many."""
    with store.write_session() as session:
        user_id = session.scalar(select(User.id).where(User.name == name))
        return 0 if user_id is None else _revoke(session, user_id)


def _user_id(session: Session, name: str) -> int:
    user_id = session.scalar(select(User.id).where(User.name == name))
    if user_id is None:
        raise UserError(f"name: no user called {name!r}")
    return user_id


def _revoke(session: Session, user_id: int) -> int:
    return writes.revoke_user_sessions(session, user_id, utcnow())


def get_user(store: Store, name: str | None, *, enabled_only: bool = False) -> UserInfo | None:
    if not name:
        return None
    query = select(User.id, User.name, User.role).where(User.name == name)
    if enabled_only:
        query = query.where(User.disabled.is_(False))
    with store.session() as session:
        row = session.execute(query).first()
    return UserInfo(*row) if row else None


def list_users(store: Store) -> list[UserInfo]:
    with store.session() as session:
        rows = session.execute(select(User.id, User.name, User.role).order_by(User.name)).all()
    return [UserInfo(*r) for r in rows]


def disabled_names(store: Store) -> set[str]:
    with store.session() as session:
        return set(session.scalars(select(User.name).where(User.disabled.is_(True))))


def verify_login(store: Store, name: str, password: str) -> bool:
    """True when `password` is the user's and the account is enabled; unknown and
    disabled names cost as much time as known ones."""
    if not isinstance(name, str) or not isinstance(password, str):
        return False
    if len(password) > MAX_PASSWORD or len(name) > 100:
        return False
    with store.session() as session:
        digest = session.scalar(
            select(User.password_hash).where(User.name == name, User.disabled.is_(False))
        )
    try:
        ok = _hasher().verify(digest or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and digest is not None
