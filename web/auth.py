"""Login against the users table, and the server-side role checks every handler makes."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from debate.errors import UserError
from debate.store.db import Store
from debate.users import UserInfo, get_user, verify_login

MAX_CONCURRENT_LOGINS = 4


def make_auth(store: Store) -> Callable[[str, str], Any]:
    """Gradio's auth callback: checks the password hash in the database off the event loop."""

    # argon2 takes 64 MiB and a few hundred ms a check: a few at a time, so a burst of
    # logins cannot exhaust the server's memory.
    slots = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)

    async def auth(username: str, password: str) -> bool:
        async with slots:
            return await asyncio.to_thread(verify_login, store, username, password)

    return auth


class Refused(gr.Error):
    """A request the logged-in user may not make."""


USER_CACHE_SECONDS = 2.0
_users: dict[tuple[str, str], tuple[float, UserInfo | None]] = {}


def _lookup(store: Store, name: str | None) -> UserInfo | None:
    """get_user, remembered for a couple of seconds: every event checks the user's role,
    and a judge clicking through debates should not pay a round trip for it each time."""
    if not name:
        return None
    key = (store.url, name)
    hit = _users.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < USER_CACHE_SECONDS:
        return hit[1]
    user = get_user(store, name)
    _users[key] = (now, user)
    return user


def current_user(store: Store, request: gr.Request | None, *roles: str) -> UserInfo:
    """The logged-in user, checked against `roles` (admins pass every check)."""
    name = getattr(request, "username", None) if request is not None else None
    user = _lookup(store, name)
    if user is None:
        raise Refused("not logged in")
    if roles and user.role not in roles and not user.is_admin:
        raise Refused(f"refused: this needs the {' or '.join(roles)} role")
    return user


def require_admin(store: Store, request: gr.Request | None) -> UserInfo:
    user = current_user(store, request)
    if not user.is_admin:
        raise Refused("refused: admins only")
    return user


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a UserError's one-line message in the page (and to API clients) as a gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    return wrapper
