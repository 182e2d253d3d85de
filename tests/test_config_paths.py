"""Relative paths in a config are read from the config's folder, wherever the command (or
the web app) runs: `debate run`, `debate judge` and the web app's Debate tab alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from cli_runner import run_cli
from engine_agents import write_questions
from sqlalchemy import select
from web_world import add_accounts

from debate.backends.settings import BackendSettings, resolve_model
from debate.config import parse_config
from debate.human_turns import submit_human_turn, waiting_turns
from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Debate, Experiment, Judgment, Turn
from debate.users import get_user


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """The working directory: not the config's folder."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_bare_relative_model_is_a_folder_next_to_the_config_only_when_it_exists(tmp_path):
    (tmp_path / "models" / "x").mkdir(parents=True)
    local = BackendSettings(model="models/x")
    resolved, looked = resolve_model(local, tmp_path)
    assert resolved.model == str(tmp_path / "models" / "x") and looked is None
    hub = BackendSettings(model="Qwen/Qwen2.5-0.5B-Instruct")
    resolved, looked = resolve_model(hub, tmp_path)
    assert resolved.model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert looked == tmp_path / "Qwen" / "Qwen2.5-0.5B-Instruct"
    dotted, _ = resolve_model(BackendSettings(model="./models/y"), tmp_path)
    assert dotted.model == str(tmp_path / "models" / "y")  # explicit: a path, even if missing
    # a served model's name is never a path, even when a folder of that name exists
    served, looked = resolve_model(BackendSettings(backend="openai", model="models/x"), tmp_path)
    assert served.model == "models/x" and looked is None


def _model_config(folder: Path, questions: Path, model: str, **extra) -> Path:
    cfg = {
        "name": "relative-model",
        "dataset": {"name": "jsonl", "path": questions.name},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 10},
        "both_orders": False,
        "debater": {"type": "model", "model": model, "max_new_tokens": 6,
                    "temperature": 0.0, "max_resamples": 0, "cpu_threads": 1},
        **extra,
    }
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_and_judge_read_a_bare_relative_model_from_the_config_folder(
        tmp_path, tiny_model_dir, elsewhere, capsys):
    folder = tmp_path / "project"
    (folder / "models").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, folder / "models" / "tiny")
    questions = write_questions(folder / "q.jsonl", 1)
    config = _model_config(folder, questions, "models/tiny", judges=[
        {"name": "local-judge", "type": "logprob", "model": "models/tiny", "cpu_threads": 1,
         "both_orders": False}])
    url = f"sqlite:///{tmp_path / 'run.db'}"
    code, out, err = run_cli(["run", str(config), "--db", url, "--quiet"], capsys)
    assert code == 0, err
    assert "debates: 1 done" in out
    store = open_store(url)
    with store.session() as s:
        assert s.scalar(select(Experiment.config_dir)) == str(folder.resolve())
    store.dispose()
    # `debate judge` without --judge: the experiment's own judges, paths read from the
    # folder its config was run from, not from the working directory
    code, out, err = run_cli(["judge", "--experiment", "relative-model", "--db", url,
                              "--quiet"], capsys)
    assert code == 0, err
    assert "judge 'local-judge' on 'relative-model': 1 judgments written" in out
    store = open_store(url)
    with store.session() as s:
        assert len(list(s.scalars(select(Judgment)))) == 1
    store.dispose()


def test_a_model_that_is_neither_a_folder_nor_cached_says_both(tmp_path, elsewhere, capsys,
                                                                monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "project"
    folder.mkdir()
    questions = write_questions(folder / "q.jsonl", 1)
    config = _model_config(folder, questions, "models/missing")
    url = f"sqlite:///{tmp_path / 'run.db'}"
    code, _, err = run_cli(["run", str(config), "--db", url, "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "debater.model: 'models/missing' is not in the local Hugging Face cache" in err
    assert f"there is no {folder / 'models' / 'missing'}" in err
    # the same for a judge file, whose paths are read from its own folder
    judge = folder / "judges" / "j.yaml"
    judge.parent.mkdir()
    judge.write_text("type: logprob\nmodel: models/missing\n")
    scripted = folder / "scripted.yaml"
    scripted.write_text(yaml.safe_dump({
        "name": "scripted", "dataset": {"name": "jsonl", "path": "q.jsonl"},
        "protocol": {"name": "debate", "rounds": 1}, "debater": {"type": "scripted"}}))
    assert run_cli(["run", str(scripted), "--db", url, "--quiet"], capsys)[0] == 0
    code, _, err = run_cli(["judge", "--experiment", "scripted", "--judge", str(judge),
                            "--db", url, "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"there is no {judge.parent / 'models' / 'missing'}" in err


def test_the_web_debate_tab_reads_a_relative_script_from_the_config_folder(
        sqlite_store, tmp_path, elsewhere):
    store = sqlite_store
    add_accounts(store, ("p1", "debater"))
    folder = tmp_path / "project"
    (folder / "scripts").mkdir(parents=True)
    write_questions(folder / "q.jsonl", 1)
    (folder / "scripts" / "liar.jsonl").write_text("".join(
        json.dumps({"question_id": "q0", "role": role, "round": r,
                    "text": f"Scripted from the file, round {r}."}) + "\n"
        for role in ("A", "B") for r in (1, 2)))
    cfg = parse_config({
        "name": "web-relative",
        "dataset": {"name": "jsonl", "path": "q.jsonl"},
        "protocol": {"name": "debate", "rounds": 2},
        "both_orders": False,
        "honest_debater": {"type": "human", "user": "p1"},
        "deceptive_debater": {"type": "scripted", "script": "scripts/liar.jsonl"},
    })
    run_experiment(store, cfg, folder, show_progress=False)
    p1 = get_user(store, "p1")
    # the web app (here: its handler) runs in another working directory; after each of
    # the person's turns it rebuilds the agents from the stored config and runs the
    # scripted opponent, whose script is next to the config
    for _ in range(2):
        pending = waiting_turns(store, "p1", p1.id)[0]
        status = submit_human_turn(store, "p1", p1.id, pending.debate_id, pending.role,
                                   pending.round, "My turn.")
    assert status == "done"
    with store.session() as s:
        texts = [t.text for t in s.scalars(select(Turn).order_by(Turn.step))]
        assert s.scalar(select(Debate.status)) == "done"
    assert texts.count("My turn.") == 2
    assert {"Scripted from the file, round 1.", "Scripted from the file, round 2."} <= set(texts)
