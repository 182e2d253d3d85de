"""An OpenAI-compatible server as a backend: vLLM, TGI, llama.cpp's server, `transformers
serve`, hosted APIs.

Settings: `base_url` (else $OPENAI_BASE_URL, else the OpenAI API), the key from `api_key`
or the variable named by `api_key_env` (default OPENAI_API_KEY; a local server without
a key gets the placeholder "EMPTY"). Requests run on a pool of `max_concurrency`
threads, each given `timeout` seconds.

Retries: 408, 409, 429, 5xx answers, timeouts and dropped connections are retried up to
`max_retries` times with exponential backoff (0.5 s doubling to 8 s, or the server's
Retry-After up to 60 s); each retry is reported as a warning line on stderr while it
waits. Other answers (400, 401, 404, 422...) are never retried. What still fails raises
BackendError with the server's own explanation from the error body and the number of
retries actually made; `retryable=False` for failures no rerun can fix (the server
refused the request, or returns no logprobs). The model debater records a BackendError
as a failed turn (the debate is then marked failed; a rerun retries retryable ones).

Request fields: servers differ in what they accept (`transformers serve` answers 422 to
any field it does not know, such as top_k), so a request carries the standard fields
(model, messages, max_tokens, temperature, seed) and top_p / top_k /
repetition_penalty / min_tokens only when the config sets them to something other than
their neutral default. A 422 naming such a field says which config setting to drop.

Scoring asks for one token with `logprobs` (chat endpoint: `logprobs=true,
top_logprobs=K`; completions endpoint: `logprobs=K` on the plain-template prompt) and
sums the probability of the top tokens that spell each label. Not every server returns
logprobs (`transformers serve` ignores the field; so do some hosted APIs): the first
scoring call goes alone, and if it comes back without logprobs the other endpoint is
tried once, so the error says what does work (the other endpoint, or a text judge /
best_of: 1) and later calls fail at once without a request. A reply whose top tokens
include no label scores None.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from debate.backends.base import Backend, BackendError, Chat, Generation, SamplingSettings
from debate.backends.loading import render_plain_template
from debate.backends.settings import BackendSettings
from debate.errors import ConfigError

log = logging.getLogger("debate.backends.openai")

RETRY_STATUSES = {408, 409, 429}
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0
# request field -> the config setting that sends it
OPTIONAL_FIELDS = {"top_p": "top_p", "top_k": "top_k",
                   "repetition_penalty": "repetition_penalty", "min_tokens": "min_new_tokens"}


def server_explanation(body: Any, fallback: str = "") -> str:
    """The server's own words from an error body: OpenAI's {"error": {"message"}}, FastAPI's
    {"detail": ...} (a string or a list of {loc, msg}), or {"message"} / plain text."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail", "msg"):
                if err.get(key):
                    return server_explanation(err[key], fallback)
        elif isinstance(err, str) and err:
            return err
        detail = body.get("detail")
        if detail:
            return server_explanation(detail, fallback)
    if isinstance(body, list) and body:
        parts = []
        for item in body:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                msg = item.get("msg") or item.get("message") or ""
                parts.append(f"{loc}: {msg}" if loc else str(msg))
            else:
                parts.append(str(item))
        return "; ".join(p for p in parts if p)
    if isinstance(body, str) and body.strip():
        return " ".join(body.split())
    return fallback


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, settings: BackendSettings, where: str = "model"):
        import openai

        self.settings = settings
        self.where = where
        base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL")
        key = settings.api_key or os.environ.get(settings.api_key_env)
        if not key:
            if base_url is None:
                raise ConfigError(
                    f"{where}.api_key_env: ${settings.api_key_env} is not set and no api_key "
                    "given (needed for the OpenAI API; set base_url for a local server)"
                )
            key = "EMPTY"
        self.base_url = base_url or "https://api.openai.com/v1"
        self._openai = openai
        # Retries are made here, not by the client, so they are counted and reported.
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=0,
            timeout=settings.timeout,
        )
        self.pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="openai")
        self._logprobs_lock = threading.Lock()
        self._no_logprobs_error: str | None = None  # set once the server showed it has none
        self._logprobs_checked = False
        self._closed = threading.Event()  # no more retries once closed
        self._reported: dict[tuple[str, int], float] = {}  # retry warnings shown, by when
        self._report_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.settings.model

    def render(self, chat: Chat) -> str:
        """What is sent: the messages as JSON (the server applies its own chat template)."""
        return json.dumps(list(chat.messages), ensure_ascii=False)

    # ------------------------------------------------------------------ requests
    def _call(self, fn, **kwargs: Any) -> Any:
        """One request, retried on 408/409/429/5xx, timeouts and dropped connections;
        what still fails -> BackendError with the server's explanation."""
        err = self._openai
        retries = self.settings.max_retries
        attempt = 0
        while True:
            try:
                return fn(**kwargs)
            except err.APIStatusError as exc:
                status = exc.status_code
                why = server_explanation(getattr(exc, "body", None),
                                         _response_text(exc) or exc.message or "")
                if status not in RETRY_STATUSES and status < 500:
                    raise self._refused(status, why, kwargs) from None
                if attempt >= retries:
                    raise BackendError(
                        f"server {self.base_url} answered HTTP {status} {_after(attempt)}: {why}"
                    ) from None
                what = f"answered HTTP {status} ({why})"
                delay = _retry_after(exc) or _backoff(attempt)
            except err.APITimeoutError:
                if attempt >= retries:
                    raise BackendError(
                        f"server {self.base_url} did not answer within {self.settings.timeout:g}s "
                        f"{_after(attempt)}"
                    ) from None
                what = f"did not answer within {self.settings.timeout:g}s"
                delay = _backoff(attempt)
            except err.APIConnectionError as exc:
                if attempt >= retries:
                    cause = exc.__cause__ or exc
                    raise BackendError(
                        f"cannot connect to {self.base_url} {_after(attempt)}: {cause}; "
                        "is the server running?"
                    ) from None
                what = "cannot be reached"
                delay = _backoff(attempt)
            attempt += 1
            if self._closed.is_set():
                # the backend was closed under a request still in flight (its command has
                # already failed and reported why): no retry, and no warning that would land
                # in whatever the process prints next
                raise BackendError(f"server {self.base_url} {what}; the backend was closed")
            self._report_retry(what, attempt, retries, delay)
            if self._closed.wait(delay):
                raise BackendError(f"server {self.base_url} {what}; stopped retrying: the "
                                   "backend was closed")

    def _report_retry(self, what: str, attempt: int, retries: int, delay: float) -> None:
        """A warning line per retry while it waits; requests in flight together that fail
        alike are reported once (not one line per request)."""
        now = time.monotonic()
        with self._report_lock:
            last = self._reported.get((what, attempt))
            if last is not None and now - last < 5.0:
                return
            self._reported[(what, attempt)] = now
        log.warning("server %s %s; retry %d of %d in %.1fs", self.base_url, what, attempt,
                    retries, delay)

    def _refused(self, status: int, why: str, kwargs: dict[str, Any]) -> BackendError:
        """A 4xx answer no retry can fix, with what to change where it is known."""
        hint = ""
        sent = set(kwargs) | set(kwargs.get("extra_body") or {})
        named = [f for f in OPTIONAL_FIELDS if f in sent and f in why]
        if status in (400, 422) and named:
            settings = ", ".join(f"{self.where}.{OPTIONAL_FIELDS[f]}" for f in named)
            hint = f" (this server does not take {', '.join(named)}: remove {settings})"
        elif status == 401 or status == 403:
            hint = f" (check the key in ${self.settings.api_key_env} or {self.where}.api_key)"
        elif "context" in why.lower() or "too long" in why.lower():
            hint = (" (the prompt does not fit the served model's context: a shorter source "
                    "or max_words, or a model with a longer context)")
        elif status == 404 or (status == 400 and self.settings.model in why):
            hint = f" (check {self.where}.model and {self.where}.base_url)"
        return BackendError(
            f"server {self.base_url} refused the request with HTTP {status}: {why}{hint} "
            "(not retried)",
            retryable=False,
        )

    def _sampling_fields(self, settings: SamplingSettings) -> tuple[dict[str, Any], dict]:
        """Standard fields, and the optional ones a config set (the server may not know
        them, so they are sent only then)."""
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if settings.top_p < 1.0:
            kwargs["top_p"] = settings.top_p
        if settings.top_k > 0:
            extra["top_k"] = settings.top_k
        if settings.repetition_penalty != 1.0:
            extra["repetition_penalty"] = settings.repetition_penalty
        if settings.min_new_tokens:
            extra["min_tokens"] = settings.min_new_tokens
        return kwargs, extra

    def _generate_one(self, chat: Chat, settings: SamplingSettings) -> Generation:
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": list(chat.messages),
            "max_tokens": settings.max_new_tokens,
            "temperature": max(settings.temperature, 0.0),
            "seed": chat.seed,
        }
        optional, extra = self._sampling_fields(settings)
        kwargs.update(optional)
        if extra:
            kwargs["extra_body"] = extra
        resp = self._call(self.client.chat.completions.create, **kwargs)
        if not resp.choices:
            raise BackendError(f"server {self.base_url} returned no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return Generation(
            text=choice.message.content or "",
            prompt=self.render(chat),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
            meta={"response_id": resp.id},
        )

    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[Generation]:
        futures = [self.pool.submit(self._generate_one, c, settings) for c in chats]
        return [f.result() for f in futures]

    # ------------------------------------------------------------------ scoring
    def _top_logprobs_chat(self, chat: Chat) -> dict[str, float] | None:
        """The reply's first-token top logprobs; None: the server sent none."""
        resp = self._call(
            self.client.chat.completions.create,
            model=self.settings.model,
            messages=list(chat.messages),
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=self.settings.top_logprobs,
        )
        choice = resp.choices[0] if resp.choices else None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if not content:
            return None
        return {t.token: t.logprob for t in content[0].top_logprobs or []}

    def _top_logprobs_completions(self, chat: Chat) -> dict[str, float] | None:
        prompt = render_plain_template([dict(m) for m in chat.messages]) + chat.assistant_prefix
        resp = self._call(
            self.client.completions.create,
            model=self.settings.model,
            prompt=prompt,
            max_tokens=1,
            temperature=0.0,
            logprobs=self.settings.top_logprobs,
        )
        choice = resp.choices[0] if resp.choices else None
        tops = getattr(getattr(choice, "logprobs", None), "top_logprobs", None)
        if not tops or tops[0] is None:
            return None
        return dict(tops[0])

    def _endpoints(self):
        chat = ("chat", self._top_logprobs_chat)
        completions = ("completions", self._top_logprobs_completions)
        return (chat, completions) if self.settings.score_endpoint == "chat" else (
            completions, chat)

    def _no_logprobs(self, chat: Chat) -> str:
        """The one-line error for a server without logprobs, after trying the other
        endpoint once so the advice is true."""
        (mine, _), (other, other_fn) = self._endpoints()
        try:
            other_works = other_fn(chat) is not None
        except BackendError:
            other_works = False
        where = self.where
        if other_works:
            fix = f"its {other} endpoint does: set {where}.score_endpoint: {other}"
        else:
            fix = f"nor does its {other} endpoint, so no score_endpoint helps; " + (
                "set best_of: 1, or give a preference_judge on a server that returns logprobs "
                "(vLLM, llama.cpp) or with backend: transformers"
                if where.startswith("debater") else
                "use a judge of type text, or a logprob judge on a server that returns "
                "logprobs (vLLM, llama.cpp) or with backend: transformers")
        need = ("best_of needs them to score candidates" if where.startswith("debater")
                else "a logprob judge needs them")
        return (f"server {self.base_url} returns no logprobs from its {mine} endpoint "
                f"({need}); {fix}")

    def _score_one(self, chat: Chat) -> dict[str, float]:
        if self._no_logprobs_error:
            raise BackendError(self._no_logprobs_error, retryable=False)
        top = self._endpoints()[0][1](chat)
        if top is None:
            with self._logprobs_lock:
                if not self._no_logprobs_error:
                    self._no_logprobs_error = self._no_logprobs(chat)
            raise BackendError(self._no_logprobs_error, retryable=False)
        return top

    def scoring_unavailable(self) -> str | None:
        return self._no_logprobs_error

    def score(self, chats: list[Chat], labels: list[str]) -> list[list[float] | None]:
        if not chats:
            return []
        tops: list[dict[str, float]] = []
        rest = chats
        if not self._logprobs_checked:
            # The first call goes alone: a server without logprobs is found with one request.
            tops.append(self._score_one(chats[0]))
            self._logprobs_checked = True
            rest = chats[1:]
        tops += [f.result() for f in [self.pool.submit(self._score_one, c) for c in rest]]
        return [label_probabilities(t, labels) for t in tops]

    def close(self) -> None:
        self._closed.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _response_text(exc: Any) -> str:
    try:
        return exc.response.text
    except Exception:  # noqa: BLE001 - a body that cannot be read gives no explanation
        return ""


def _after(attempt: int) -> str:
    """How many retries were made, truthfully."""
    if attempt == 0:
        return "(not retried: max_retries is 0)"
    return "after 1 retry" if attempt == 1 else f"after {attempt} retries"


def _backoff(attempt: int) -> float:
    return min(0.5 * 2 ** attempt, MAX_BACKOFF) * (1 - 0.25 * random.random())


def _retry_after(exc: Any) -> float | None:
    """The server's Retry-After (retry-after-ms or seconds), up to a minute."""
    try:
        headers = exc.response.headers
    except Exception:  # noqa: BLE001
        return None
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(key)) * scale
        except (TypeError, ValueError):
            continue
        if 0 <= value <= MAX_RETRY_AFTER:
            return value
    return None


def label_probabilities(top: dict[str, float], labels: list[str]) -> list[float] | None:
    """Normalised probabilities of `labels` among a reply's top first tokens (None: no label
    among them)."""
    mass = [0.0] * len(labels)
    for token, logprob in top.items():
        word = token.strip()
        for i, label in enumerate(labels):
            if word == label:
                mass[i] += math.exp(logprob)
    total = sum(mass)
    if total <= 0:
        return None
    return [m / total for m in mass]
