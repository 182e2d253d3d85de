"""`debate pixels ...` end to end, its one-line errors, and the demo section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_runner import run_cli
from mnist_files import fake_mnist
from rich.console import Console
from sqlalchemy import func, select

from debate.demo import pixels as demo
from debate.pixels.judge import default_judge_path
from debate.store.db import open_store
from debate.store.models import Debate, Experiment


def test_train_judge_saves_weights_and_metrics(tmp_path: Path, capsys) -> None:
    out = tmp_path / "j.pt"
    code, stdout, _ = run_cli(["pixels", "train-judge", "--k", "2", "--steps", "40",
                               "--hidden", "16", "--out", str(out), "--threads", "1"], capsys)
    assert code == 0 and out.is_file()
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert metrics["k"] == 2 and metrics["dataset"] == "digits"
    assert "test accuracy" in stdout and str(out) in stdout


def test_table_prints_and_stores(tmp_path: Path, pixel_judges, capsys) -> None:
    db = f"sqlite:///{tmp_path / 'px.db'}"
    figures = tmp_path / "table.json"
    code, stdout, err = run_cli(
        ["pixels", "table", "--k", "2", "--images", "3", "--judge", str(pixel_judges[2]),
         "--db", db, "--name", "px", "--json", str(figures), "--threads", "1",
         "--honest", "minimax", "--liar", "greedy"], capsys)
    assert code == 0, err
    for text in ("honest first", "liar first", "mean", "judge alone", "precommit"):
        assert text in stdout
    summary = json.loads(figures.read_text())[0]
    assert summary["k"] == 2 and summary["images"] == 3
    assert (summary["honest"], summary["liar"]) == ("minimax", "greedy")

    store = open_store(db)
    with store.session() as s:
        exp = s.scalars(select(Experiment).where(Experiment.name == "px")).one()
        assert exp.config["results"]["precommit"]["mean"]["rate"] == summary["precommit"]["mean"]["rate"]
        assert s.scalar(select(func.count()).select_from(Debate)) == 3 * 9 * 2
    store.dispose()


def test_table_takes_several_k_and_mcts(tmp_path: Path, pixel_judges, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DEBATE_CACHE_DIR", str(tmp_path / "cache"))
    for k in (2, 4):
        target = default_judge_path("digits", k)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pixel_judges[k], target)
    code, stdout, err = run_cli(["pixels", "table", "--k", "2", "4", "--images", "1",
                                 "--player", "mcts", "--rollouts", "8", "--no-store",
                                 "--threads", "1"], capsys)
    assert code == 0, err
    assert "k = 2" in stdout and "k = 4" in stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--k", "3"], "--k: 3 is not a supported number of pixels"),
        (["--k", "2", "--judge", "/nonexistent/j.pt"], "/nonexistent/j.pt: judge file not found"),
        (["--k", "6", "--player", "minimax"], "exact minimax needs k <= 4"),
        (["--k", "2", "--player", "random"], "unknown player 'random'"),
        (["--k", "2", "--mnist", "/nonexistent/mnist"], "/nonexistent/mnist: not a directory"),
    ],
)
def test_bad_input_is_one_line(argv, expected, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DEBATE_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = run_cli(["pixels", "table", "--no-store", *argv], capsys)
    assert code == 2
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def test_judge_trained_for_another_k_is_refused(pixel_judges, capsys) -> None:
    code, _, err = run_cli(["pixels", "table", "--k", "4", "--no-store", "--judge",
                            str(pixel_judges[2])], capsys)
    assert code == 2 and "was trained for k=2, not k=4" in err


def test_demo_section(store, pixel_judges, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEBATE_CACHE_DIR", str(tmp_path / "cache"))
    target = default_judge_path("digits", 4)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(pixel_judges[4], target)
    monkeypatch.setattr(demo, "DEMO_IMAGES", 2)
    console = Console(record=True, width=150)
    demo.run(store, console)
    text = console.export_text()
    assert "precommit" in text and "debate serve" in text
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Debate)) == 2 * 9 * 2


def test_mnist_idx_files_end_to_end(tmp_path: Path, pixel_judges, capsys) -> None:
    fake_mnist(tmp_path)
    judge = tmp_path / "mnist-k2.pt"
    code, stdout, err = run_cli(["pixels", "train-judge", "--k", "2", "--steps", "5",
                                 "--hidden", "8", "--mnist", str(tmp_path), "--out", str(judge)],
                                capsys)
    assert code == 0, err
    assert "on mnist" in stdout
    code, stdout, err = run_cli(["pixels", "table", "--k", "2", "--images", "2", "--mnist",
                                 str(tmp_path), "--judge", str(judge), "--player", "greedy",
                                 "--no-store"], capsys)
    assert code == 0, err
    assert "mnist test (2 images)" in stdout
    code, _, err = run_cli(["pixels", "table", "--k", "2", "--mnist", str(tmp_path),
                            "--judge", str(pixel_judges[2]), "--no-store"], capsys)
    assert code == 2 and "is for (8, 8) images, not (28, 28)" in err
    # A truncated IDX file.
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03short")
    code, _, err = run_cli(["pixels", "table", "--k", "2", "--mnist", str(tmp_path),
                            "--no-store"], capsys)
    assert code == 2 and "t10k-images-idx3-ubyte" in err and err.count("\n") == 1
