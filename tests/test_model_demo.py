"""The demo's `models` section: runs with a loadable model, one line and quick without."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from sqlalchemy import func, select

from debate.backends import loading
from debate.store.models import Judgment, Turn
from judges.demo_models import EXPERIMENT, run


def test_demo_runs_model_debaters_and_a_judge(sqlite_store, tiny_model_dir, monkeypatch):
    import torch

    monkeypatch.setenv("DEBATE_DEMO_MODEL", str(tiny_model_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the demo uses torch's default; the CI box is small and shared
    try:
        check_demo(sqlite_store)
    finally:
        torch.set_num_threads(threads)


def check_demo(sqlite_store) -> None:
    out = io.StringIO()
    run(sqlite_store, Console(file=out, width=200))
    text = out.getvalue()
    assert f"{EXPERIMENT}: 16 turns written" in text and "log-prob judge: 4 debates" in text
    with sqlite_store.session() as s:
        assert s.scalar(select(func.count()).select_from(Turn)) == 16
        assert s.scalar(select(func.count()).select_from(Judgment)) == 4
    again = io.StringIO()
    run(sqlite_store, Console(file=again, width=200))  # rerun: nothing redone
    assert f"{EXPERIMENT}: 0 turns written" in again.getvalue()
    with sqlite_store.session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 4


def test_demo_without_a_model_says_so_in_one_line(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEBATE_DEMO_MODEL", "nobody/not-cached-anywhere")
    # at once, without trying the network (no hub check, so no retries to wait out)
    monkeypatch.setattr(loading, "hub_reachable", lambda *a, **k: pytest.fail("hub checked"))
    out = io.StringIO()
    run(sqlite_store, Console(file=out, width=80))
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1 and "skipped" in lines[0] and "not-cached-anywhere" in lines[0]
