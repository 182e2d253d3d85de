"""Login against the users table, and the server-side role checks every handler makes."""

from __future__ import annotations

import asyncio
import functools
import html
import math
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
from fastapi import HTTPException

from debate.accounts import LoginPolicy, attempt_login, login_wait
from debate.errors import UserError
from debate.store.db import Store
from debate.users import UserInfo, get_user
from web.security import CLIENT_ADDRESS

MAX_CONCURRENT_LOGINS = 4


def make_auth(store: Store, policy: LoginPolicy | None = None) -> Callable[[str, str], Any]:
    """Gradio's auth callback: the throttled password check (debate.accounts), off the
    event loop. A throttled attempt is answered 429 with the wait, unchecked."""
    policy = policy or LoginPolicy()
    # argon2 takes 64 MiB and a few hundred ms a check: a few at a time, so a burst of
    # logins cannot exhaust the server's memory.
    slots = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)

    def refuse(wait: float) -> HTTPException:
        return HTTPException(status_code=429, detail=(
            f"Too many failed logins: try again in {math.ceil(wait)} s."))

    async def auth(username: str, password: str) -> bool:
        address = CLIENT_ADDRESS.get()
        # Checked before queueing for a slot and again once it is ours: guesses queued
        # behind the failures that started a delay are refused without a hash.
        wait = await asyncio.to_thread(login_wait, store, policy, username, address)
        if wait > 0:
            raise refuse(wait)
        async with slots:
            outcome = await asyncio.to_thread(attempt_login, store, policy, username,
                                              password, address)
        if outcome.wait_s > 0:
            raise refuse(outcome.wait_s)
        return outcome.ok

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
    user = get_user(store, name, enabled_only=True)
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


class EscapedError(gr.Error):
    """A gr.Error whose message is already escaped."""


def popup_error(message: object) -> gr.Error:
    """A gr.Error whose message is inert text: Gradio shows pop-up messages as HTML, and
    messages carry names users and admins chose (campaigns, experiments, users)."""
    # Text content of the toast: &, < and > are all that can start markup there.
    return EscapedError(html.escape(str(message), quote=False))


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a UserError's one-line message in the page (and to API clients) as a gr.Error,
    escaped; a gr.Error raised with raw text is escaped too."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Refused, EscapedError):
            raise
        except gr.Error as exc:
            raise popup_error(exc.message) from None
        except UserError as exc:
            raise popup_error(exc) from None

    return wrapper
