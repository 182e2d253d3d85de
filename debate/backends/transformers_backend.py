"""A local transformers model as a batched backend, with key/value reuse of shared prefixes.

This module holds the backend's setup (chat template, system-role check, context limit,
cache layout), prompt rendering and tokenising, batching and the choice of generation
path; the other jobs live beside it:

- loading.py: device and dtype, `load_pretrained` (hub id or local directory, one code
  path; the local cache first, the hub only after a quick reachability check;
  HF_HUB_OFFLINE=1 never tries the network) and the plain template;
- prefix_cache.py: the prefix key/value cache and how a batch reuses it (`PrefixReuse`);
- generation_loop.py: the own decoding loop (`generation: own`, `GenerationLoop`);
- scoring.py: label probabilities (`Scoring`);
- continuous.py: transformers' ContinuousBatchingManager (`generation: continuous`;
  greedy only); `auto` picks per device (AUTO_GENERATION).

Prompts: the tokenizer's chat template when it has one. Without one (`chat_template:
auto`), the documented plain template:

    ### System:
    {system message}

    ### User:
    {user message}

    ### Assistant:
    {reply}

`chat_template: tokenizer` refuses a tokenizer without a template; `chat_template: plain`
always uses the plain one; any other value is a path to a Jinja template file.

Generation: requests are sorted by length and cut into batches of at most
`max_batch_size` rows and `token_budget` padded tokens (prompt + new tokens per row);
a batch that runs out of memory is halved and tried again.

Prompts are tokenised whole: the ids fed are tokenizer(prompt) (no special tokens added
under a chat template, which writes its own), so a stored prompt reproduces the turn
anywhere. A template that refuses a system message (Gemma's) or drops it gets the system
text folded into the first user message (prompt_format(), recorded with the agent).
Every prompt is checked against the context limit first (PromptTooLong, one line).

Sliding-window models keep prefix reuse while a batch's padded prompt + reply stays inside
the window (sliding attention is then full attention); longer prompts go without, batched
apart, and the backend says so once (a warning; `reuse_notes`). Other cache layouts
(linear attention...) go without reuse, said once likewise.
"""

from __future__ import annotations

import inspect
import logging
import time
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from debate.backends.base import (
    Backend,
    BackendError,
    Chat,
    Generation,
    PromptTooLong,
    SamplingSettings,
    continuous_unsupported,
)
from debate.backends.context import too_long_message
from debate.backends.continuous import ContinuousGenerator
from debate.backends.generation_loop import GenerationLoop
from debate.backends.kv_cache import preallocated_cache
from debate.backends.loading import load_pretrained, pick_device, render_plain_template
from debate.backends.prefix_cache import PrefixCache, PrefixReuse, PromptItem, common_prefix
from debate.backends.scoring import Scoring
from debate.backends.settings import BackendSettings
from debate.errors import ConfigError

log = logging.getLogger(__name__)

# `generation: auto`, per device type: the faster path in the figures of
# benchmarks/README.md ("generation"). CPU: the own loop (continuous batching there packs
# every request into one sequence with a dense mask, and was 3-5x slower). CUDA: the own
# loop until benchmarks/gpu_run.sh has been run on a GPU (it prints the choice its figures
# imply); other devices: the own loop.
AUTO_GENERATION = {"cpu": "own", "cuda": "own"}


class TransformersBackend(PrefixReuse, GenerationLoop, Scoring, Backend):
    name = "transformers"

    def __init__(self, settings: BackendSettings, where: str = "model"):
        self.settings = settings
        self.where = where
        self.device, self.dtype = pick_device(settings.device, settings.dtype, where)
        if settings.cpu_threads and self.device.type == "cpu":
            torch.set_num_threads(settings.cpu_threads)
        self.tokenizer, self.model = load_pretrained(settings, where, self.device, self.dtype)
        self._template = self._choose_template(where)
        self.system_folded = self._system_role_check(where)
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if self.pad_id is None:
            self.pad_id = 0
        self.stop_ids = self._stop_ids()
        self._tokenised_cache: OrderedDict[str, tuple[array, array | None]] = OrderedDict()
        self._limit = self._context_limit(where)
        self.prefix_cache = PrefixCache(int(settings.prefix_cache_mb * 2**20))
        self.window, off = self._cache_layout()
        self.prefix_enabled = settings.prefix_cache and off is None
        # every layer a plain full-attention DynamicLayer: batches get a preallocated cache
        self._plain_layers = off is None and self.window is None
        self.reuse_notes: list[str] = []  # what was said about prefix reuse being off
        if settings.prefix_cache and off is not None:
            self._say_reuse_off(off)
        self.stats: dict[str, float] = {"prefill_tokens": 0, "decode_steps": 0, "batches": 0}
        # transformers 5.x renamed forward's `past_key_values` to `cache`
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._continuous: ContinuousGenerator | None = None

    # ------------------------------------------------------------------ setup
    @property
    def model_id(self) -> str:
        return self.settings.model

    def _choose_template(self, where: str) -> str | None:
        """None: the tokenizer's own template; "plain": the plain one; else Jinja text."""
        choice = self.settings.chat_template
        has_own = bool(getattr(self.tokenizer, "chat_template", None))
        if choice == "auto":
            return None if has_own else "plain"
        if choice == "tokenizer":
            if not has_own:
                raise ConfigError(
                    f"{where}.chat_template: the tokenizer of {self.settings.model!r} has no chat "
                    "template; set chat_template: plain (or auto) or give a template file"
                )
            return None
        if choice == "plain":
            return "plain"
        path = Path(choice).expanduser()
        if not path.is_file():
            raise ConfigError(f"{where}.chat_template: no such template file {choice!r}")
        return path.read_text(encoding="utf-8")

    def _apply_template(self, messages: list[dict[str, str]]) -> str:
        if self._template == "plain":
            return render_plain_template(messages)
        extra = {} if self._template is None else {"chat_template": self._template}
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **extra
        )

    def _system_role_check(self, where: str) -> bool:
        """Does the chat template take a system message? Some (Gemma's) raise on one, some
        drop it. Then the system text is folded into the first user message (True); a
        template that fails on a plain user message as well is a one-line config error."""
        if self._template == "plain":
            return False
        system, user = "\u2063SYSTEM-PROBE\u2063", "\u2063USER-PROBE\u2063"
        try:
            text = self._apply_template([{"role": "system", "content": system},
                                         {"role": "user", "content": user}])
            if system in text:
                return False
            why = "drops the system message"
        except Exception as exc:  # noqa: BLE001 - jinja's TemplateError and friends
            why = f"fails on a system message ({str(exc).splitlines()[0] if str(exc) else exc!r})"
        try:
            text = self._apply_template([{"role": "user", "content": system + "\n\n" + user}])
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"{where}.chat_template: the chat template of {self.settings.model!r} {why} and "
                f"fails on a user message too ({str(exc).splitlines()[0]}); set "
                "chat_template: plain or give a template file"
            ) from None
        if system not in text or user not in text:
            raise ConfigError(
                f"{where}.chat_template: the chat template of {self.settings.model!r} {why} and "
                "drops text from a user message too; set chat_template: plain or give a "
                "template file"
            )
        return True

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, (list, tuple)):
            ids.update(int(i) for i in gen_eos)
        return ids

    def _text_config(self) -> Any:
        config = self.model.config
        return config.get_text_config() if hasattr(config, "get_text_config") else config

    def _context_limit(self, where: str) -> int | None:
        """max_context if set (never past the model's positions), else the model's
        max_position_embeddings (n_positions for GPT-2)."""
        own = getattr(self._text_config(), "max_position_embeddings", None)
        own = int(own) if isinstance(own, int) and own > 0 else None
        wanted = self.settings.max_context
        if wanted is None:
            return own
        if own is not None and wanted > own:
            raise ConfigError(
                f"{where}.max_context: {wanted} is more than {self.settings.model!r} takes "
                f"({own} positions, max_position_embeddings)"
            )
        return wanted

    def _cache_layout(self) -> tuple[int | None, str | None]:
        """(sliding window or None, why prefix reuse cannot work or None). Reuse needs
        full-attention key/value layers; sliding-window layers are full attention as long
        as a batch's prompt and reply stay inside the window, so reuse is kept there."""
        try:
            cache = self._new_cache()
        except Exception as exc:  # noqa: BLE001 - unusual architectures: no reuse
            return None, f"its cache cannot be built from the config ({type(exc).__name__})"
        layers = getattr(cache, "layers", [])
        kinds = {type(lay).__name__ for lay in layers}
        if not layers or not kinds <= {"DynamicLayer", "DynamicSlidingWindowLayer"}:
            names = ", ".join(sorted(kinds)) or "none"
            return None, f"its cache layers ({names}) are not plain key/value layers"
        windows = [int(lay.sliding_window) for lay in layers
                   if type(lay).__name__ == "DynamicSlidingWindowLayer"]
        return (min(windows) if windows else None), None

    def _say_reuse_off(self, why: str) -> None:
        """Once per backend (a run builds one per model): why prefix reuse is off."""
        note = f"{self.where}: prefix key/value reuse is off for {self.settings.model!r}: {why}"
        if note not in self.reuse_notes:
            self.reuse_notes.append(note)
            log.warning("%s", note)

    def _new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _batch_cache(self, capacity: int):
        """A cache whose layers are allocated once for `capacity` positions (plain
        full-attention models); otherwise the library's growing cache."""
        if self._plain_layers:
            return preallocated_cache(self.model.config, capacity)
        return self._new_cache()

    # ------------------------------------------------------------------ prompts
    def context_limit(self) -> int | None:
        return self._limit

    def prompt_format(self) -> dict[str, Any]:
        return {"system_message": "folded into the first user message"} if self.system_folded \
            else {}

    def _messages(self, chat: Chat) -> list[dict[str, str]]:
        messages = [dict(m) for m in chat.messages]
        if not self.system_folded:
            return messages
        system = [m["content"] for m in messages if m["role"] == "system"]
        others = [m for m in messages if m["role"] != "system"]
        if not system:
            return others
        head = "\n\n".join(system)
        for m in others:
            if m["role"] == "user":
                m["content"] = head + "\n\n" + m["content"]
                return others
        return [{"role": "user", "content": head}] + others

    def render(self, chat: Chat) -> str:
        return self._apply_template(self._messages(chat)) + chat.assistant_prefix

    @property
    def adds_special_tokens(self) -> bool:
        """Chat templates write their own special tokens (BOS included), as
        apply_chat_template(tokenize=True) assumes; with the plain template the tokenizer
        adds its own."""
        return self._template == "plain"

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids: tokenizer(prompt) as a whole, never in pieces."""
        return self._tokenised(prompt)[0].tolist()

    def _tokenised(self, prompt: str) -> tuple[array, array | None]:
        """(ids, each token's end offset in characters or None for a slow tokenizer),
        remembered for the last 256 prompts: a turn's prompt is tokenised to check its length, then again
        to generate."""
        hit = self._tokenised_cache.get(prompt)
        if hit is not None:
            return hit
        special = self.adds_special_tokens
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(prompt, add_special_tokens=special, return_offsets_mapping=True)
            out = (array("q", enc["input_ids"]), array("q", (e for _, e in enc["offset_mapping"])))
        else:
            out = (array("q", self.tokenizer(prompt, add_special_tokens=special)["input_ids"]), None)
        self._tokenised_cache[prompt] = out
        while len(self._tokenised_cache) > 256:
            self._tokenised_cache.popitem(last=False)
        return out

    def prompt_lengths(self, chats: list[Chat]) -> list[int]:
        return [len(self._tokenised(self.render(c))[0]) for c in chats]

    def _item(self, index: int, chat: Chat) -> PromptItem:
        prompt = self.render(chat)
        packed, offsets = self._tokenised(prompt)
        ids = packed.tolist()
        cut = prompt.find(chat.cache_prefix) if chat.cache_prefix else -1
        if cut < 0:
            return PromptItem(index, None, ids, 0, chat.seed, prompt)
        end = cut + len(chat.cache_prefix or "")
        if offsets is not None:
            # the leading tokens that end inside the shared text (special tokens: (0, 0))
            inside = next((i for i, stop in enumerate(offsets) if stop > end), len(offsets))
        else:
            alone = self.tokenizer(prompt[:end], add_special_tokens=self.adds_special_tokens)
            inside = common_prefix(ids, list(alone["input_ids"]))
        key = prompt[:end] if inside > 0 else None
        return PromptItem(index, key, ids, inside, chat.seed, prompt)

    def _check_lengths(self, items: list[PromptItem], new_tokens: int) -> None:
        if self._limit is None:
            return
        for it in items:
            if it.length + new_tokens > self._limit:
                raise PromptTooLong(too_long_message(
                    self.where, self.settings.model, self._limit, it.length, new_tokens))

    def prompt_ids(self, chat: Chat) -> list[int]:
        """The token ids this backend feeds the model for `chat` (either path)."""
        return list(self._item(0, chat).ids)

    # ------------------------------------------------------------------ batching
    def _batches(self, items: list[PromptItem], new_tokens: int) -> list[list[PromptItem]]:
        """Longest first; each batch within max_batch_size rows and token_budget tokens."""
        order = sorted(items, key=lambda it: -it.length)
        batches: list[list[PromptItem]] = []
        current: list[PromptItem] = []
        width = 0
        for it in order:
            w = max(width, it.length + new_tokens)
            if current and (
                len(current) >= self.settings.max_batch_size
                or w * (len(current) + 1) > self.settings.token_budget
            ):
                batches.append(current)
                current, w = [], it.length + new_tokens
            current.append(it)
            width = w
        if current:
            batches.append(current)
        return batches

    # ------------------------------------------------------------------ generation
    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 cache: Any, past: int) -> torch.Tensor:
        """Feed `ids` ([B, S], after `past` cached positions) in chunks whose attention
        scores (B x heads x chunk x keys floats) stay under prefill_chunk_mb: on CPU the
        masked attention materialises them, and 32 rows x 2,000 tokens at once would take
        gigabytes. Returns the last position's logits."""
        b, s = ids.shape
        heads = getattr(self._text_config(), "num_attention_heads", 1) or 1
        budget = self.settings.prefill_chunk_mb * 2**20
        chunk = max(16, int(budget // (4 * b * heads * (past + s))))
        out = None
        for start in range(0, s, chunk):
            end = min(s, start + chunk)
            out = self.model(
                input_ids=ids[:, start:end],
                attention_mask=mask[:, : past + end],
                position_ids=positions[:, start:end],
                **{self._cache_kw: cache},
                use_cache=True,
                logits_to_keep=1,
            )
        assert out is not None
        return out.logits[:, -1, :].float()

    def generation_path(self, settings: SamplingSettings) -> str:
        """`own` or `continuous` for a call with these sampling settings."""
        choice = self.settings.generation
        reason = continuous_unsupported(settings)
        if choice == "auto":
            choice = AUTO_GENERATION.get(self.device.type, "own")
            return "own" if reason else choice
        if choice == "continuous" and reason:
            raise BackendError(f"{self.where}.generation: continuous cannot run with {reason}")
        return choice

    def _fits_window(self, length: int) -> bool:
        """Do `length` positions (prompt + reply, padding included) stay inside the
        sliding window, so that sliding layers attend to everything, like full ones?"""
        return self.window is None or length < self.window

    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[Generation]:
        if self.generation_path(settings) == "continuous":
            return self._generate_continuous(chats, settings)
        items = [self._item(i, c) for i, c in enumerate(chats)]
        self._check_lengths(items, settings.max_new_tokens)
        for it in items:
            if not self.prefix_enabled:
                it.prefix_key, it.prefix_len = None, 0
            elif it.prefix_key is not None and not self._fits_window(
                    it.length + settings.max_new_tokens):
                self._say_reuse_off(
                    f"a prompt and its reply that reach its sliding window of {self.window} "
                    "tokens go without (reuse is kept for those inside the window)")
                it.prefix_key, it.prefix_len = None, 0
        # with a sliding window, rows without reuse are batched apart from those with it
        # (their length would push the padded layout of a shared batch past the window)
        groups = [items] if self.window is None else [
            [it for it in items if it.prefix_key is not None],
            [it for it in items if it.prefix_key is None]]
        results: list[Generation | None] = [None] * len(items)
        for group in groups:
            for batch in self._batches(group, settings.max_new_tokens):
                for it, gen in zip(batch, self._generate_split(batch, settings)):
                    results[it.index] = gen
        return [r for r in results if r is not None]

    def _generate_continuous(self, chats: list[Chat], settings: SamplingSettings
                             ) -> list[Generation]:
        """The same prompts (same token ids) through transformers' continuous batching."""
        if self._continuous is None:
            self._continuous = ContinuousGenerator(self.model, self.settings, self.stop_ids,
                                                   self.pad_id)
        items = [self._item(i, c) for i, c in enumerate(chats)]
        self._check_lengths(items, settings.max_new_tokens)
        started = time.perf_counter()
        outs = self._continuous.generate([it.ids for it in items], settings.max_new_tokens)
        elapsed = time.perf_counter() - started
        self.stats["batches"] += 1
        return [
            Generation(
                text=self.tokenizer.decode(out.tokens, skip_special_tokens=True),
                prompt=it.prompt,
                prompt_tokens=it.length,
                completion_tokens=len(out.tokens) + (out.finish_reason == "stop"),
                finish_reason=out.finish_reason,
                meta={"batch_size": len(items), "batch_seconds": round(elapsed, 4),
                      "prefix_reused_tokens": out.reused_tokens},
                completion_ids=out.tokens + ([out.stop_token] if out.stop_token is not None
                                             else []),
            )
            for it, out in zip(items, outs)
        ]

    def _generate_split(self, batch: list[PromptItem],
                        settings: SamplingSettings) -> list[Generation]:
        """Run a batch; on out-of-memory, halve it and try again."""
        try:
            return self._generate_batch(batch, settings)
        except torch.OutOfMemoryError as exc:
            if len(batch) == 1:
                raise BackendError(f"out of memory generating one prompt: {exc}") from None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(batch) // 2
            return (self._generate_split(batch[:half], settings)
                    + self._generate_split(batch[half:], settings))

    def close(self) -> None:
        self.prefix_cache.clear()
        if self._continuous is not None:
            self._continuous.close()
            self._continuous = None
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
