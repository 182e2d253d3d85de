"""The store: SQLite settings, migrations through the real `debate db` command, refusing
schemas we do not know, and creating one experiment from several processes at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from engine_agents import RecordingDebater, debate_cli, make_config, write_config, write_questions
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from debate.cli import main
from debate.errors import ConfigError, SchemaError
from debate.run import plan_run, run_experiment
from debate.store import open_store
from debate.store.db import check_known, current_revision, head_revision, make_engine, upgrade
from debate.store.experiments import store_experiment
from debate.store.models import Agent, Debate, Experiment, Seat


def test_sqlite_uses_wal_and_enforces_foreign_keys(sqlite_store):
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), sqlite_store.session() as s:
        s.execute(insert(Seat), [{"debate_id": 12345, "role": "A"}])


def test_store_opens_at_the_newest_revision(store):
    assert current_revision(store.engine) == head_revision()


def test_db_upgrade_and_current_through_the_console_script(db_url, capsys):
    head = head_revision()
    out = debate_cli("db", "current", "--db", db_url)
    assert out.returncode == 0, out.stderr
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        assert out.stdout.strip() == f"none (no database file at {path}; head is {head})"
        assert not Path(path).exists()  # `current` creates nothing
    else:
        assert out.stdout.strip() == f"none (empty database; head is {head})"
    out = debate_cli("db", "upgrade", "--db", db_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f": empty -> {head}")
    main(["db", "upgrade", "--db", db_url])  # in-process: the same command, once more
    assert capsys.readouterr().out.strip().endswith(f": already at {head}")
    out = debate_cli("db", "current", env={"DEBATE_DB": db_url})  # no --db: $DEBATE_DB
    assert out.returncode == 0 and out.stdout.strip() == f"{head} (head)"


def _stamp(url: str, revision: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_a_database_of_an_unknown_revision_is_refused(db_url, tmp_path, capsys):
    _stamp(db_url, "9f9f_from_the_future")
    with pytest.raises(SchemaError, match="9f9f_from_the_future"):
        open_store(db_url)
    out = debate_cli("db", "upgrade", "--db", db_url)
    outputs = [(out.returncode, out.stdout, out.stderr)]
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "current", "--db", db_url])
    captured = capsys.readouterr()
    outputs.append((exit_info.value.code, captured.out, captured.err))
    for code, stdout, stderr in outputs:
        assert code == 2 and stdout == ""
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr
        assert lines[0].startswith("error: database ")
        assert "revision '9f9f_from_the_future'" in lines[0] and "does not know" in lines[0]
    # `debate run` is refused the same way, before writing anything.
    questions = write_questions(tmp_path / "q.jsonl", 2)
    config = write_config(tmp_path / "exp.yaml", questions)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(config), "--db", db_url, "--quiet"])
    assert exit_info.value.code == 2
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM experiments")).scalar() == 0
    engine.dispose()


def test_a_database_without_our_schema_is_refused(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stranger (id INTEGER)"))

    with pytest.raises(SchemaError, match="was not created by this tool"):
        check_known(engine)
    engine.dispose()


def _store_same_experiment(store, cfg, tmp_path, n: int) -> list:
    plan = plan_run(cfg, tmp_path)
    identity = RecordingDebater("scripted").identity
    barrier = threading.Barrier(n)
    results: list = []

    def create() -> None:
        barrier.wait()
        try:
            results.append(store_experiment(
                store, name=cfg.name, config=cfg.model_dump(mode="json"),
                config_hash=cfg.hash(), protocol=plan.protocol, seed=cfg.seed,
                questions=plan.questions, both_orders=cfg.both_orders,
                identities={"honest": identity, "deceptive": identity},
            ))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_creating_one_experiment_from_several_workers_at_once(store, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 5)
    cfg = make_config(questions, both_orders=True)
    results = _store_same_experiment(store, cfg, tmp_path, 4)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.id for r in results}) == 1
    assert sorted(r.created for r in results) == [False, False, False, True]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Experiment)) == 1
        assert s.scalar(select(func.count()).select_from(Debate)) == 10
        assert s.scalar(select(func.count()).select_from(Agent)) == 1


def test_the_same_name_with_another_config_is_refused_without_writing(store, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 2)

    run_experiment(store, make_config(questions), tmp_path, show_progress=False)
    other = make_config(questions, seed=99, debater={"type": "scripted", "name": "other"})
    with pytest.raises(ConfigError, match="already exists with a different config"):
        run_experiment(store, other, tmp_path, show_progress=False)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Experiment)) == 1
        assert s.scalars(select(Agent.name)).all() == ["scripted"]  # no row for "other"
