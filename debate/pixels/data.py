"""Image data for pixel debates: scikit-learn's digits (bundled) and MNIST from IDX files.

An `ImageSet` holds integer images (N, H, W), their labels and the largest pixel value
(16 for digits, 255 for MNIST). The judge sees values scaled to [0, 1].
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from debate.errors import DatasetError

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class ImageSet:
    name: str
    images: np.ndarray  # (N, H, W) integers
    labels: np.ndarray  # (N,) integers 0..9
    max_value: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def n_pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    def flat_values(self) -> np.ndarray:
        """(N, H*W) float32 values scaled to [0, 1]."""
        return (self.images.reshape(len(self), -1) / self.max_value).astype(np.float32)

    def head(self, n: int | None) -> ImageSet:
        if n is None or n >= len(self):
            return self
        return ImageSet(self.name, self.images[:n], self.labels[:n], self.max_value)


@lru_cache(maxsize=1)
def digits_split() -> tuple[ImageSet, ImageSet]:
    """scikit-learn digits with a fixed stratified 75/25 split: 1,347 train, 450 test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = data.images.astype(np.int64)
    labels = data.target.astype(np.int64)
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    parts = []
    for idx_part in (train_idx, test_idx):
        part_images, part_labels = images[idx_part], labels[idx_part]
        part_images.setflags(write=False)  # cached: shared by every caller
        part_labels.setflags(write=False)
        parts.append(ImageSet("digits", part_images, part_labels, 16))
    return parts[0], parts[1]


def _open_idx(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"{path}: MNIST file not found")
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read MNIST file: {exc}") from None


def read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format), plain or gzipped."""
    raw = _open_idx(path)
    if len(raw) < 4:
        raise DatasetError(f"{path}: not an IDX file (shorter than its 4-byte header)")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    if dims != expected_dims:
        raise DatasetError(f"{path}: expected {expected_dims} dimensions, found {dims}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DatasetError(
            f"{path}: IDX header promises {size} bytes of data, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(directory: Path, split: str) -> ImageSet:
    """MNIST `split` ("train" or "test") from the standard IDX files in `directory`.

    File names are the usual ones (train-images-idx3-ubyte, ...), optionally ending in .gz.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"--mnist: {directory}: not a directory")
    found = []
    for stem in MNIST_FILES[split]:
        candidates = [directory / stem, directory / (stem + ".gz")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DatasetError(f"{directory / stem}: MNIST file not found (also tried .gz)")
        found.append(path)
    images = read_idx(found[0], 3)
    labels = read_idx(found[1], 1)
    if len(images) != len(labels):
        raise DatasetError(
            f"{found[1]}: {len(labels)} labels for {len(images)} images in {found[0].name}"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{found[1]}: label {int(labels.max())} is not a digit 0-9")
    return ImageSet("mnist", images.astype(np.int64), labels.astype(np.int64), 255)


def load_split(mnist_dir: Path | None = None) -> tuple[ImageSet, ImageSet]:
    """(train, test): digits by default, MNIST when a directory of IDX files is given."""
    if mnist_dir is None:
        return digits_split()
    return load_mnist(mnist_dir, "train"), load_mnist(mnist_dir, "test")
