"""A real `debate run` process killed with SIGKILL mid-run resumes on rerun, with no turn
lost and none written twice, ending exactly where an uninterrupted run ends."""

from __future__ import annotations

import time

import pytest
from engine_agents import (
    debate_cli,
    debate_popen,
    make_config,
    run_until_killed,
    transcript_snapshot,
    turn_count,
    write_config,
    write_questions,
)
from sqlalchemy import func, select

from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Debate, Turn

N_QUESTIONS = 12
N_DEBATES = 2 * N_QUESTIONS  # both answer orders
STEPS = 6  # sequential debate, 3 rounds, 2 debaters


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", N_QUESTIONS)
    config = write_config(tmp_path / "exp.yaml", questions, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    db = tmp_path / "run.db"
    url = f"sqlite:///{db}"

    killed = []
    for min_steps in (1, 3):
        killed.append(run_until_killed(config, url, db, min_steps * N_DEBATES))
        stored = turn_count(db)
        # Each step is one transaction: a kill never leaves part of a step behind.
        assert stored % N_DEBATES == 0 and min_steps * N_DEBATES <= stored < STEPS * N_DEBATES

    store = open_store(url)
    with store.session() as s:
        owners = set(s.scalars(select(Debate.lease_owner).where(Debate.status != "done")))
    # The dead run still "holds" its debates; the rerun sees the process is gone.
    assert owners and all(o and o.split(":")[1] == str(killed[-1]) for o in owners)

    started = time.monotonic()
    out = debate_cli("run", str(config), "--db", url, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "resumed" in out.stdout and f"debates: {N_DEBATES} done" in out.stdout
    assert time.monotonic() - started < 60  # far less than the 300 s lease

    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(Turn))
        distinct = s.execute(
            select(func.count()).select_from(
                select(Turn.debate_id, Turn.round, Turn.role).distinct().subquery())
        ).scalar()
        leased = s.scalar(select(func.count()).select_from(Debate).where(
            Debate.lease_owner.is_not(None)))
    assert total == distinct == STEPS * N_DEBATES
    assert leased == 0

    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    cfg = make_config(questions, both_orders=True, debater={"type": "scripted"})
    run_experiment(reference, cfg, tmp_path, show_progress=False)
    assert transcript_snapshot(store) == transcript_snapshot(reference)
    store.dispose()
    reference.dispose()


@pytest.mark.slow
def test_two_workers_share_one_sqlite_file(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 8)
    config = write_config(tmp_path / "exp.yaml", questions, {"name": "debate", "rounds": 1},
                          both_orders=True, debater={"type": "scripted", "delay": 0.2})
    url = f"sqlite:///{tmp_path / 'run.db'}"
    procs = [debate_popen("run", str(config), "--db", url, "--worker", "--chunk", "2",
                          "--quiet") for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out)
    assert sum(int(o.split(" turns")[0].rsplit(" ", 1)[1]) for o in outs) == 16 * 2
    store = open_store(url)
    with store.session() as s:
        assert s.scalars(select(Debate.status).distinct()).all() == ["done"]
        workers: dict[int, set[str]] = {}
        for debate_id, meta in s.execute(select(Turn.debate_id, Turn.meta)):
            workers.setdefault(debate_id, set()).add(meta["worker"])
    assert len(workers) == 16 and all(len(w) == 1 for w in workers.values())
    store.dispose()
