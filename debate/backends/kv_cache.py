"""A key/value cache layer that is allocated once per batch instead of grown every step.

transformers' `DynamicLayer` appends each step's keys and values with `torch.cat`, which
copies the whole cache: for a batch of 32 rows x 2,500 cached tokens that is the entire
cache read and written once per layer per decoding step, the largest cost of decoding a
weight-bound model on CPU. `PreallocatedLayer` reserves room for the batch's longest
prompt + new tokens once, writes each step's keys/values in place, and hands attention a
view of the filled part. It is a `DynamicLayer` subclass, so the model's mask building,
`batch_select_indices` and everything else that reads a layer see the usual interface.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    def __init__(self, capacity: int, **kwargs):
        super().__init__(**kwargs)
        self.capacity = capacity
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def allocate(self, batch: int, heads: int, dim: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        shape = (batch, heads, self.capacity, dim)
        self._k = torch.empty(shape, dtype=dtype, device=device)
        self._v = torch.empty(shape, dtype=dtype, device=device)
        self.device = device
        self.length = 0
        self.is_initialized = True
        self._views()

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        self.allocate(b, h, d, key_states.dtype, key_states.device)

    def _views(self) -> None:
        assert self._k is not None and self._v is not None
        self.keys = self._k[:, :, : self.length]
        self.values = self._v[:, :, : self.length]

    def write(self, row: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Put one row's cached keys/values ([1, h, n, d]) at positions start..start+n."""
        assert self._k is not None and self._v is not None
        n = keys.shape[-2]
        self._k[row, :, start: start + n] = keys[0]
        self._v[row, :, start: start + n] = values[0]

    def set_length(self, length: int) -> None:
        self.length = length
        self._views()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self._k is not None and self._v is not None
        n, s = self.length, key_states.shape[-2]
        if n + s > self.capacity:  # more than planned: grow (rare; keeps correctness)
            extra = max(n + s - self.capacity, self.capacity // 2)
            pad = (0, 0, 0, extra)
            self._k = torch.nn.functional.pad(self._k, pad)
            self._v = torch.nn.functional.pad(self._v, pad)
            self.capacity += extra
        self._k[:, :, n: n + s] = key_states
        self._v[:, :, n: n + s] = value_states
        self.length = n + s
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def reset(self) -> None:
        self._k = self._v = None
        self.length = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0 and self.is_initialized:
            self.set_length(max(0, self.length + tokens_to_remove))
        elif tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            assert self._k is not None and self._v is not None
            self._k = self._k.index_select(0, indices)
            self._v = self._v.index_select(0, indices)
            self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            assert self._k is not None and self._v is not None
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._views()


def preallocated_cache(config, capacity: int) -> DynamicCache:
    """A DynamicCache whose every layer is a PreallocatedLayer of `capacity` positions (for
    models whose layers are all plain full-attention layers; the caller checks)."""
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(capacity) for _ in cache.layers]
    return cache
