"""A local transformers model as a batched backend, with key/value reuse of shared prefixes.

Loading: `AutoTokenizer` / `AutoModelForCausalLM.from_pretrained(model)` where `model` is a
hub id or a local directory (one code path). The local Hugging Face cache is tried first;
the hub only when the model is not there, after a quick check that it can be reached
(so an offline machine gets a one-line error at once instead of minutes of retries).
HF_HUB_OFFLINE=1 means: never try the network.

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
`max_batch_size` rows and `token_budget` padded tokens (prompt + new tokens per row).
Each batch is left-padded and decoded by a small loop over the model's forward pass
(greedy, or temperature / top-k / top-p sampling with one seeded generator per row, so
a row's text does not depend on what else is in its batch). Finished rows are dropped
from the batch as they stop. The batch's key/value cache is allocated once for its
longest prompt + new tokens (kv_cache.PreallocatedLayer, for models whose layers are all
plain full attention): each step writes one position per row in place instead of
concatenating (copying) the whole cache, and the reused rows are written straight into
it; one read-back of the chosen tokens per step.

`generation: continuous` sends the same ids to transformers' ContinuousBatchingManager
instead (continuous.py; greedy only); `auto` picks per device (AUTO_GENERATION).

Prompts are tokenised whole: the ids fed are tokenizer(prompt) (no special tokens added
under a chat template, which writes its own), so a stored prompt reproduces the turn
anywhere. A template that refuses a system message (Gemma's) or drops it gets the system
text folded into the first user message (prompt_format(), recorded with the agent).
Every prompt is checked against the context limit first (PromptTooLong, one line).

Prefix reuse works on token ids. A Chat may name its `cache_prefix`, the text its first
message starts with that other prompts share (a debate's instructions and source); the
prompt's leading tokens that lie inside that text are encoded once, kept in an LRU cache
bounded by `prefix_cache_mb`, and written into every batch that needs it. The whole
prompt's key/values of a debate's latest requests are kept too (up to four per prefix,
same LRU bound): the next turn's prompt repeats the transcript so far. Each row starts
from whichever kept entry shares the longest common prefix of token ids with its own ids
(a token that merges across the end of the shared text is simply fed again); the cached
part is left-padded to the batch's longest, the rest of the prompt follows (the padding
in between is masked; positions continue from the cached part). On CPU, prefixes and
scored prompts are fed one at a time without padding, so attention takes torch's causal
kernel instead of a materialised mask.

Sliding-window models keep reuse while a batch's padded prompt + reply stays inside the
window (sliding attention is then full attention); longer prompts go without, batched
apart, and the backend says so once (a warning; `reuse_notes`). Other cache layouts
(linear attention...) go without reuse, said once likewise.

The repetition penalty (as transformers' RepetitionPenaltyLogitsProcessor) applies to
every token of the prompt, cached or fed, and every token generated, never to padding.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from debate.backends import capture
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
from debate.backends.kv_cache import PreallocatedLayer, preallocated_cache
from debate.backends.settings import BackendSettings
from debate.errors import ConfigError

log = logging.getLogger(__name__)

# `generation: auto`, per device type: the faster path in the figures of
# benchmarks/README.md ("generation"). CPU: the own loop (continuous batching there packs
# every request into one sequence with a dense mask, and was 3-5x slower). CUDA: the own
# loop until benchmarks/gpu_run.sh has been run on a GPU (it prints the choice its figures
# imply); other devices: the own loop.
AUTO_GENERATION = {"cpu": "own", "cuda": "own"}

PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


def render_plain_template(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    parts = [f"### {PLAIN_ROLES.get(m['role'], m['role'].title())}:\n{m['content']}\n\n"
             for m in messages]
    if add_generation_prompt:
        parts.append("### Assistant:\n")
    return "".join(parts)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub be opened? (DNS failure or refusal: no.)"""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pick_device(device: str, dtype: str, where: str) -> tuple[torch.device, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{where}.device: unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{where}.device: {device!r} asked for, but CUDA is not available here")
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = getattr(torch, dtype)
    return dev, dt


def _load_error(settings: BackendSettings, where: str, exc: Exception) -> ConfigError:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    name = type(exc).__name__
    if "RepositoryNotFound" in name or "is not a valid model identifier" in msg or "404" in msg:
        return ConfigError(
            f"{where}.model: {settings.model!r} is neither a local directory nor a model on "
            "the Hugging Face hub"
        )
    if "no file named" in msg or "does not appear to have a file named" in msg:
        return ConfigError(f"{where}.model: {settings.model!r} has no model weights ({msg})")
    return ConfigError(f"{where}.model: cannot load {settings.model!r}: {msg}")


def load_pretrained(settings: BackendSettings, where: str, device: torch.device,
                    dtype: torch.dtype) -> tuple[Any, Any]:
    """Tokenizer and model from a hub id or a local directory (cache first, then the hub)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = settings.model
    local = Path(source).expanduser()
    if local.is_dir():
        source = str(local)
    elif source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ConfigError(f"{where}.model: no such directory {settings.model!r}")
    kwargs: dict[str, Any] = {"trust_remote_code": settings.trust_remote_code}
    if settings.revision:
        kwargs["revision"] = settings.revision

    def load(local_only: bool) -> tuple[Any, Any]:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local_only, **kwargs)
        extra = {}
        if settings.attn_implementation:
            extra["attn_implementation"] = settings.attn_implementation
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_only, dtype=dtype, **kwargs, **extra
        )
        return tok, model

    try:
        tok, model = load(local_only=True)
    except (OSError, ValueError) as first:
        if local.is_dir():
            raise _load_error(settings, where, first) from None
        if hub_offline():
            raise ConfigError(
                f"{where}.model: {settings.model!r} is not in the local Hugging Face cache and "
                "HF_HUB_OFFLINE=1 forbids the hub"
            ) from None
        if not hub_reachable():
            raise ConfigError(
                f"{where}.model: {settings.model!r} is not in the local Hugging Face cache and "
                "the hub cannot be reached (no network?)"
            ) from None
        try:
            tok, model = load(local_only=False)
        except Exception as exc:  # noqa: BLE001 - classified into one line
            raise _load_error(settings, where, exc) from None
    model.to(device)
    model.eval()
    return tok, model


def _common_prefix(a: list[int], b: list[int]) -> int:
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
class _Item:
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


class TransformersBackend(Backend):
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

    def _item(self, index: int, chat: Chat) -> _Item:
        prompt = self.render(chat)
        packed, offsets = self._tokenised(prompt)
        ids = packed.tolist()
        cut = prompt.find(chat.cache_prefix) if chat.cache_prefix else -1
        if cut < 0:
            return _Item(index, None, ids, 0, chat.seed, prompt)
        end = cut + len(chat.cache_prefix or "")
        if offsets is not None:
            # the leading tokens that end inside the shared text (special tokens: (0, 0))
            inside = next((i for i, stop in enumerate(offsets) if stop > end), len(offsets))
        else:
            alone = self.tokenizer(prompt[:end], add_special_tokens=self.adds_special_tokens)
            inside = _common_prefix(ids, list(alone["input_ids"]))
        key = prompt[:end] if inside > 0 else None
        return _Item(index, key, ids, inside, chat.seed, prompt)

    def _check_lengths(self, items: list[_Item], new_tokens: int) -> None:
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
    def _batches(self, items: list[_Item], new_tokens: int) -> list[list[_Item]]:
        """Longest first; each batch within max_batch_size rows and token_budget tokens."""
        order = sorted(items, key=lambda it: -it.length)
        batches: list[list[_Item]] = []
        current: list[_Item] = []
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

    # ------------------------------------------------------------------ prefix caches
    def _fill_prefixes(self, items: list[_Item]) -> dict[str, PrefixEntry]:
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
            _Item(i, key, ids, len(ids), 0, "") for i, (key, ids) in enumerate(missing.items())
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
    def _encode_prefixes(self, batch: list[_Item]) -> dict[str, PrefixEntry]:
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

    def _generate_split(self, batch: list[_Item], settings: SamplingSettings) -> list[Generation]:
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

    def _reuse_plan(self, batch: list[_Item], entries: dict[str, PrefixEntry],
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
                    n = min(_common_prefix(entry.ids, it.ids), len(it.ids) - 1)
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

    @torch.inference_mode()
    def _generate_batch(self, batch: list[_Item], settings: SamplingSettings) -> list[Generation]:
        started = time.perf_counter()
        entries = self._fill_prefixes(batch) if self.prefix_enabled else {}
        b = len(batch)
        reused, plen = self._reuse_plan(batch, entries, settings.max_new_tokens)
        rest = [it.ids[n:] for it, n in zip(batch, plen)]
        p_width = max(plen)
        s_width = max(len(r) for r in rest)
        # One cache for the whole batch, allocated once for prompt + new tokens (growing it
        # by concatenation would copy all of it every step); each row's reused key/values
        # are written straight into it, left-padded to the longest.
        cache = self._batch_cache(p_width + s_width + settings.max_new_tokens)
        if p_width:
            like = next(e for e in reused if e is not None).layers
            for layer, lay in enumerate(cache.layers):
                if isinstance(lay, PreallocatedLayer):
                    _, heads, _, dim = like[layer][0].shape
                    lay.allocate(b, heads, dim, self.dtype, self.device)
                    for row in range(b):
                        entry, start = reused[row], p_width - plen[row]
                        if start:  # padding: masked, but keep it finite
                            lay._k[row, :, :start].zero_()
                            lay._v[row, :, :start].zero_()
                        if entry is not None and plen[row]:
                            k, v = entry.layers[layer]
                            lay.write(row, start, k[:, :, : plen[row]], v[:, :, : plen[row]])
                    lay.set_length(p_width)
                    continue
                # sliding-window layers (reuse inside the window): the library's own layer
                keys, values = [], []
                for row in range(b):
                    pad, entry = p_width - plen[row], reused[row]
                    if entry is not None and plen[row]:
                        k, v = entry.layers[layer]
                        k, v = k[:, :, : plen[row]], v[:, :, : plen[row]]
                    else:
                        shape = like[layer][0].shape
                        k = v = torch.zeros((1, shape[1], 0, shape[3]), dtype=self.dtype,
                                            device=self.device)
                    if pad:
                        k = torch.nn.functional.pad(k, (0, 0, pad, 0))
                        v = torch.nn.functional.pad(v, (0, 0, pad, 0))
                    keys.append(k)
                    values.append(v)
                cache.update(torch.cat(keys), torch.cat(values), layer)
        ids = torch.full((b, s_width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, p_width + s_width), dtype=torch.long)
        positions = torch.zeros((b, s_width), dtype=torch.long)
        for row in range(b):
            n = len(rest[row])
            ids[row, s_width - n:] = torch.tensor(rest[row], dtype=torch.long)
            mask[row, p_width - plen[row]: p_width] = 1
            mask[row, p_width + s_width - n:] = 1
            positions[row, s_width - n:] = torch.arange(plen[row], plen[row] + n)
        next_pos = torch.tensor([it.length for it in batch], dtype=torch.long)
        self.stats["prefill_tokens"] += sum(len(r) for r in rest)
        self.stats["batches"] += 1
        dev = self.device
        ids, mask, positions, next_pos = ids.to(dev), mask.to(dev), positions.to(dev), next_pos.to(dev)
        hooks = capture.arm(self, settings.capture, b)
        logits = self._prefill(ids, mask, positions, cache, p_width)
        if entries and p_width:
            self._keep_prompts(batch, cache, plen, rest, p_width, s_width)
        processors = self._processors(settings)
        # The repetition penalty sees every token of each prompt (cached or fed, never
        # padding) and every token generated so far: `seen` marks them per row.
        seen = self._seen(batch, logits.shape[-1], settings)
        rows = list(range(b))  # batch row -> item row, shrinks as rows finish
        generated: list[list[int]] = [[] for _ in range(b)]
        finish = ["length"] * b
        stopped_by: list[list[int]] = [[] for _ in range(b)]
        generators = self._generators(batch, settings)
        # the attention mask for every step, allocated once: step t uses its first columns
        full_mask = torch.cat([mask, mask.new_ones((b, settings.max_new_tokens))], dim=1)
        width = mask.shape[1]
        stop = torch.tensor(sorted(self.stop_ids), dtype=torch.long, device=dev)
        for step in range(settings.max_new_tokens):
            if step < settings.min_new_tokens and len(stop):
                logits[:, stop] = float("-inf")
            tokens = self._choose(logits, seen, processors, [generators[r] for r in rows],
                                  settings)
            done_rows: list[int] = []
            for j, tok in enumerate(tokens.tolist()):  # one read-back per step
                r = rows[j]
                if tok in self.stop_ids:
                    finish[r] = "stop"
                    stopped_by[r].append(tok)
                    done_rows.append(j)
                else:
                    generated[r].append(tok)
            if step == settings.max_new_tokens - 1 or len(done_rows) == len(rows):
                break
            if done_rows:
                keep = [j for j in range(len(rows)) if j not in set(done_rows)]
                index = torch.tensor(keep, dtype=torch.long, device=dev)
                cache.batch_select_indices(index)
                full_mask, next_pos, tokens = full_mask[index], next_pos[index], tokens[index]
                if seen is not None:
                    seen = seen[index]
                rows = [rows[j] for j in keep]
            if seen is not None:
                seen[torch.arange(len(rows), device=dev), tokens] = True
            width += 1
            hooks.decode(rows)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=full_mask[:, :width],
                position_ids=next_pos[:, None],
                **{self._cache_kw: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
            self.stats["decode_steps"] += 1
        captured = hooks.finish()
        elapsed = time.perf_counter() - started
        results = []
        for row, it in enumerate(batch):
            text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
            results.append(Generation(
                text=text,
                prompt=it.prompt,
                prompt_tokens=it.length,
                completion_tokens=len(generated[row]) + (finish[row] == "stop"),
                finish_reason=finish[row],
                meta={"batch_size": b, "batch_seconds": round(elapsed, 4),
                      "prefix_reused_tokens": plen[row]},
                completion_ids=generated[row] + stopped_by[row],
                activations=captured[row] if captured else None,
            ))
        return results

    def _seen(self, batch: list[_Item], vocab: int, settings: SamplingSettings) -> Any:
        if settings.repetition_penalty == 1.0:
            return None
        seen = torch.zeros((len(batch), vocab), dtype=torch.bool, device=self.device)
        for row, it in enumerate(batch):
            seen[row, torch.tensor(it.ids, dtype=torch.long, device=self.device)] = True
        return seen

    def _keep_prompts(self, batch: list[_Item], cache: Any, plen: list[int],
                      rest: list[list[int]], p_width: int, s_width: int) -> None:
        """Keep each row's whole-prompt key/values (its padding cut out) for the
        debate's next turn, whose prompt starts with this one up to the new speeches."""
        for row, it in enumerate(batch):
            if it.prefix_key is None:
                continue
            n = len(rest[row])
            layers = []
            for lay in cache.layers:
                parts = []
                for t in (lay.keys, lay.values):
                    parts.append(torch.cat([t[row: row + 1, :, p_width - plen[row]: p_width],
                                            t[row: row + 1, :, p_width + s_width - n:
                                              p_width + s_width]], dim=2))
                layers.append((parts[0], parts[1]))
            nbytes = sum(k.numel() * k.element_size() * 2 for k, _ in layers)
            self.prefix_cache.put_extension(
                it.prefix_key, PrefixEntry(list(it.ids), layers, nbytes))

    def _generators(self, batch: list[_Item], settings: SamplingSettings) -> list[Any]:
        if settings.greedy:
            return [None] * len(batch)
        gens = []
        for it in batch:
            g = torch.Generator(device=self.device)
            g.manual_seed(int(it.seed) % (2**63))
            gens.append(g)
        return gens

    @staticmethod
    def _processors(settings: SamplingSettings) -> list[Any]:
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        procs: list[Any] = []
        if not settings.greedy:
            procs.append(TemperatureLogitsWarper(settings.temperature))
            if settings.top_k > 0:
                procs.append(TopKLogitsWarper(settings.top_k))
            if settings.top_p < 1.0:
                procs.append(TopPLogitsWarper(settings.top_p))
        return procs

    @staticmethod
    def _choose(logits: torch.Tensor, seen: torch.Tensor | None, processors: list[Any],
                generators: list[Any], settings: SamplingSettings) -> torch.Tensor:
        if seen is not None:
            # as transformers' RepetitionPenaltyLogitsProcessor: scores of tokens seen
            # are divided by the penalty (multiplied where negative)
            p = settings.repetition_penalty
            logits = torch.where(seen, torch.where(logits < 0, logits * p, logits / p), logits)
        for proc in processors:
            logits = proc(None, logits)
        if settings.greedy:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits, dim=-1)
        picks = [
            torch.multinomial(probs[j], 1, generator=generators[j]) for j in range(len(generators))
        ]
        return torch.cat(picks)

    # ------------------------------------------------------------------ scoring
    def label_token_ids(self, labels: list[str]) -> list[list[int]]:
        """For each label, the ids of the tokens that start it (with and without a space).
        A token that is only a space is skipped: a sentencepiece-style tokenizer (Llama 2,
        Mistral, Gemma) writes " A" as "▁" + "A", and "▁" starts every label."""
        out: list[list[int]] = []
        owner: dict[int, str] = {}
        for label in labels:
            ids: set[int] = set()
            for variant in (label, " " + label):
                toks = self.tokenizer(variant, add_special_tokens=False)["input_ids"]
                while len(toks) > 1 and not self.tokenizer.decode([toks[0]]).strip():
                    toks = toks[1:]
                if toks:
                    ids.add(int(toks[0]))
            for i in ids:
                if i in owner and owner[i] != label:
                    raise BackendError(
                        f"labels {owner[i]!r} and {label!r} start with the same token; "
                        "use labels that differ in their first token"
                    )
                owner[i] = label
            out.append(sorted(ids))
        return out

    def score(self, chats: list[Chat], labels: list[str]) -> list[list[float] | None]:
        label_ids = self.label_token_ids(labels)
        items = [self._item(i, c) for i, c in enumerate(chats)]
        self._check_lengths(items, 0)
        results: list[list[float] | None] = [None for _ in items]
        for batch in self._batches(items, 0):
            for it, probs in zip(batch, self._score_batch(batch, label_ids)):
                results[it.index] = probs
        return results

    @torch.inference_mode()
    def _score_batch(self, batch: list[_Item], label_ids: list[list[int]]) -> list[list[float]]:
        if self._one_row_at_a_time():
            logits = torch.cat([self._prefill_alone(it.ids)[0] for it in batch])
        else:
            width = max(len(it.ids) for it in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, it in enumerate(batch):
                n = len(it.ids)
                ids[row, width - n:] = torch.tensor(it.ids, dtype=torch.long)
                mask[row, width - n:] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self._prefill(ids.to(self.device), mask.to(self.device),
                                   positions.to(self.device), self._new_cache(), 0)
        logprobs = torch.log_softmax(logits, dim=-1)
        per_label = torch.stack(
            [torch.logsumexp(logprobs[:, ids_], dim=-1) for ids_ in label_ids], dim=-1
        )
        return torch.softmax(per_label, dim=-1).cpu().tolist()

    def close(self) -> None:
        self.prefix_cache.clear()
        if self._continuous is not None:
            self._continuous.close()
            self._continuous = None
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
