"""Prefix key/value reuse: the byte-bounded LRU of cached prefixes and how a batch uses it.

A Chat may name its `cache_prefix`, the text its first message starts with that other
prompts share (a debate's instructions and source); the prompt's leading tokens that lie
inside that text are encoded once, kept in `PrefixCache` (bounded by `prefix_cache_mb`),
and written into every batch that needs it. The whole prompt's key/values of a debate's
latest requests are kept too (up to four per prefix): the next turn's prompt repeats the
transcript so far. Each row starts from whichever kept entry shares the longest common
prefix of token ids with its own ids. On CPU, prefixes are fed one at a time without
padding (torch's causal kernel instead of a materialised mask); elsewhere in left-padded
batches.

`PrefixReuse` is a mixin of TransformersBackend (debate/backends/transformers_backend.py):
it uses the backend's model, settings, `_prefill` and `_batches`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class PrefixEntry:
    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, h, n, d]
    nbytes: int


class PrefixCache:
    """LRU of prefix key/value caches, bounded in bytes: memory stays flat however many
    debates have finished."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, PrefixEntry] = OrderedDict()
        self.extended: dict[str, list[str]] = {}
        self.serial = 0
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> PrefixEntry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: PrefixEntry) -> None:
        if key in self.entries:
            return
        self.entries[key] = entry
        self.bytes += entry.nbytes
        while self.bytes > self.max_bytes and self.entries:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        self.entries.clear()
        self.extended.clear()
        self.bytes = 0

    # Extended entries: the whole prompt (prefix + rest) of the latest requests that
    # shared a prefix, so a debate's next turn reuses its transcript so far as well.
    def extensions(self, key: str) -> list[PrefixEntry]:
        found = []
        for ext_key in self.extended.get(key, []):
            entry = self.get(ext_key)
            if entry is not None:
                found.append(entry)
        return found

    def put_extension(self, key: str, entry: PrefixEntry, keep: int = 4) -> None:
        self.serial += 1
        ext_key = f"{key}\x00ext{self.serial}"
        keys = [k for k in self.extended.get(key, []) if k in self.entries]
        keys.append(ext_key)
        for old in keys[:-keep]:
            gone = self.entries.pop(old, None)
            if gone is not None:
                self.bytes -= gone.nbytes
        self.extended[key] = keys[-keep:]
        self.put(ext_key, entry)
        for stale in [k for k, v in self.extended.items() if not any(e in self.entries for e in v)]:
            del self.extended[stale]


@dataclass
class PromptItem:
    index: int
    prefix_key: str | None  # the chat's cache_prefix text: which prefix entry to share
    ids: list[int]  # the whole prompt, tokenised whole
    prefix_len: int  # leading tokens of `ids` that lie inside the cache_prefix text
    seed: int
    prompt: str

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def prefix_ids(self) -> list[int]:
        return self.ids[: self.prefix_len]


class PrefixReuse:
    """Filling, encoding and choosing cached prefixes for a batch (a backend mixin)."""

    def _fill_prefixes(self, items: list[PromptItem]) -> dict[str, PrefixEntry]:
        """The cached prefix of every item, computing the missing ones in batches. An
        entry holds the first tokens of one prompt (tokenised whole) up to the end of the
        shared text; a row reuses as many of them as its own ids share."""
        found: dict[str, PrefixEntry] = {}
        missing: dict[str, list[int]] = {}
        for it in items:
            if it.prefix_key is None or it.prefix_key in found:
                continue
            entry = self.prefix_cache.get(it.prefix_key)
            if entry is not None:
                self.prefix_cache.hits += 1
                found[it.prefix_key] = entry
            elif it.prefix_key not in missing:
                self.prefix_cache.misses += 1
                missing[it.prefix_key] = it.prefix_ids
        pending = [
            PromptItem(i, key, ids, len(ids), 0, "") for i, (key, ids) in enumerate(missing.items())
        ]
        for batch in self._batches(pending, 0):
            for key, entry in self._encode_prefixes(batch).items():
                self.prefix_cache.put(key, entry)
                found[key] = entry
        return found

    def _one_row_at_a_time(self) -> bool:
        """On CPU a prompt fed alone needs no padding mask, so attention takes torch's
        causal kernel, which skips the masked half instead of materialising scores
        (batching buys little there: the work is per token, not per weight read)."""
        return self.device.type == "cpu"

    @torch.inference_mode()
    def _prefill_alone(self, token_ids: list[int]) -> tuple[torch.Tensor, Any]:
        """Feed one unpadded prompt from scratch; its last logits and its cache."""
        n = len(token_ids)
        ids = torch.tensor([token_ids], dtype=torch.long, device=self.device)
        mask = torch.ones_like(ids)
        positions = torch.arange(n, device=self.device)[None, :]
        cache = self._batch_cache(n)
        logits = self._prefill(ids, mask, positions, cache, 0)
        return logits, cache

    @torch.inference_mode()
    def _encode_prefixes(self, batch: list[PromptItem]) -> dict[str, PrefixEntry]:
        if self._one_row_at_a_time():
            out: dict[str, PrefixEntry] = {}
            for it in batch:
                _, cache = self._prefill_alone(it.ids)
                self.stats["prefill_tokens"] += len(it.ids)
                layers = [(lay.keys, lay.values) for lay in cache.layers]
                nbytes = sum(k.numel() * k.element_size() * 2 for k, _ in layers)
                out[it.prefix_key or ""] = PrefixEntry(list(it.ids), layers, nbytes)
            return out
        width = max(len(it.ids) for it in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, it in enumerate(batch):
            n = len(it.ids)
            ids[row, width - n:] = torch.tensor(it.ids)
            mask[row, width - n:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = self._new_cache()
        self._prefill(ids.to(self.device), mask.to(self.device), positions.to(self.device),
                      cache, 0)
        self.stats["prefill_tokens"] += int(mask.sum())
        out = {}
        for row, it in enumerate(batch):
            start = width - len(it.ids)
            layers = [
                (lay.keys[row: row + 1, :, start:, :].clone(),
                 lay.values[row: row + 1, :, start:, :].clone())
                for lay in cache.layers
            ]
            nbytes = sum(k.numel() * k.element_size() * 2 for k, _ in layers)
            out[it.prefix_key or ""] = PrefixEntry(list(it.ids), layers, nbytes)
        return out

    def _reuse_plan(self, batch: list[PromptItem], entries: dict[str, PrefixEntry],
                    new_tokens: int) -> tuple[list[PrefixEntry | None], list[int]]:
        """For each row, the cached entry sharing the most leading token ids with its
        prompt (the debate's prefix, or an earlier prompt of the same debate, whose
        transcript so far this prompt repeats) and how many of them it reuses. At least
        one token is left to feed."""
        reused: list[PrefixEntry | None] = []
        plen: list[int] = []
        for it in batch:
            best, used = None, 0
            if it.prefix_key in entries:
                candidates = [entries[it.prefix_key]]
                candidates += self.prefix_cache.extensions(it.prefix_key or "")
                for entry in candidates:
                    n = min(common_prefix(entry.ids, it.ids), len(it.ids) - 1)
                    if n > used:
                        best, used = entry, n
            reused.append(best)
            plen.append(used)
        if self.window is not None and any(plen):
            width = max(plen) + max(it.length - n for it, n in zip(batch, plen))
            if not self._fits_window(width + new_tokens):
                # the padded layout would outgrow the window: this batch goes without
                return [None] * len(batch), [0] * len(batch)
        return reused, plen
