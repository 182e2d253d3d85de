"""The backend interface: batched text generation and batched answer scoring.

A backend turns chat conversations into text (`generate`) and prompts into a probability
for each answer label as the next token, normalised over the labels (`score`). Both take
whole batches: the engine hands a backend every turn of one step at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from debate.backends.capture import CaptureSpec

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class BackendError(RuntimeError):
    """A backend could not produce a result (server down after retries, no logprobs...).

    `retryable`: whether running the same request again later may succeed (a server that
    was down, overloaded or timed out) or not (a request the server refuses, a server
    without logprobs, a prompt longer than the model's context): the CLI advises a rerun
    only for the first kind. A subclass may set it for all its errors; `retryable=` given
    to one error overrides that.
    """

    retryable = True

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class PromptTooLong(BackendError):
    """A prompt (plus the tokens to generate) does not fit the model's context: one line
    naming the model, its limit and the prompt's length. Rerunning cannot help."""

    retryable = False


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
    # hidden states to record while generating (backends that can: transformers)
    capture: CaptureSpec | None = None

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
    if settings.capture is not None:
        return "activations (captured by hooks on the own generation loop only)"
    return None


@dataclass
class Generation:
    text: str
    prompt: str  # the exact text the model was given
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length
    meta: dict[str, Any] = field(default_factory=dict)
    completion_ids: list[int] = field(default_factory=list)  # token ids, where known
    # {(hidden-state index, position): vector} when SamplingSettings.capture asked for it
    activations: dict[tuple[int, str], Any] | None = None


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

    def context_limit(self) -> int | None:
        """Most tokens (prompt + generated) the model takes; None: unknown here (a server
        checks for itself)."""
        return None

    def prompt_lengths(self, chats: list[Chat]) -> list[int]:
        """Each chat's prompt length in tokens, exactly as it would be fed (backends with a
        context_limit only)."""
        raise NotImplementedError

    def prompt_format(self) -> dict[str, Any]:
        """How prompts are rendered where it departs from the chat as given (e.g. a system
        message folded into the first user message); recorded with the agent."""
        return {}

    def close(self) -> None:
        """Free the model or the connection pool."""
        return None  # nothing to release by default; not abstract: optional to override

    def scoring_unavailable(self) -> str | None:
        """Why `score` is known to fail (a server found without logprobs), so callers can
        stop before work that needs it; None: not known to fail."""
        return None
