"""Activation capture during batched generation: forward hooks, no second pass.

Config (on a `type: model` debater with `backend: transformers`):

    activations:
      layers: [0.5, -1, 4]      # indices into the hidden states, or fractions of depth
      positions: [generated_mean, prompt_last]
      dtype: float16            # how vectors are stored: float16 | float32

Layers follow `output_hidden_states`: layer 0 is the embedding output, layer l (1..n-1)
the residual stream after decoder block l-1, layer n the last block's output after the
final norm (n = the model's number of decoder blocks). A fraction f in [0, 1] means
f * n rounded half up; a negative index counts back from n (-1 is n).

Positions:
- `prompt_last`: the hidden state at the prompt's last token (the one whose output
  chooses the reply's first token);
- `generated_mean`: the mean over the positions whose outputs chose the reply's tokens:
  the prompt's last token and every sampled token but the last (which is never fed
  back). A reply that stops on an end token counts that token's choosing position too.

How: hooks on the first decoder block's input (hidden state 0, exactly as
`output_hidden_states` gives it, position embeddings included where a model adds them),
the blocks' outputs and the final norm record the last
column of each prefill chunk (rows are left-padded, so the last column is every row's
last prompt token, whatever prefix of it came from a reused key/value cache) and add
each decoding step's column into a per-row float32 sum, mapped to the batch's rows as
finished rows drop out. The hooks do nothing unless the backend arms them for one
generation batch, so scoring, prefix encoding and batches without capture pay one
Python call per hooked module and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from debate.errors import ConfigError

POSITIONS = ("generated_mean", "prompt_last")
Position = Literal["generated_mean", "prompt_last"]


class ActivationSettings(BaseModel):
    """The `activations:` block of a model debater."""

    model_config = ConfigDict(extra="forbid")

    layers: list[int | float] = Field(min_length=1)
    positions: list[Position] = Field(default_factory=lambda: ["generated_mean"], min_length=1)
    dtype: Literal["float16", "float32"] = "float16"

    @field_validator("layers")
    @classmethod
    def _fractions_in_range(cls, v: list[int | float]) -> list[int | float]:
        for x in v:
            if isinstance(x, float) and not 0.0 <= x <= 1.0:
                raise ValueError(f"a fraction of depth must lie in [0, 1], got {x}")
        return v


@dataclass(frozen=True)
class CaptureSpec:
    """Resolved capture: absolute hidden-state indices, positions, storage dtype."""

    layers: tuple[int, ...]
    positions: tuple[str, ...]
    dtype: str = "float16"


def depth(model: Any) -> int:
    """Number of decoder blocks of a causal LM."""
    return len(_decoder_blocks(model))


def _decoder_blocks(model: Any) -> Any:
    base = getattr(model, "base_model", model)
    blocks = getattr(base, "layers", None) or getattr(base, "h", None)
    if blocks is None:
        raise ConfigError("activations: this model architecture has no `layers` list of "
                          "decoder blocks to hook (Llama, Qwen, Mistral, Gemma... have one)")
    return blocks


def resolve_layers(settings: ActivationSettings, n_blocks: int, where: str) -> CaptureSpec:
    """Absolute hidden-state indices (0..n_blocks) for the configured layers."""
    out: list[int] = []
    for x in settings.layers:
        if isinstance(x, float):
            index = math.floor(x * n_blocks + 0.5)
        else:
            index = x + n_blocks + 1 if x < 0 else x
        if not 0 <= index <= n_blocks:
            raise ConfigError(
                f"{where}.activations.layers: {x} is out of range; the model has hidden states "
                f"0..{n_blocks} (or -{n_blocks + 1}..-1, or fractions in [0, 1])")
        if index not in out:
            out.append(index)
    positions = tuple(dict.fromkeys(settings.positions))
    return CaptureSpec(tuple(sorted(out)), positions, settings.dtype)


def _hooked_modules(model: Any) -> list[Any]:
    """Per hidden state l in 0..n, the module to hook: the first block (whose *input* is
    hidden state 0, embeddings plus whatever the model adds before its blocks), then the
    blocks whose outputs are states 1..n-1, then the final norm (state n)."""
    base = getattr(model, "base_model", model)
    blocks = list(_decoder_blocks(model))
    norm = getattr(base, "norm", None) or getattr(base, "ln_f", None)
    if norm is None:
        raise ConfigError("activations: this model architecture has no final norm to hook")
    return [blocks[0], *blocks[:-1], norm]


class LayerCapture:
    """The hooks of one model, armed for one generation batch at a time."""

    def __init__(self, model: Any):
        self.modules = _hooked_modules(model)
        self.handles: dict[int, Any] = {}
        self.spec: CaptureSpec | None = None
        self.mode: str | None = None  # None (disarmed) | "prefill" | "decode"
        self.rows_index: Any = None
        self.last: dict[int, Any] = {}
        self.sums: dict[int, Any] = {}
        self.counts: Any = None
        self.batch = 0

    # -- hooks
    def _ensure_hooks(self, layers: tuple[int, ...]) -> None:
        for layer in layers:
            if layer in self.handles:
                continue
            if layer == 0:  # the first block's input
                self.handles[0] = self.modules[0].register_forward_pre_hook(
                    self._input_hook(), with_kwargs=True)
            else:
                self.handles[layer] = self.modules[layer].register_forward_hook(
                    self._hook(layer))

    def _input_hook(self):
        record = self._hook(0)

        def record_input(module: Any, args: Any, kwargs: Any) -> None:
            record(module, args, args[0] if args else kwargs["hidden_states"])
        return record_input

    def _hook(self, layer: int):
        def record(_module: Any, _args: Any, output: Any) -> None:
            if self.mode is None or self.spec is None or layer not in self.spec.layers:
                return
            hidden = output[0] if isinstance(output, tuple) else output
            if self.mode == "prefill":
                if hidden.shape[0] == self.batch:
                    self.last[layer] = hidden[:, -1, :].float()
            elif (self.mode == "decode" and "generated_mean" in self.spec.positions
                  and hidden.shape[0] == self.rows_index.shape[0] and hidden.shape[1] == 1):
                self.sums[layer].index_add_(0, self.rows_index, hidden[:, 0, :].float())
        return record

    def remove(self) -> None:
        for handle in self.handles.values():
            handle.remove()
        self.handles.clear()

    # -- the backend's calls
    def begin(self, spec: CaptureSpec | None, batch: int) -> LayerCapture:
        """Arm for the prefill of a batch of `batch` rows (disarm when spec is None)."""
        self.spec = spec
        self.last, self.sums, self.counts = {}, {}, None
        self.batch = batch
        self.mode = None
        if spec is not None:
            self._ensure_hooks(spec.layers)
            self.mode = "prefill"
        return self

    def decode(self, rows: list[int]) -> None:
        """Before a decoding step whose batch rows are the items `rows`."""
        if self.spec is None:
            return
        import torch

        if self.mode == "prefill":
            self._start_sums()
        self.mode = "decode"
        device = next(iter(self.sums.values())).device if self.sums else "cpu"
        self.rows_index = torch.tensor(rows, dtype=torch.long, device=device)
        self.counts[rows] += 1

    def _start_sums(self) -> None:
        import torch

        self.sums = {layer: vec.clone() for layer, vec in self.last.items()}
        self.counts = torch.ones(self.batch, dtype=torch.float64)

    def finish(self) -> list[dict[tuple[int, str], np.ndarray]] | None:
        """Per batch row: {(layer, position): vector}; disarms. None when not armed."""
        spec = self.spec
        if spec is None:
            return None
        if self.mode == "prefill":
            self._start_sums()
        self.mode = None
        self.spec = None
        missing = [layer for layer in spec.layers if layer not in self.last]
        if missing:
            raise RuntimeError(f"activation capture saw no output for hidden states {missing}")
        np_dtype = np.dtype(spec.dtype)
        out: list[dict[tuple[int, str], np.ndarray]] = [{} for _ in range(self.batch)]
        for layer in spec.layers:
            per_position = {}
            if "prompt_last" in spec.positions:
                per_position["prompt_last"] = self.last[layer].cpu().numpy()
            if "generated_mean" in spec.positions:
                counts = self.counts.to(self.sums[layer].device, self.sums[layer].dtype)
                per_position["generated_mean"] = (self.sums[layer] / counts[:, None]).cpu().numpy()
            for position, matrix in per_position.items():
                for row in range(self.batch):
                    out[row][(layer, position)] = matrix[row].astype(np_dtype)
        self.last, self.sums = {}, {}
        return out


class _NoCapture:
    """Stand-in when nothing is captured: every call is a no-op."""

    def decode(self, rows: list[int]) -> None:
        return None

    def finish(self) -> None:
        return None


NO_CAPTURE = _NoCapture()


def arm(backend: Any, spec: CaptureSpec | None, batch: int) -> LayerCapture | _NoCapture:
    """The backend's hooks armed for one generation batch (installed on first use)."""
    hooks: LayerCapture | None = getattr(backend, "_capture_hooks", None)
    if spec is None:
        if hooks is not None:
            hooks.begin(None, batch)
        return NO_CAPTURE
    if hooks is None:
        hooks = LayerCapture(backend.model)
        backend._capture_hooks = hooks
    return hooks.begin(spec, batch)
