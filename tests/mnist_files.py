"""Test helper (no tests here): MNIST IDX files written from arrays, for the pixel
data-set reader and the pixels CLI."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


def fake_mnist(directory: Path, n: int = 5, gz: bool = False) -> None:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, count in (("train", n), ("t10k", n - 1)):
        images = rng.integers(0, 256, (count, 28, 28))
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", np.arange(count) % 10, gz)
