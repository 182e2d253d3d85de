"""Digits split and the MNIST IDX reader, with its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mnist_files import fake_mnist, write_idx

from debate.errors import DatasetError
from debate.pixels.data import digits_split, load_mnist, load_split, read_idx


def test_digits_split_is_fixed_and_stratified() -> None:
    train, test = digits_split()
    assert (len(train), len(test)) == (1347, 450)
    assert train.shape == (8, 8) and train.max_value == 16
    counts = np.bincount(test.labels, minlength=10)
    totals = counts + np.bincount(train.labels, minlength=10)
    assert np.all(np.abs(counts - 0.25 * totals) <= 1)  # stratified: a quarter of each class
    again = digits_split()[1]
    assert np.array_equal(again.images, test.images) and np.array_equal(again.labels, test.labels)
    assert test.flat_values().max() <= 1.0


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load(tmp_path: Path, gz: bool) -> None:
    fake_mnist(tmp_path, gz=gz)
    train, test = load_split(tmp_path)
    assert (len(train), len(test)) == (5, 4)
    assert train.shape == (28, 28) and train.max_value == 255 and train.name == "mnist"
    assert list(test.labels) == [0, 1, 2, 3]


def one_line_error(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_mnist_missing_directory_and_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as exc:
        load_mnist(tmp_path / "nope", "train")
    assert "nope" in one_line_error(exc)
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError) as exc:
        load_mnist(tmp_path, "test")
    assert "t10k-labels-idx1-ubyte" in one_line_error(exc) and "not found" in str(exc.value)


def test_mnist_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x08\x03\x00\x00" + b"\x00" * 20)
    with pytest.raises(DatasetError) as exc:
        read_idx(bad, 3)
    assert "bad magic number" in one_line_error(exc) and "bad" in str(exc.value)

    short = tmp_path / "short"
    write_idx(short, np.zeros((2, 28, 28)))
    short.write_bytes(short.read_bytes()[:-10])
    with pytest.raises(DatasetError) as exc:
        read_idx(short, 3)
    assert "promises" in one_line_error(exc)

    labels = tmp_path / "labels"
    write_idx(labels, np.zeros(3))
    with pytest.raises(DatasetError) as exc:
        read_idx(labels, 3)
    assert "expected 3 dimensions, found 1" in one_line_error(exc)

    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2))
    with pytest.raises(DatasetError) as exc:
        load_mnist(tmp_path, "train")
    assert "2 labels for 5 images" in one_line_error(exc)

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DatasetError) as exc:
        read_idx(garbage, 1)
    assert "cannot read" in one_line_error(exc)
