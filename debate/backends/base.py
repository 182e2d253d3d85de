"""The backend interface: batched text generation and batched answer scoring.

A backend turns chat conversations into text (`generate`) and prompts into a probability
for each answer label as the next token, normalised over the labels (`score`). Both take
whole batches: the engine hands a backend every turn of one step at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class BackendError(RuntimeError):
    """A backend could not produce a result (server down after retries, no logprobs...)."""


@dataclass(frozen=True)
class Chat:
    """One conversation to continue.

    `cache_prefix`: text at the start of the first message that other conversations
    share (a debate's instructions and source). A backend that can reuse computation keeps
    the key/value cache of the rendered prompt up to the end of this text.
    `assistant_prefix`: text the reply starts with (it is part of the prompt, e.g. "Answer:").
    `seed`: per-conversation sampling seed, so results do not depend on batch order.
    """

    messages: tuple[Message, ...]
    cache_prefix: str | None = None
    assistant_prefix: str = ""
    seed: int = 0


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0  # benchmarks: force a fixed output length

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def continuous_unsupported(settings: SamplingSettings) -> str | None:
    """Why these sampling settings cannot run on the continuous path (None: they can)."""
    if not settings.greedy:
        return "temperature > 0 (continuous batching has no per-request seeded sampling)"
    if settings.repetition_penalty != 1.0:
        return "repetition_penalty != 1 (not supported by continuous batching)"
    if settings.min_new_tokens > 0:
        return "min_new_tokens > 0 (not supported by continuous batching)"
    return None


@dataclass
class Generation:
    text: str
    prompt: str  # the exact text the model was given
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length
    meta: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    name: str = "backend"

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @abstractmethod
    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[Generation]:
        """One generation per chat, in order."""

    @abstractmethod
    def score(self, chats: list[Chat], labels: list[str]) -> list[list[float] | None]:
        """For each chat, P(label) as the reply's next token, normalised over `labels`
        (None where the backend saw no label among the likely next tokens)."""

    def close(self) -> None:
        """Free the model or the connection pool."""
