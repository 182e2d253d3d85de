"""The debater interface: a batch of turn requests in, one result per request out."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from debate.protocols import Limits
from debate.vocabulary import TurnStatus

# The key of an agent's own word limit in its identity's settings (an agent spec's
# `max_words`, any agent type): stored with the agent, read back by `load_states`.
SEAT_MAX_WORDS = "max_words"

# Backend settings that change how fast or where a model runs, not what it says: left out of
# a model agent's stored settings, so out of its fingerprint (debate.agents.model adds the
# debater's own; judges.model uses this set as it is).
OPERATIONAL_SETTINGS = frozenset({
    "device", "max_batch_size", "token_budget", "prefix_cache", "prefix_cache_mb",
    "max_concurrency", "timeout", "max_retries", "api_key", "api_key_env", "base_url",
    "cpu_threads",
})


@dataclass(frozen=True)
class AgentIdentity:
    """What is stored in the agents table: enough to tell exactly who spoke."""

    name: str
    kind: str
    model_id: str | None = None
    backend: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    user_id: int | None = None

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(
            [self.name, self.kind, self.model_id, self.backend, self.settings, self.user_id],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class TranscriptTurn:
    """A turn as a given speaker may see it."""

    role: str
    round: int
    kind: str
    text: str


@dataclass(frozen=True)
class TurnRequest:
    """Everything a debater needs to produce one turn.

    `answers` are in the order shown to the judge (display order); `my_answer` is a
    position in that list (None for a choice turn, or for the judge's question).
    `limits` are the seat's: the protocol's, tightened by the agent's own `max_words`.
    """

    debate_id: int
    question_id: str
    question: str
    answers: tuple[str, ...]
    my_answer: int | None
    role: str
    round: int
    rounds: int
    kind: str  # speech | question | choice
    protocol: str
    transcript: tuple[TranscriptTurn, ...]
    source: str | None
    source_title: str | None
    limits: Limits
    seed: int


@dataclass
class TurnResult:
    """One produced turn. status: ok | truncated | failed | waiting (a person's turn)."""

    text: str
    status: str = TurnStatus.OK
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    shown: str | None = None
    template_version: str | None = None
    candidates: list[dict[str, Any]] | None = None
    error: str | None = None
    # meta["retryable"] = False on a failed turn: running it again cannot help (a request
    # the server refuses, no logprobs, a prompt over the model's context); no rerun advised
    meta: dict[str, Any] = field(default_factory=dict)
    user_id: int | None = None
    # captured hidden states, {(layer, position): vector} (model debaters with `activations:`)
    activations: dict[tuple[int, str], Any] | None = None

    @property
    def shown_sha256(self) -> str | None:
        if self.shown is None:
            return None
        return hashlib.sha256(self.shown.encode()).hexdigest()


class Debater(ABC):
    """A batched agent. `respond` gets every request for this agent at one engine step."""

    @property
    @abstractmethod
    def identity(self) -> AgentIdentity: ...

    @abstractmethod
    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]: ...

    def close(self) -> None:
        """Release models, connections, threads."""
        return None  # nothing to release by default; not abstract: optional to override


def recorded_max_words(settings: dict[str, Any] | None) -> int | None:
    """The word limit recorded in a stored agent's settings, if it has one."""
    value = (settings or {}).get(SEAT_MAX_WORDS)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class WordLimitedDebater(Debater):
    """An agent with its own word limit, tighter than the protocol's (an agent spec's
    `max_words`). The limit is part of the identity, so two debaters that differ only in
    it are distinct agents (own rows, own ratings). The engine reads it back from the
    stored identity and hands the agent requests whose `limits` carry it: the prompt
    states it, and the engine enforces it exactly as it enforces the protocol's (a model
    resamples, then the engine truncates with a mark)."""

    def __init__(self, inner: Debater, max_words: int):
        self.inner = inner
        self.max_words = max_words

    @property
    def identity(self) -> AgentIdentity:
        inner = self.inner.identity
        return replace(inner, settings={**inner.settings, SEAT_MAX_WORDS: self.max_words})

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        return self.inner.respond(requests)

    def close(self) -> None:
        self.inner.close()
