"""Vectors as the activations table stores them: little-endian bytes, shape, dtype name.

Plain bytes work the same on SQLite (BLOB) and PostgreSQL (bytea); float16 halves the
size of float32 and keeps about three significant digits, plenty for linear probes.
"""

from __future__ import annotations

import numpy as np


def encode_vector(vector: np.ndarray) -> tuple[bytes, list[int], str]:
    arr = np.ascontiguousarray(vector)
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return le.tobytes(), list(arr.shape), arr.dtype.name


def decode_vector(data: bytes, shape: list[int], dtype: str) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
