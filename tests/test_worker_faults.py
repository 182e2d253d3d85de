"""Workers that survive the database and each other (issue 19), with real processes:

- a PostgreSQL restart under two running workers: both reconnect and finish, nothing
  twice; a server that stays down past --db-retry-seconds: one line, exit 2;
- a worker frozen (SIGSTOP) inside its step transaction: its row locks go after half a
  lease, its debates are taken over once its lease expires, its late commit is refused;
- database faults (SQLite locked, PostgreSQL read-only, a full or read-only disk): one
  line naming the database and the cause, exit 3, nothing half-written, a rerun completes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
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
from test_workers import check_complete, finish, turns_run, workers_by_debate

from debate.protocols import Protocol
from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Debate, Turn
from debate.store.runs import protocol_schedule
from debate.store.workers import kernel_id, parse_worker

pytestmark = [pytest.mark.slow]
HERE = Path(__file__).resolve().parent
PROTOCOL = {"name": "debate", "rounds": 2}


def scalar(url: str, sql: str, **params) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar() or 0
    except Exception:  # noqa: BLE001 - server down or schema not there yet
        return 0
    finally:
        engine.dispose()


def wait_for(predicate, what: str, timeout: float = 90, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            assert p.poll() is None, f"worker ended early: {p.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stderr_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def assert_nothing_half_written(store) -> None:
    """Every debate holds exactly the turns of its first steps_done steps: no step is
    stored in part, and steps_done agrees with the turns."""
    with store.session() as s:
        debates = s.execute(select(Debate.id, Debate.protocol_spec, Debate.steps_done)).all()
        stored = dict(s.execute(select(Turn.debate_id, func.count()).group_by(Turn.debate_id)).all())
        keys = s.execute(select(Turn.debate_id, Turn.step, Turn.round, Turn.role)).all()

    by_debate: dict[int, set] = {}
    for did, step, rnd, role in keys:
        by_debate.setdefault(did, set()).add((step, rnd, role))
    for did, spec, steps_done in debates:
        schedule = protocol_schedule(Protocol.from_dict(spec))
        want = {(i, slot.round, slot.role) for i, step in enumerate(schedule[:steps_done])
                for slot in step}
        assert by_debate.get(did, set()) == want, f"debate {did}"
        assert stored.get(did, 0) == len(want)


def reference(tmp_path: Path, questions: Path) -> dict:
    ref = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    run_experiment(ref, make_config(questions, PROTOCOL, both_orders=True), tmp_path,
                   show_progress=False)
    snap = transcript_snapshot(ref)
    ref.dispose()
    return snap


# ---------------------------------------------------------------- the database goes away


def test_two_workers_ride_out_a_postgresql_restart(own_pg, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 20)
    config = write_config(tmp_path / "exp.yaml", questions, PROTOCOL, both_orders=True,
                          debater={"type": "scripted", "delay": 0.5})
    url = own_pg.url
    open_store(url).dispose()  # migrated up front, so both start working at once
    args = ("run", str(config), "--db", url, "--worker", "--chunk", "4", "--quiet",
            "--lease-seconds", "30", "--db-retry-seconds", "60")
    procs = [debate_popen(*args) for _ in range(2)]
    try:
        wait_for(lambda: scalar(url, "SELECT count(*) FROM turns") >= 16, "16 turns",
                 procs=procs)
        own_pg.stop("immediate")  # as a crash: no goodbye to the clients
        down = time.monotonic()
        time.sleep(5)
        for p in procs:
            assert p.poll() is None, f"a worker died with the database: {p.communicate()}"
        own_pg.start()
        up = time.monotonic()
        results = [finish(p, timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert up - down >= 5
    for out, err in results:
        lines = stderr_lines(err)
        assert "Traceback" not in err
        assert len(lines) == 2, lines  # one line when it went away, one when it came back
        assert "reconnecting for up to 60s" in lines[0] and url.split("@")[1] in lines[0]
        assert "reachable again" in lines[1]
        assert "resumed" in out or "created and ran" in out
        assert "rode out 1 database outage(s)" in out

    store = open_store(url)
    check_complete(store, 40, 4)
    owners = workers_by_debate(store)
    assert all(len(w) == 1 for w in owners.values())  # nobody took another's debates
    assert len(set().union(*owners.values())) == 2
    assert transcript_snapshot(store) == reference(tmp_path, questions)
    store.dispose()


def test_a_worker_gives_up_after_its_retry_window_then_a_rerun_completes(own_pg, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 8)
    config = write_config(tmp_path / "exp.yaml", questions, PROTOCOL, both_orders=True,
                          debater={"type": "scripted", "delay": 0.5})
    url = own_pg.url
    open_store(url).dispose()
    proc = debate_popen("run", str(config), "--db", url, "--worker", "--chunk", "4",
                        "--quiet", "--lease-seconds", "60", "--db-retry-seconds", "3")
    try:
        wait_for(lambda: scalar(url, "SELECT count(*) FROM turns") >= 8, "8 turns",
                 procs=[proc])
        own_pg.stop("immediate")
        stopped = time.monotonic()
        _out, err = proc.communicate(timeout=60)
        gave_up_after = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    own_pg.start()
    assert proc.returncode == 2, err
    lines = stderr_lines(err)
    assert "Traceback" not in err and len(lines) == 2, lines
    assert "reconnecting for up to 3s" in lines[0]
    assert lines[1].startswith("error: database postgresql+psycopg://postgres@127.0.0.1:")
    assert "unreachable for" in lines[1] and "leases are left to expire" in lines[1]
    assert 3 <= gave_up_after < 30

    store = open_store(url)
    assert_nothing_half_written(store)
    with store.session() as s:
        leases = s.execute(select(Debate.lease_owner, Debate.lease_expires_at).where(
            Debate.lease_owner.is_not(None))).all()
    # The chunk it was working on stays leased to it, until the lease expires.
    assert len(leases) == 4 and all(expires > datetime.now(UTC) for _, expires in leases)
    # The dead worker was a process on this kernel: a rerun takes over at once.
    held_by = {owner for owner, _ in leases}
    assert all(parse_worker(o) and parse_worker(o).kernel == kernel_id() for o in held_by)
    started = time.monotonic()
    _out, _ = finish(debate_popen("run", str(config), "--db", url, "--worker", "--quiet"))
    assert time.monotonic() - started < 50  # well inside the 60 s leases
    check_complete(store, 16, 4)
    assert transcript_snapshot(store) == reference(tmp_path, questions)
    store.dispose()


# ---------------------------------------------------------------- a frozen worker


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def idle_in_transaction(url: str) -> int:
    return scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                  "current_database() AND state LIKE 'idle in transaction%'")


@pytest.mark.postgres
def test_a_worker_frozen_inside_its_transaction_loses_its_debates_at_lease_expiry(
    pg_url, tmp_path
):
    questions = write_questions(tmp_path / "q.jsonl", 4)
    config = write_config(tmp_path / "exp.yaml", questions, PROTOCOL, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    open_store(pg_url).dispose()
    lease = ["--lease-seconds", "4"]
    frozen = subprocess.Popen(
        [sys.executable, str(HERE / "freeze_in_step.py"), "2", "run", str(config), "--db",
         pg_url, "--worker", "--chunk", "100", "--quiet", *lease],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    other = None
    try:
        # It stops itself inside its second step transaction, holding all 8 debates' rows.
        wait_for(lambda: process_state(frozen.pid) == "T", "the worker to freeze", 60)
        frozen_at = datetime.now(UTC)
        assert idle_in_transaction(pg_url) == 1
        store = open_store(pg_url)
        with store.session() as s:
            leases = s.execute(select(Debate.lease_owner, Debate.lease_expires_at)).all()
            a_turns = s.scalar(select(func.count()).select_from(Turn))
        (owner,) = {o for o, _ in leases}
        expires = max(e for _, e in leases)
        assert a_turns == 8  # its first step only (one turn each); the second is in its
        # transaction

        other = debate_popen("run", str(config), "--db", pg_url, "--worker", "--quiet",
                             *lease)
        # The server ends the frozen session after half a lease: its locks go with it.
        wait_for(lambda: idle_in_transaction(pg_url) == 0, "the frozen session to end", 30)
        assert (datetime.now(UTC) - frozen_at).total_seconds() >= 1.0
        out, _ = finish(other, timeout=120)
        assert turns_run(out) == 8 * 3  # it did the rest: the three remaining steps
        assert process_state(frozen.pid) == "T"  # still frozen all along

        frozen.send_signal(signal.SIGCONT)
        late_out, late_err = frozen.communicate(timeout=60)
    finally:
        for p in (frozen, other):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.communicate()
    assert frozen.returncode == 0, late_err
    assert "Traceback" not in late_err
    assert "idle-in-transaction timeout" in late_err or "connection lost" in late_err
    assert turns_run(late_out) == 8  # the woken step was refused, not counted

    check_complete(store, 8, 4)
    with store.session() as s:
        first_taken = s.scalar(select(func.min(Turn.created_at)).where(
            Turn.meta["worker"].as_string() != owner))
        by_frozen = s.scalars(select(Turn.step).where(
            Turn.meta["worker"].as_string() == owner)).all()
    assert first_taken >= expires  # not before its lease ran out
    assert set(by_frozen) == {0}  # its late commit of step 1 is not in the store
    assert transcript_snapshot(store) == reference(tmp_path, questions)
    store.dispose()


# ---------------------------------------------------------------- faults: one line, exit 3


def test_sqlite_locked_past_the_busy_timeout_ends_in_one_line_and_exit_3(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 8)
    config = write_config(tmp_path / "exp.yaml", questions, PROTOCOL, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    db = tmp_path / "run.db"
    url = f"sqlite:///{db}"
    env = dict(os.environ, DEBATE_SQLITE_BUSY_SECONDS="1")
    proc = debate_popen("run", str(config), "--db", url, "--quiet", env=env)
    holder = None
    try:
        def stored() -> int:
            return scalar(url, "SELECT count(*) FROM turns")

        wait_for(lambda: stored() >= 16, "16 turns", procs=[proc])
        holder = sqlite3.connect(db, timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process sits on the write lock
        _out, err = proc.communicate(timeout=60)
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, err
    lines = stderr_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, lines
    assert lines[0].startswith(f"error: database {url}: database is locked")

    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    store = open_store(url)
    assert_nothing_half_written(store)
    finish(debate_popen("run", str(config), "--db", url, "--quiet"))
    check_complete(store, 16, 4)
    store.dispose()


@pytest.mark.postgres
def test_postgresql_made_read_only_under_a_worker_ends_in_one_line_and_exit_3(
    pg_url, tmp_path
):
    questions = write_questions(tmp_path / "q.jsonl", 8)
    config = write_config(tmp_path / "exp.yaml", questions, PROTOCOL, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    open_store(pg_url).dispose()
    proc = debate_popen("run", str(config), "--db", pg_url, "--worker", "--chunk", "4",
                        "--quiet")
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        wait_for(lambda: scalar(pg_url, "SELECT count(*) FROM turns") >= 8, "8 turns",
                 procs=[proc])
        with engine.connect() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar()
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            # Its sessions end; the ones it reconnects with are read-only.
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})
        _out, err = proc.communicate(timeout=60)
        with engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    last = stderr_lines(err)[-1]
    assert last.startswith("error: database postgresql+psycopg://")
    assert "the database is read-only" in last
    store = open_store(pg_url)
    assert_nothing_half_written(store)
    finish(debate_popen("run", str(config), "--db", pg_url, "--worker", "--quiet"))
    check_complete(store, 16, 4)
    store.dispose()


def can_mount_tmpfs() -> bool:
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"'],
        capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.parametrize(("mode", "cause"), [
    ("full", "disk full"),  # fills up under a running worker
    ("readonly", "the database files are read-only"),  # a worker started on a read-only disk
])
def test_a_full_or_read_only_disk_ends_in_one_line_and_exit_3(mode, cause, tmp_path):
    if not can_mount_tmpfs():
        pytest.skip("needs a private mount namespace with a small tmpfs (unshare --mount)")
    questions = write_questions(tmp_path / "q.jsonl", 8)
    config = write_config(tmp_path / "exp.yaml", questions, PROTOCOL, both_orders=True,
                          debater={"type": "scripted", "delay": 0.3})
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable,
         str(HERE / "disk_faults.py"), mode, str(config), str(tmp_path / "disk")],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["returncode"] == 3, report
    lines = stderr_lines(report["stderr"])
    assert len(lines) == 1 and "Traceback" not in report["stderr"], lines
    assert lines[0].startswith(f"error: database sqlite:///{tmp_path / 'disk'}/run.db: {cause}")
    assert report["integrity"] == "ok"
    # What the fault left, copied out: no half-written step; a rerun completes it.
    url = f"sqlite:///{tmp_path / 'after.db'}"
    store = open_store(url)
    assert_nothing_half_written(store)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Turn)) >= 16
    finish(debate_popen("run", str(config), "--db", url, "--quiet"))
    check_complete(store, 16, 4)
    store.dispose()
