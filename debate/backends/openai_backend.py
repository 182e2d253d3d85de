"""An OpenAI-compatible server as a backend: vLLM, TGI, llama.cpp's server, hosted APIs.

Settings: `base_url` (else $OPENAI_BASE_URL, else the OpenAI API), the key from `api_key`
or the variable named by `api_key_env` (default OPENAI_API_KEY; a local server without
a key gets the placeholder "EMPTY"). Requests run on a pool of `max_concurrency`
threads; the `openai` client retries 429, 5xx, timeouts and dropped connections
`max_retries` times with exponential backoff (honouring Retry-After) and gives each
request `timeout` seconds. What still fails raises BackendError, which the model
debater records as a failed turn (the debate is then marked failed, and a rerun retries).

Scoring asks for one token with `logprobs` (chat endpoint: `logprobs=true,
top_logprobs=K`; completions endpoint: `logprobs=K` on the plain-template prompt) and
sums the probability of the top tokens that spell each label. A server that returns no
logprobs gets a clear error; a reply whose top tokens include no label scores None.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from debate.backends.base import Backend, BackendError, Chat, Generation, SamplingSettings
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import render_plain_template
from debate.errors import ConfigError


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
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=settings.max_retries,
            timeout=settings.timeout,
        )
        self.pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="openai")

    @property
    def model_id(self) -> str:
        return self.settings.model

    def render(self, chat: Chat) -> str:
        """What is sent: the messages as JSON (the server applies its own chat template)."""
        return json.dumps(list(chat.messages), ensure_ascii=False)

    # ------------------------------------------------------------------ requests
    def _call(self, fn, **kwargs: Any) -> Any:
        """One request; every failure that survives the client's retries -> BackendError."""
        err = self._openai
        try:
            return fn(**kwargs)
        except err.APIStatusError as exc:
            body = exc.message.splitlines()[0] if exc.message else ""
            raise BackendError(
                f"server {self.base_url} answered HTTP {exc.status_code} after "
                f"{self.settings.max_retries} retries: {body}"
            ) from None
        except err.APITimeoutError:
            raise BackendError(
                f"server {self.base_url} did not answer within {self.settings.timeout}s "
                f"({self.settings.max_retries} retries)"
            ) from None
        except err.APIConnectionError as exc:
            raise BackendError(f"cannot connect to {self.base_url}: {exc}") from None

    @staticmethod
    def _extra(settings: SamplingSettings) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if settings.top_k > 0:
            extra["top_k"] = settings.top_k
        if settings.repetition_penalty != 1.0:
            extra["repetition_penalty"] = settings.repetition_penalty
        if settings.min_new_tokens:
            extra["min_tokens"] = settings.min_new_tokens
        return extra

    def _generate_one(self, chat: Chat, settings: SamplingSettings) -> Generation:
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": list(chat.messages),
            "max_tokens": settings.max_new_tokens,
            "temperature": max(settings.temperature, 0.0),
            "seed": chat.seed,
        }
        if settings.top_p < 1.0:
            kwargs["top_p"] = settings.top_p
        extra = self._extra(settings)
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
    def _top_logprobs_chat(self, chat: Chat) -> dict[str, float]:
        messages = list(chat.messages)
        resp = self._call(
            self.client.chat.completions.create,
            model=self.settings.model,
            messages=messages,
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=self.settings.top_logprobs,
        )
        choice = resp.choices[0] if resp.choices else None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if not content:
            raise BackendError(self._no_logprobs("chat completions"))
        return {t.token: t.logprob for t in content[0].top_logprobs or []}

    def _top_logprobs_completions(self, chat: Chat) -> dict[str, float]:
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
        lp = getattr(choice, "logprobs", None)
        tops = getattr(lp, "top_logprobs", None)
        if not tops or tops[0] is None:
            raise BackendError(self._no_logprobs("completions"))
        return dict(tops[0])

    def _no_logprobs(self, endpoint: str) -> str:
        return (
            f"server {self.base_url} returned no logprobs from its {endpoint} endpoint; "
            "log-probability judging needs them (try score_endpoint: "
            f"{'completions' if endpoint.startswith('chat') else 'chat'}, "
            "or use a judge of type text)"
        )

    def score(self, chats: list[Chat], labels: list[str]) -> list[list[float] | None]:
        one = (self._top_logprobs_chat if self.settings.score_endpoint == "chat"
               else self._top_logprobs_completions)
        tops = [f.result() for f in [self.pool.submit(one, c) for c in chats]]
        return [label_probabilities(t, labels) for t in tops]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


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
