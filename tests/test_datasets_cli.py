"""`debate datasets`, hub access, and whole `debate run`s on the real data set loaders."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from pathlib import Path

import pytest
import yaml
from cli_runner import run_cli
from sqlalchemy import func, select

from debate.config import parse_config
from debate.datasets import load_questions, validate_dataset_settings
from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Debate, Document, Turn
from debate.store.models import Question as QuestionRow

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"




def test_datasets_list_names_every_loader(capsys):
    code, out, _ = run_cli(["datasets", "list"], capsys)
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    for name in ("arc", "boolq", "gpqa", "jsonl", "mmlu", "nyu_stories", "quality", "truthfulqa"):
        assert name in names
    assert "Khan et al. 2024" in out


def test_datasets_show_prints_reloadable_jsonl(capsys, tmp_path: Path):
    code, out, err = run_cli(
        ["datasets", "show", "quality", "--path", str(FIXTURES / "quality.jsonl"), "--limit", "3"],
        capsys,
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    docs = [line["document"] for line in lines if "document" in line]
    questions = [line for line in lines if "document" not in line]
    assert len(questions) == 3 and len(docs) == 2  # each article printed once
    assert questions[0]["metadata"]["distractor_rule"] == "best"
    assert "dropped" in err and "3 question(s) from quality" in err
    # What `show` prints loads back, unchanged, with the project's own JSONL loader.
    saved = tmp_path / "quality-slice.jsonl"
    saved.write_text(out)
    again = load_questions(validate_dataset_settings({"name": "jsonl", "path": str(saved)}))
    original = load_questions(validate_dataset_settings(
        {"name": "quality", "path": str(FIXTURES / "quality.jsonl"), "limit": 3}))
    assert [(q.id, q.answers, q.correct_index, q.source, q.metadata) for q in again] == [
        (q.id, q.answers, q.correct_index, q.source, q.metadata) for q in original
    ]


def test_datasets_show_takes_loader_options(capsys):
    code, out, _ = run_cli(
        ["datasets", "show", "gpqa", "--path", str(FIXTURES / "gpqa.csv"), "-o", "mode=extractive",
         "-o", "distractor=random", "--seed", "3", "--no-source"],
        capsys,
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    assert all(r["metadata"]["distractor_rule"] == "random" for r in rows)
    assert all(r["source_chars"] > 0 and "document_id" not in r for r in rows)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["datasets", "show", "qualty"], "error: dataset.name: unknown data set 'qualty'; known: arc"),
        (["datasets", "show", "quality", "--path", "missing.jsonl"], "missing.jsonl: no such file"),
        (["datasets", "show", "quality", "--path", str(FIXTURES / "quality.jsonl"),
          "-o", "hard_only=perhaps"], "error: dataset.hard_only:"),
    ],
)
def test_datasets_show_errors_are_one_line(capsys, argv, expected):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err


# --- the hub ---------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_says_so_in_one_line(capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    code, _, err = run_cli(["datasets", "show", "mmlu", "--hub", "cais/mmlu"], capsys)
    assert code == 2
    assert err.strip() == (
        "error: dataset.hub: cannot reach the Hugging Face hub to load 'cais/mmlu'; download the "
        "data set's files and give their local path as dataset.path instead (or set "
        "HF_HUB_OFFLINE=1 to use a copy in the local cache)"
    )


class QuietHub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_missing_datasets_package_is_explained(capsys, monkeypatch):
    """With the hub reachable (a local stand-in server) but no `datasets` package."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
        code, _, err = run_cli(["datasets", "show", "boolq"], capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "needs the optional `datasets` package" in err and "dataset.path" in err


def test_offline_hub_through_datasets(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # before the hub client reads it on import
    pytest.importorskip("datasets", reason="the optional `datasets` package is not installed")
    code, _, err = run_cli(["datasets", "show", "arc", "--hub", "nobody/no-such-set"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot reach the Hugging Face hub to load 'nobody/no-such-set'" in err


# --- whole runs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "n_questions", "n_documents"),
    [
        ({"name": "quality", "path": str(FIXTURES / "quality.jsonl")}, 4, 2),
        ({"name": "gpqa", "path": str(FIXTURES / "gpqa.csv"), "mode": "extractive"}, 3, 3),
        ({"name": "gpqa", "path": str(FIXTURES / "gpqa.csv"), "limit": 2}, 2, 0),
        ({"name": "nyu_stories", "path": str(FIXTURES / "nyu_rooms")}, 2, 1),
    ],
)
def test_scripted_debates_run_on_real_data_sets(store, tmp_path: Path, dataset, n_questions,
                                                n_documents):
    cfg = parse_config(
        {
            "name": f"run-{dataset['name']}",
            "dataset": dataset,
            "protocol": {"name": "debate", "rounds": 2},
            "both_orders": True,
            "debater": {"type": "scripted"},
        }
    )
    result = run_experiment(store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 2 * n_questions}
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(QuestionRow)) == n_questions
        assert s.scalar(select(func.count()).select_from(Document)) == n_documents
        assert s.scalar(select(func.count()).select_from(Turn)) == 2 * n_questions * 2 * 2
        metas = list(s.scalars(select(QuestionRow.meta)))
        assert all("distractor_rule" in m for m in metas)
        assert s.scalar(select(func.count()).select_from(Debate)) == 2 * n_questions


def test_debate_run_command_with_a_quality_config(capsys, tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "quality.jsonl").write_bytes((FIXTURES / "quality.jsonl").read_bytes())
    config = tmp_path / "quality-hard.yaml"
    config.write_text(yaml.safe_dump({
        "name": "quality-hard",
        "seed": 1,
        "dataset": {"name": "quality", "path": "data/quality.jsonl", "max_per_story": 2,
                    "shuffle": True, "seed": 5, "limit": 3},
        "protocol": "consultancy",
        "debater": {"type": "scripted"},
    }))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    code, out, err = run_cli(["run", str(config), "--db", db, "--quiet"], capsys)
    assert code == 0, err
    assert "experiment 'quality-hard'" in out and "6 done" in out
    store = open_store(db)
    try:
        with store.session() as s:
            ids = sorted(s.scalars(select(QuestionRow.external_id)))
            assert len(ids) == 3 and set(ids) <= {
                "20001_SIGNAL_1", "20002_MARROW_1", "20002_MARROW_2", "20002_MARROW_3"
            }
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("name", "fixture", "first_correct"),
    [
        ("boolq", "boolq.jsonl", "Yes"),
        ("arc", "arc_hf.jsonl", "dry palms"),
        ("mmlu", "mmlu_hf.jsonl", "56"),
        ("truthfulqa", "truthfulqa_hf.jsonl", "No, we use virtually all of our brain."),
    ],
)
def test_hub_layout_read_through_datasets(tmp_path: Path, monkeypatch, name, fixture,
                                          first_correct):
    """`hub:` goes through `datasets.load_dataset`; a local folder stands in for the hub."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    pytest.importorskip("datasets", reason="the optional `datasets` package is not installed")
    folder = tmp_path / "hub-copy"
    folder.mkdir()
    (folder / "train.jsonl").write_bytes((FIXTURES / fixture).read_bytes())
    qs = load_questions(validate_dataset_settings({"name": name, "hub": str(folder),
                                                   "split": "train"}))
    assert qs and qs[0].answers[qs[0].correct_index] == first_correct
    assert qs[0].metadata["where"] == f"{folder}[train]:row 1"
