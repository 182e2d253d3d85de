"""Backend settings as they appear in a config (the `model:` part of an agent or judge).

    backend: transformers          # or: openai
    model: Qwen/Qwen2.5-0.5B-Instruct   # hub id or local directory (transformers),
                                        # served model name (openai)
    device: auto                   # auto | cpu | cuda | cuda:1 ...
    dtype: auto                    # auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16
    chat_template: auto            # auto | tokenizer | plain | path/to/template.jinja
    max_batch_size: 32
    token_budget: 65536            # padded tokens (prompt + new) in one batch
    prefix_cache: true             # reuse each debate's shared prefix key/value cache
    prefix_cache_mb: 1024          # bound on the kept prefix caches (least recently used go)
    generation: auto               # own | continuous | auto: which decoding loop (transformers)
    continuous_max_batch_tokens: 2048   # continuous: most tokens in one forward step
    cpu_threads: null              # torch's CPU threads (process-wide); null: torch's default
    max_context: null              # transformers: tokens a prompt + its reply may take;
                                   # null: the model's max_position_embeddings (no more)
    context_policy: truncate_source  # a prompt over max_context: truncate_source (cut the
                                   # source the speaker sees, marked, span recorded) | refuse
    base_url: http://127.0.0.1:8000/v1   # openai: else $OPENAI_BASE_URL
    api_key_env: OPENAI_API_KEY    # openai: where the key is read from
    max_concurrency: 8             # openai: requests in flight
    max_retries: 4                 # openai: retries on 429/5xx/timeouts, with backoff
    timeout: 60                    # openai: seconds per request

`BACKENDS` names each backend class as "module:Class" (a `debate.registry.Registry`): the
backends import these settings, and the settings import no backend, so there is no import
cycle and torch is loaded only when a transformers backend is built.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from debate.backends.base import Backend
from debate.errors import ConfigError
from debate.registry import Registry


class BackendSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    backend: Literal["transformers", "openai"] = "transformers"  # the names in BACKENDS
    model: str = Field(min_length=1)
    revision: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    chat_template: str = "auto"
    max_batch_size: int = Field(default=32, ge=1)
    token_budget: int = Field(default=65536, ge=64)
    prefix_cache: bool = True
    prefix_cache_mb: float = Field(default=1024.0, ge=0)
    # prompts are encoded in chunks so the attention scores of one chunk stay under this
    prefill_chunk_mb: float = Field(default=128.0, gt=0)
    trust_remote_code: bool = False
    attn_implementation: str | None = None  # e.g. eager, sdpa, flash_attention_2
    # own: the backend's batched loop with prefix key/value reuse; continuous: transformers'
    # ContinuousBatchingManager (paged cache, block sharing; greedy only); auto: by device,
    # from the figures in benchmarks/README.md (see transformers_backend.AUTO_GENERATION)
    generation: Literal["own", "continuous", "auto"] = "auto"
    # continuous: most tokens in one forward step (prefill chunks + decoding rows)
    continuous_max_batch_tokens: int = Field(default=2048, ge=64)
    cpu_threads: int | None = Field(default=None, ge=1)  # torch threads when on CPU
    # context length: None = the model's own limit; what to do with a prompt over it
    max_context: int | None = Field(default=None, ge=16)
    context_policy: Literal["truncate_source", "refuse"] = "truncate_source"
    # OpenAI-compatible servers
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(default=8, ge=1)
    max_retries: int = Field(default=4, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    score_endpoint: Literal["chat", "completions"] = "chat"
    # OpenAI allows up to 20; vLLM up to its --max-logprobs
    top_logprobs: int = Field(default=20, ge=1, le=100_000)

    @model_validator(mode="after")
    def _max_context_needs_a_tokenizer(self) -> BackendSettings:
        if self.max_context is not None and self.backend != "transformers":
            raise ValueError("max_context is for the transformers backend (a server checks "
                             "its own context length)")
        return self

    def backend_key(self) -> str:
        return self.model_dump_json()


BACKENDS: Registry[type[Backend]] = Registry("backend", {
    "transformers": "debate.backends.transformers_backend:TransformersBackend",
    "openai": "debate.backends.openai_backend:OpenAIBackend",
})

_SHARED: dict[str, Backend] = {}
_USERS: dict[str, int] = {}
_LOCK = threading.Lock()


def build_backend(settings: BackendSettings, where: str = "model") -> Backend:
    """A backend for these settings; one instance per process for identical settings, so a
    debater and a judge on the same model share its weights."""
    key = settings.backend_key()
    with _LOCK:
        if key in _SHARED:
            _USERS[key] += 1
            return _SHARED[key]
        backend = BACKENDS.get(settings.backend, f"{where}.backend")(settings, where)
        _SHARED[key] = backend
        _USERS[key] = 1
        return backend


def resolve_model(settings: BackendSettings, config_dir: Path) -> tuple[BackendSettings, Path | None]:
    """The settings with local paths read from the config's folder, and the folder a bare
    model name was looked for in (None where the model is a path or a served name).

    transformers: `./x`, `../x`, `~/x` and absolute paths are folders (relative ones read
    from `config_dir`); a bare relative name (`models/x`, `Qwen/Qwen2.5-0.5B-Instruct`)
    is the folder `config_dir/models/x` where that exists, else a hub id. A chat_template
    file is read from `config_dir` too. openai: the model is the name the server serves it
    under, never a path."""
    if settings.backend != "transformers":
        return settings, None
    update: dict[str, str] = {}
    template = settings.chat_template
    if template not in ("auto", "tokenizer", "plain"):
        t = Path(template).expanduser()
        update["chat_template"] = str(t if t.is_absolute() else config_dir / t)
    model = settings.model
    p = Path(model).expanduser()
    explicit = model.startswith((".", "~")) or p.is_absolute()
    folder = p if p.is_absolute() else config_dir / p
    looked_in = None
    if explicit or folder.exists():
        update["model"] = str(folder)
    else:
        looked_in = folder
    return (settings.model_copy(update=update) if update else settings), looked_in


def build_backend_at(settings: BackendSettings, config_dir: Path, where: str = "model") -> Backend:
    """build_backend, with paths read from the config's folder; a model that is neither a
    folder there nor found as a hub id says both, in one line."""
    resolved, looked_in = resolve_model(settings, config_dir)
    try:
        return build_backend(resolved, where)
    except ConfigError as exc:
        if looked_in is None or "hub" not in str(exc).lower():
            raise
        raise ConfigError(f"{exc}; and it is not a folder: there is no {looked_in} (relative "
                          "model paths are read from the config's folder)") from None


def release_backend(backend: Backend) -> None:
    """Drop one user of a shared backend; the last one closes it."""
    with _LOCK:
        for key, b in list(_SHARED.items()):
            if b is backend:
                _USERS[key] -= 1
                if _USERS[key] <= 0:
                    del _SHARED[key]
                    del _USERS[key]
                    backend.close()
                return
