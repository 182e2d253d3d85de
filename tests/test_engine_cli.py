"""`debate run` refuses bad input with one line naming the file and field, writing nothing;
failed debates make it exit 1 and a rerun retries them."""

from __future__ import annotations

import pytest
import yaml
from engine_agents import config_dict, debate_cli, write_config, write_questions
from sqlalchemy import create_engine, func, select, text

from debate.agents import scripted
from debate.cli import main
from debate.store import open_store
from debate.store.models import Agent, Debate, Experiment


def rows(url: str, table: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    engine.dispose()
    return n


def run_cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["run", *args, "--quiet"])
    return info.value.code, capsys.readouterr().err


def test_bad_config_file_exits_2_with_one_line_and_writes_nothing(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 2)
    bad = tmp_path / "bad.yaml"
    cfg = config_dict(questions, {"name": "debate", "rounds": "three"})
    bad.write_text(yaml.safe_dump(cfg))
    db = tmp_path / "run.db"
    out = debate_cli("run", str(bad), "--db", f"sqlite:///{db}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"error: {bad}: protocol.rounds:")
    assert not db.exists()  # refused before the database was even opened


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"protocol": "no-such-protocol"}, "protocol.name: unknown protocol 'no-such-protocol'"),
        ({"debater": {"type": "no-such-agent"}}, "debater.type: unknown agent type"),
        ({"debater": {"type": "scripted", "tempo": 3}}, "debater.tempo: "),
        ({"debater": None, "protocol": "debate"}, "debater: missing"),
        ({"interactive_judge": None, "protocol": "interactive-debate"},
         "interactive_judge: missing"),
        ({"dataset": {"name": "jsonl", "path": "missing.jsonl"}}, "missing.jsonl: no such file"),
        ({"debater": {"type": "scripted", "script": "nope.jsonl"}}, "script: no such file"),
        ({"unknown_field": 1}, "unknown_field: "),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path, capsys, change, expected):
    questions = write_questions(tmp_path / "q.jsonl", 2)
    cfg = config_dict(questions)
    cfg.update(change)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    url = f"sqlite:///{tmp_path / 'run.db'}"
    code, err = run_cli(capsys, str(path), "--db", url)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith((f"error: {path}", f"error: {tmp_path}"))
    assert expected in err
    if (tmp_path / "run.db").exists():
        assert rows(url, "experiments") == 0 and rows(url, "agents") == 0


def test_a_bad_dataset_line_is_named_and_nothing_is_written(tmp_path, capsys):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    lines = questions.read_text().splitlines()
    lines[1] = lines[1].replace('"correct_index": 1', '"correct_index": 5')
    questions.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "exp.yaml", questions)
    url = f"sqlite:///{tmp_path / 'run.db'}"
    open_store(url).dispose()  # an existing database: it must stay empty
    code, err = run_cli(capsys, str(config), "--db", url)
    assert code == 2
    assert err.strip() == (
        f"error: {questions}:2: correct_index: 5 is out of range for 2 answers"
    )
    assert rows(url, "experiments") == 0 and rows(url, "questions") == 0


def test_run_prints_a_summary_and_resumes(tmp_path, capsys):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    config = write_config(tmp_path / "exp.yaml", questions, {"name": "debate", "rounds": 1})
    url = f"sqlite:///{tmp_path / 'run.db'}"
    main(["run", str(config), "--db", url, "--quiet"])
    out = capsys.readouterr().out
    assert "experiment 'test-exp' (id 1) created and ran: 6 turns made in" in out
    assert "debates: 3 done" in out
    main(["run", str(config), "--db", url, "--quiet"])
    assert "resumed: 0 turns made" in capsys.readouterr().out


def test_failed_debates_exit_1_and_a_rerun_retries_them(tmp_path, capsys, monkeypatch):
    questions = write_questions(tmp_path / "q.jsonl", 2)
    script = tmp_path / "script.jsonl"
    script.write_text('{"question_id": "q0", "role": "A", "round": 1, "text": "fine"}\n')
    config = write_config(tmp_path / "exp.yaml", questions, {"name": "debate", "rounds": 1},
                          debater={"type": "scripted", "script": "script.jsonl"})
    url = f"sqlite:///{tmp_path / 'run.db'}"

    original = scripted.ScriptedDebater._one

    def broken(self, r):
        if r.question_id == "q1":
            raise ValueError("cannot format the template")
        return original(self, r)

    monkeypatch.setattr(scripted.ScriptedDebater, "_one", broken)
    code, err = run_cli(capsys, str(config), "--db", url)
    assert code == 1
    assert "2 debates failed (first: debate 1: agent 'scripted' raised ValueError: " \
           "cannot format the template)" in err  # one batch: both debates of the step
    monkeypatch.setattr(scripted.ScriptedDebater, "_one", original)
    main(["run", str(config), "--db", url, "--quiet"])
    assert "resumed (retrying 2 failed): 4 turns made in" in capsys.readouterr().out
    store = open_store(url)
    with store.session() as s:
        assert s.scalars(select(Debate.status)).all() == ["done", "done"]
        assert s.scalar(select(func.count()).select_from(Experiment)) == 1
        assert s.scalar(select(func.count()).select_from(Agent)) == 1
    store.dispose()


def test_run_help_lists_the_worker_options():
    out = debate_cli("run", "--help")
    assert out.returncode == 0
    for option in ("--worker", "--worker-id", "--chunk", "--lease-seconds", "--db"):
        assert option in out.stdout
