"""Several real `debate run --worker` processes share one experiment on PostgreSQL:
no debate is done twice, a killed worker's leases expire and are taken over, and a
worker in a long step keeps its leases alive."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
from engine_agents import (
    debate_popen,
    make_config,
    transcript_snapshot,
    write_config,
    write_questions,
)
from sqlalchemy import create_engine, func, select, text

from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Debate, Turn

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def scalar(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar() or 0
    except Exception:  # noqa: BLE001 - schema not there yet while workers start
        return 0
    finally:
        engine.dispose()


def finish(proc, timeout: float = 90) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out, err


def turns_run(summary: str) -> int:
    return int(re.search(r"(?:created and ran|resumed): (\d+) turns", summary).group(1))


def workers_by_debate(store) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    with store.session() as s:
        for debate_id, meta in s.execute(select(Turn.debate_id, Turn.meta)):
            out[debate_id].add(meta["worker"])
    return out


def check_complete(store, n_debates: int, turns_each: int) -> None:
    with store.session() as s:
        assert s.scalars(select(Debate.status).distinct()).all() == ["done"]
        assert s.scalar(select(func.count()).select_from(Debate)) == n_debates
        total = s.scalar(select(func.count()).select_from(Turn))
        distinct = s.execute(select(func.count()).select_from(
            select(Turn.debate_id, Turn.round, Turn.role).distinct().subquery())).scalar()
        assert s.scalar(select(func.count()).select_from(Debate).where(
            Debate.lease_owner.is_not(None))) == 0
    assert total == distinct == n_debates * turns_each


def reference_snapshot(tmp_path: Path, questions: Path, protocol: dict) -> dict:
    ref = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    run_experiment(ref, make_config(questions, protocol, both_orders=True), tmp_path,
                   show_progress=False)
    snap = transcript_snapshot(ref)
    ref.dispose()
    return snap


def test_three_workers_share_one_experiment_without_doing_a_debate_twice(pg_url, tmp_path):
    protocol = {"name": "debate", "rounds": 2}
    questions = write_questions(tmp_path / "q.jsonl", 12)
    config = write_config(tmp_path / "exp.yaml", questions, protocol, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    # All three start on an empty database: migrating and creating the experiment race.
    procs = [debate_popen("run", str(config), "--db", pg_url, "--worker", "--chunk", "4",
                          "--quiet") for _ in range(3)]
    outs = [finish(p)[0] for p in procs]

    store = open_store(pg_url)
    check_complete(store, 24, 4)
    owners = workers_by_debate(store)
    assert all(len(w) == 1 for w in owners.values())  # each debate by one worker only
    assert len(set().union(*owners.values())) >= 2  # and the work was shared
    assert sum(turns_run(o) for o in outs) == 24 * 4  # no step done and then dropped
    assert sum("created and ran" in o for o in outs) == 1
    assert transcript_snapshot(store) == reference_snapshot(tmp_path, questions, protocol)
    store.dispose()


def test_a_killed_workers_leases_expire_and_another_worker_finishes(pg_url, tmp_path):
    protocol = {"name": "debate", "rounds": 2}
    questions = write_questions(tmp_path / "q.jsonl", 4)
    config = write_config(tmp_path / "exp.yaml", questions, protocol, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    lease = ["--lease-seconds", "3"]
    # A custom worker id, as on another machine: only lease expiry can free its debates.
    w1 = debate_popen("run", str(config), "--db", pg_url, "--worker", "--chunk", "100",
                      "--worker-id", "remote-w1", "--quiet", *lease)
    deadline = time.monotonic() + 60
    while scalar(pg_url, "SELECT count(*) FROM turns") < 8:
        assert w1.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(w1.pid, signal.SIGKILL)
    w1.wait()
    store = open_store(pg_url)
    with store.session() as s:
        leases = s.execute(select(Debate.lease_owner, Debate.lease_expires_at)).all()
    assert {owner for owner, _ in leases} == {"remote-w1"}  # still held by the dead worker
    expired_at = max(expires for _, expires in leases)

    w2 = debate_popen("run", str(config), "--db", pg_url, "--worker", "--quiet", *lease)
    finish(w2)

    check_complete(store, 8, 4)
    owners = workers_by_debate(store)
    assert all(len(w) == 2 and "remote-w1" in w for w in owners.values())  # taken over
    with store.session() as s:
        first_new = s.scalar(select(func.min(Turn.created_at)).where(
            Turn.meta["worker"].as_string() != "remote-w1"))
    assert first_new >= expired_at  # not before the dead worker's leases ran out
    assert transcript_snapshot(store) == reference_snapshot(tmp_path, questions, protocol)
    store.dispose()


def test_a_long_step_keeps_its_leases(pg_url, tmp_path):
    protocol = {"name": "debate", "rounds": 2}
    questions = write_questions(tmp_path / "q.jsonl", 4)
    # Each agent call takes 1.5 s, the lease only 1 s: only the heartbeat keeps it.
    config = write_config(tmp_path / "exp.yaml", questions, protocol, both_orders=True,
                          debater={"type": "scripted", "delay": 1.5})
    store = open_store(pg_url)  # migrated up front, so both start at once
    args = ("run", str(config), "--db", pg_url, "--worker", "--chunk", "100", "--quiet",
            "--lease-seconds", "1.0")
    procs = [debate_popen(*args) for _ in range(2)]
    outs = sorted((finish(p)[0] for p in procs), key=turns_run)

    # One worker leased all 8 debates; the other polled for 6 s and found none free.
    idle, busy = outs
    assert turns_run(busy) == 32 and "lost" not in busy
    assert turns_run(idle) == 0 and "waited" in idle
    check_complete(store, 8, 4)
    assert len(set().union(*workers_by_debate(store).values())) == 1
    store.dispose()
