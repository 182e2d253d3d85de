"""The data set loading benchmark runs and ends with its `NAME ratio=... target=...` line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dataset_loading_benchmark_small(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dataset_loading.py"), "--quick",
         "--articles", "12", "--words", "400", "--db-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    lines = out.strip().splitlines()
    assert re.fullmatch(r"dataset_loading ratio=\d+\.\d+ target=\d+\.\d+", lines[-1])
    assert "within" in lines[-2]
    assert any("filters off:   108 questions stored" in line for line in lines)
