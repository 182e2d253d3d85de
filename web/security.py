"""The guard in front of the Gradio app: sessions, origins, framing, uploads.

`Guard` is the outermost ASGI layer (installed by `install_guard` when the server starts,
before the first request). For every HTTP request it:

- refuses uploads: the app has no upload component, so POST .../upload gets 403 and
  nothing is stored (Gradio's own `max_file_size` is set tiny as well);
- refuses any request whose Origin is not the app's own (`scheme://host` of the request,
  plus `DEBATE_ALLOWED_ORIGINS`), preflights included, and strips Gradio's permissive
  CORS headers from every response: no other site can call the app with the judge's
  cookies;
- sends `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'`
  (the app cannot be framed), `X-Content-Type-Options: nosniff` and a same-origin
  referrer policy;
- checks the session token of the request's cookie against `web_sessions` (expiry,
  revocation, disabled accounts; a live answer is remembered for at most
  `SESSION_CACHE_SECONDS`, so a revocation reaches a running server within 5 s): a dead
  token is dropped from Gradio's token table before the request goes on, so Gradio
  treats the request as logged out;
- records the session of a successful login (POST /login) and revokes the account's
  sessions on /logout;
- makes the client address known to the login check (`CLIENT_ADDRESS`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from typing import Any

from debate.accounts import LoginPolicy, open_session, revoke_token, session_user
from debate.store.db import Store
from debate.users import revoke_sessions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "debate_client_address", default=None)
SESSION_CACHE_SECONDS = 5.0
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_STRIPPED = {b"access-control-allow-origin", b"access-control-allow-credentials",
             b"access-control-allow-methods", b"access-control-allow-headers",
             b"access-control-max-age", b"x-frame-options", b"content-security-policy"}


def extra_origins() -> set[str]:
    raw = os.environ.get("DEBATE_ALLOWED_ORIGINS", "")
    return {o.strip().rstrip("/") for o in raw.split(",") if o.strip()}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def own_origin(scope: Scope) -> str | None:
    host = _header(scope, b"host")
    if not host:
        return None
    scheme = scope.get("scheme", "http")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{scheme}://{host}".lower()


class Guard:
    def __init__(self, app: ASGIApp, store: Store, policy: LoginPolicy, gradio_app: Any):
        self.app = app
        self.store = store
        self.policy = policy
        self.gradio = gradio_app
        self._checked: dict[str, tuple[float, str | None]] = {}

    # ------------------------------------------------------------ helpers

    def _cookie_names(self) -> tuple[str, str]:
        cid = getattr(self.gradio, "cookie_id", "")
        return f"access-token-{cid}", f"access-token-unsecure-{cid}"

    def _tokens(self, scope: Scope) -> list[str]:
        raw = _header(scope, b"cookie")
        if not raw:
            return []
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 (a malformed cookie header: no session)
            return []
        return [jar[n].value for n in self._cookie_names() if n in jar]

    async def _live(self, token: str) -> str | None:
        now = time.monotonic()
        hit = self._checked.get(token)
        if hit is not None and now - hit[0] < SESSION_CACHE_SECONDS:
            return hit[1]
        # One indexed read at most every SESSION_CACHE_SECONDS per token, in a worker
        # thread: many judges' first requests at once must not queue on the event loop.
        user = await asyncio.to_thread(session_user, self.store, token)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[token] = (now, user)
        return user

    async def _drop_dead_tokens(self, scope: Scope) -> None:
        tokens = getattr(self.gradio, "tokens", None)
        if tokens is None:
            return
        for token in self._tokens(scope):
            if token in tokens and await self._live(token) != tokens.get(token):
                tokens.pop(token, None)

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        CLIENT_ADDRESS.set(client[0] if client else None)
        origin = _header(scope, b"origin")
        if origin is not None:
            allowed = {own_origin(scope), *extra_origins()}
            if origin.rstrip("/").lower() not in allowed:
                if kind == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await self._refuse(send, 403, "cross-origin requests are not accepted")
                return
        if kind == "websocket":
            await self._drop_dead_tokens(scope)
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if method == "POST" and path.rstrip("/").endswith("/upload"):
            await self._refuse(send, 403, "uploads are not accepted by this app")
            return
        if path.rstrip("/").endswith("/logout"):
            await asyncio.to_thread(self._logout, scope)
        await self._drop_dead_tokens(scope)
        login = method == "POST" and path.rstrip("/").endswith("/login")

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _STRIPPED]
                if login and message.get("status") == 200:
                    headers = await asyncio.to_thread(self._record_login, headers, client)
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, guarded_send)

    def _logout(self, scope: Scope) -> None:
        tokens = getattr(self.gradio, "tokens", {}) or {}
        for token in self._tokens(scope):
            user = tokens.get(token) or session_user(self.store, token)
            revoke_token(self.store, token)
            if user:
                # Gradio's logout ends every session of the user; so does the store.
                revoke_sessions(self.store, user)
            self._checked.pop(token, None)

    def _record_login(self, headers: list[tuple[bytes, bytes]],
                      client: Any) -> list[tuple[bytes, bytes]]:
        """Record the session Gradio just made; if that fails, the login fails."""
        names = self._cookie_names()
        tokens = getattr(self.gradio, "tokens", {})
        made: set[str] = set()
        for key, value in headers:
            if key.lower() != b"set-cookie":
                continue
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.decode("latin-1"))
            made.update(jar[n].value for n in names if n in jar)
        for token in made:
            user = tokens.get(token)
            try:
                if user is None:
                    raise LookupError(token)
                open_session(self.store, self.policy, user, token,
                             client[0] if client else None)
                self._checked[token] = (time.monotonic(), user)  # live: no re-read soon
            except Exception:  # noqa: BLE001 (no session row: no login)
                tokens.pop(token, None)
        return headers


def install_guard(store: Store, policy: LoginPolicy):
    """A lifespan for Gradio's app_kwargs that puts `Guard` outermost at startup."""

    @asynccontextmanager
    async def lifespan(app: Any):
        stack = app.middleware_stack or app.build_middleware_stack()
        app.middleware_stack = Guard(stack, store, policy, app)
        yield

    return lifespan
