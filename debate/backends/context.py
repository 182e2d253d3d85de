"""Prompts against a model's context length: check, and cut the source to fit.

Every prompt is checked before anything is generated: its tokens (tokenised whole, as
fed) plus the tokens to generate must fit the model's limit (`max_context`, else the
model's `max_position_embeddings`). Past it, an absolute-position model (GPT-2) fails
with an index error and a rotary one runs on into meaningless output, so neither is let
happen. The policy (`context_policy`, recorded with the agent):

- `truncate_source` (default): the source in the prompt is cut to its longest leading
  part that fits, at a word boundary, and a marker says so in the prompt (TRUNCATION_MARK).
  The kept span is stored with the turn (meta.source_kept) or judgment. Quotes are still
  verified against the full source. A prompt that does not fit even with no source (a
  transcript too long), or one without a source, is refused as below.
- `refuse`: the turn or judgment fails with one line naming the model, its limit and the
  prompt's length (PromptTooLong; rerunning cannot help).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from debate.backends.base import Backend, Chat, PromptTooLong

TRUNCATION_MARK = ("\n[... the source is cut here to fit the model's context: the first "
                   "{kept:,} of its {chars:,} characters are shown ...]")


def too_long_message(where: str, model: str, limit: int, prompt_tokens: int,
                     new_tokens: int, detail: str = "") -> str:
    reply = f" + {new_tokens} tokens to generate" if new_tokens else ""
    return (f"{where}: the prompt is {prompt_tokens} tokens{reply}, over the context of "
            f"{model!r} ({limit} tokens){detail}; rerunning cannot help: shorten the source or "
            "the debate, or use a model with a longer context")


def cut_source(source: str, end: int) -> str:
    """source[:end] with the truncation mark."""
    return source[:end] + TRUNCATION_MARK.format(kept=end, chars=len(source))


@dataclass(frozen=True)
class Fitted:
    chat: Chat
    prompt_tokens: int | None  # None: the backend does not count (a server checks)
    kept: dict[str, Any] | None  # the source span shown, when the source was cut


def _word_end(source: str, end: int) -> int:
    """Move `end` back to the end of a word (not more than 200 characters)."""
    if end >= len(source) or end <= 0:
        return end
    start = max(0, end - 200)
    spaces = list(re.finditer(r"\s", source[start:end + 1]))
    return start + spaces[-1].start() if spaces else end


def fit_prompt(backend: Backend, build: Callable[[str | None], Chat], source: str | None,
               new_tokens: int, policy: str, where: str, *, reserve: int = 0,
               hint: int | None = None) -> Fitted:
    """The chat `build(source)`, checked against the backend's context; with policy
    truncate_source and a prompt too long, `build(cut source)` for the longest leading
    part of the source that fits with `reserve` tokens to spare (else without), trying
    `hint` (an earlier cut, so a debate's turns keep one prefix) first."""
    limit = backend.context_limit()
    chat = build(source)
    if limit is None:
        return Fitted(chat, None, None)
    budget = limit - new_tokens
    n = backend.prompt_lengths([chat])[0]
    if n <= budget:
        return Fitted(chat, n, None)
    model = backend.model_id
    if policy != "truncate_source" or not source:
        why = " (context_policy: refuse)" if policy != "truncate_source" else ""
        raise PromptTooLong(too_long_message(where, model, limit, n, new_tokens, why))

    def length(end: int) -> int:
        return backend.prompt_lengths([build(cut_source(source, end))])[0]

    empty = length(0)
    if empty > budget:
        raise PromptTooLong(too_long_message(
            where, model, limit, n, new_tokens,
            f"; even with no source it is {empty} tokens"))
    reserve = min(reserve, limit // 4)
    if hint is not None and 0 < hint < len(source) and length(hint) <= budget:
        end = hint  # an earlier turn's cut still fits: keep it (and the shared prefix)
    else:
        target = budget - reserve if reserve and empty <= budget - reserve else budget
        lo, hi = 0, len(source)  # length(lo) fits, length(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if length(mid) <= target:
                lo = mid
            else:
                hi = mid
        end = _word_end(source, lo)
    chat = build(cut_source(source, end))
    tokens = backend.prompt_lengths([chat])[0]
    return Fitted(chat, tokens, {"start": 0, "end": end, "chars": len(source),
                                 "context_limit": limit, "prompt_tokens": tokens,
                                 "full_prompt_tokens": n})
