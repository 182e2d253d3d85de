"""Loading a transformers model: device and dtype, the hub checks, and the plain template.

`load_pretrained` reads a hub id or a local directory through one code path. The local
Hugging Face cache is tried first; the hub only when the model is not there, after a quick
check that it can be reached (so an offline machine gets a one-line error at once instead
of minutes of retries). HF_HUB_OFFLINE=1 means: never try the network. A model left on its
default attention (`sdpa`) on CPU gets `sdpa_gqa` (debate/backends/attention.py: the same
kernel, without copying grouped key/value heads).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from debate.backends.attention import use_gqa_attention
from debate.backends.settings import BackendSettings
from debate.errors import ConfigError

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
        raise ConfigError(f"{where}.device: unknown device {device!r} (auto, cpu, cuda, cuda:N)") from None
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
    if not settings.attn_implementation:  # the model's default; a named one is kept as named
        use_gqa_attention(model, device)
    return tok, model
