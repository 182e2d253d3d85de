"""Generation through transformers' own continuous batching (`generation: continuous`).

The backend's other path (`generation: own`, debate/backends/transformers_backend.py) runs
its own batched decoding loop. This one hands the same prompt token ids to the library's
`ContinuousBatchingManager` (paged key/value cache, requests scheduled in and out of the
running batch each step, block sharing: a prompt whose leading pages are already in the
cache, such as a debate's instructions + source or its transcript so far, reuses them).

The manager is created once per backend and kept (its paged cache, and so the shared blocks,
persist across engine steps). Each `generate` call starts its loop, submits every prompt,
collects the results and stops the loop again (keeping the cache): between calls the model is
the backend's own (its attention implementation restored), so scoring and the own path can
use it.

Cache sizing is explicit, from the model and the batch settings, never from free memory
(the library's default sizes the cache from system memory: 9 GB on CPU for a 3-prompt smoke
test):

- `page_size` tokens per page (64: block sharing works in whole pages, so small pages
  share more of a debate's growing transcript);
- pages for `token_budget` tokens (one full batch of prompts + new tokens, the same bound as
  the own path) plus `prefix_cache_mb` worth of pages (at most as many again) for shared
  blocks kept between calls;
- at most `max_batch_size` requests and `continuous_max_batch_tokens` tokens per forward step.

What it supports: greedy decoding with stop tokens and `max_new_tokens` (the library's
continuous batching has no per-request seeded sampling, no minimum length and no repetition
penalty; the settings refuse those combinations, `generation: auto` falls back to the own
path for them). Greedy text is the same as the own path's, token for token.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from debate.backends.attention import GQA_SDPA
from debate.backends.base import BackendError
from debate.backends.settings import BackendSettings

PAGE_SIZE = 64


def kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Key + value bytes one token takes over all layers."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    size = torch.tensor([], dtype=dtype).element_size()
    return 2 * text.num_hidden_layers * kv_heads * head_dim * size


@dataclass(frozen=True)
class CacheSizing:
    page_size: int
    num_blocks: int
    max_batch_tokens: int
    max_requests_per_batch: int

    @property
    def capacity_tokens(self) -> int:
        return self.page_size * self.num_blocks


def cache_sizing(settings: BackendSettings, config: Any, dtype: torch.dtype) -> CacheSizing:
    """The paged cache's size from the model and the batch settings (not from free memory)."""
    per_token = kv_bytes_per_token(config, dtype)
    batch_pages = math.ceil(settings.token_budget / PAGE_SIZE)
    # Shared blocks kept between calls: prefix_cache_mb of them, at most one more batch's
    # worth. (On CPU and without flash attention every forward step builds a dense mask over
    # the readable cache, sized for the whole cache: a cache far larger than the batch costs
    # memory for nothing.)
    shared_pages = min(int(settings.prefix_cache_mb * 2**20 // (per_token * PAGE_SIZE)),
                       batch_pages)
    return CacheSizing(
        page_size=PAGE_SIZE,
        num_blocks=batch_pages + shared_pages + 1,
        max_batch_tokens=min(settings.continuous_max_batch_tokens, settings.token_budget),
        max_requests_per_batch=settings.max_batch_size,
    )


@dataclass
class ContinuousResult:
    tokens: list[int]  # generated, stop token excluded
    finish_reason: str  # stop | length
    reused_tokens: int  # prompt tokens whose key/values came from shared cache blocks
    stop_token: int | None = None  # the stop token that ended it (not in `tokens`)


class ContinuousGenerator:
    """A persistent `ContinuousBatchingManager` for one model."""

    def __init__(self, model: Any, settings: BackendSettings, stop_ids: set[int], pad_id: int):
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        self.model = model
        self.stop_ids = set(stop_ids)
        self.sizing = cache_sizing(settings, model.config, model.dtype)
        self.generation_config = GenerationConfig(
            do_sample=False,
            max_new_tokens=1,
            eos_token_id=sorted(self.stop_ids) or -1,
            pad_token_id=pad_id,
        )
        self.cb_config = ContinuousBatchingConfig(
            page_size=self.sizing.page_size,
            num_blocks=self.sizing.num_blocks,
            max_batch_tokens=self.sizing.max_batch_tokens,
            max_requests_per_batch=self.sizing.max_requests_per_batch,
            allow_block_sharing=True,
            # never size anything from free memory: the values above are all explicit
            cpu_offload_space=0.0,
        )
        self.manager: Any = None
        self.lock = threading.Lock()
        self.reused: dict[str, int] = {}
        self.serial = 0
        self.stats = {"requests": 0, "reused_tokens": 0}

    def _manager(self) -> Any:
        if self.manager is None:
            # the library's manager accepts only its own attention names; sdpa_gqa is the
            # same kernel, so the model goes back to plain sdpa (for the own path too)
            if self.model.config._attn_implementation == GQA_SDPA:
                self.model.set_attn_implementation("sdpa")
            self.manager = self.model.init_continuous_batching(
                generation_config=self.generation_config,
                continuous_batching_config=self.cb_config,
            )
        return self.manager

    def _watch_prefix_matches(self) -> None:
        """Record how many prompt tokens each request took from shared blocks (the
        library keeps the figure to itself)."""
        processor = self.manager.batch_processor
        cache = getattr(processor, "cache", None)
        if cache is None or getattr(cache, "_debate_watched", False):
            return
        original = cache.search_prefix_match

        def search(request_id: str, prompt_ids: list[int]) -> int:
            n = original(request_id, prompt_ids)
            self.reused[request_id] = self.reused.get(request_id, 0) + n
            return n

        cache.search_prefix_match = search
        cache._debate_watched = True

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], max_new_tokens: int,
                 timeout: float = 3600.0) -> list[ContinuousResult]:
        too_long = [len(p) + max_new_tokens for p in prompts
                    if len(p) + max_new_tokens > self.sizing.capacity_tokens]
        if too_long:
            raise BackendError(
                f"a prompt of {max(too_long) - max_new_tokens} tokens + {max_new_tokens} new "
                f"tokens does not fit the continuous-batching cache ({self.sizing.capacity_tokens} "
                "tokens); raise token_budget")
        with self.lock:
            manager = self._manager()
            if manager.batch_processor is None:
                manager.batch_processor = manager._create_batch_processor()
            self._watch_prefix_matches()
            manager.start()
            try:
                ids = []
                for prompt in prompts:
                    self.serial += 1
                    rid = f"debate-{self.serial}"
                    manager.add_request(list(prompt), request_id=rid,
                                        max_new_tokens=max_new_tokens,
                                        eos_token_id=sorted(self.stop_ids) or -1)
                    ids.append(rid)
                results: dict[str, Any] = {}
                deadline = time.monotonic() + timeout
                while len(results) < len(ids):
                    out = manager.get_result(timeout=1.0)
                    if out is None:
                        if not manager.is_running():
                            error = manager.background_thread_status.fatal_error
                            raise BackendError(f"continuous batching stopped: {error}")
                        if time.monotonic() > deadline:
                            raise BackendError("continuous batching timed out")
                        continue
                    if out.is_finished():
                        results[out.request_id] = out
            finally:
                manager.stop(block=True, keep_for_next_session=True)
        converted = []
        for rid in ids:
            out = results[rid]
            if out.error is not None:
                raise BackendError(f"continuous batching failed a request: {out.error}")
            tokens = list(out.generated_tokens)
            finish, stop = "length", None
            if tokens and tokens[-1] in self.stop_ids:
                stop = tokens.pop()
                finish = "stop"
            converted.append(ContinuousResult(tokens, finish, self.reused.pop(rid, 0), stop))
        self.stats["requests"] += len(ids)
        self.stats["reused_tokens"] += sum(r.reused_tokens for r in converted)
        return converted

    def close(self) -> None:
        with self.lock:
            if self.manager is not None:
                self.manager.destroy()
                self.manager = None
            if hasattr(self.model, "_cached_continuous_batching_manager"):
                self.model.destroy_cached_continuous_batching_manager()
