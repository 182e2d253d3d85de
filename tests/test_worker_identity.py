"""Worker ids are unique across machines, and a lease is taken before it expires only when
its holder is provably a dead process on this kernel (issue 19, point 2).

The dangerous case: two live workers with one hostname in different PID namespaces
(containers sharing the host's UTS namespace, cloned VMs). Each sees the other's pid as
missing; with `host:pid:tag` ids each took the other's debates at once, over and over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from engine_agents import make_config, setup_experiment, write_config, write_questions
from sqlalchemy import update
from test_workers import check_complete, finish, turns_run, workers_by_debate

from debate.agents.scripted import ScriptedDebater, ScriptedSettings
from debate.store import open_store
from debate.store.models import Debate, utcnow
from debate.store.runs import claim_debates
from debate.store.workers import (
    UNKNOWN_KERNEL,
    default_worker_id,
    kernel_id,
    parse_worker,
    provably_dead,
)

DEBATE = str(Path(sys.executable).with_name("debate"))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def other_kernel() -> str:
    while True:
        k = uuid.uuid4().hex[:12]
        if k != kernel_id():
            return k


def test_default_ids_are_unique_and_name_host_pid_and_kernel():
    ids = {default_worker_id() for _ in range(200)}
    assert len(ids) == 200  # the random tag: same host, same pid, still distinct
    parsed = parse_worker(next(iter(ids)))
    assert parsed is not None
    assert parsed.host == socket.gethostname()[:48]
    assert parsed.kernel == kernel_id() != UNKNOWN_KERNEL and len(parsed.kernel) == 12
    web = parse_worker("web:" + default_worker_id())
    assert web is not None and web.host.startswith("web:") and web.kernel == kernel_id()
    assert len("web:" + default_worker_id()) <= 100  # fits debates.lease_owner


def test_only_a_dead_process_on_this_kernel_is_provably_dead():
    host = socket.gethostname()
    gone = dead_pid()
    alive = subprocess.Popen(["sleep", "30"])
    zombie = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        stat = Path(f"/proc/{zombie.pid}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        here = kernel_id()
        assert provably_dead(f"{host}:{gone}:{here}:0123abcd")
        assert provably_dead(f"{host}:{zombie.pid}:{here}:0123abcd")  # killed, not reaped
        assert not provably_dead(f"{host}:{alive.pid}:{here}:0123abcd")
        assert not provably_dead(f"{host}:{os.getpid()}:{here}:0123abcd")  # this process
        # A simulated id clash: the same hostname and a pid that is free here, but another
        # kernel or PID namespace: alive or not, nothing proves it dead.
        assert not provably_dead(f"{host}:{gone}:{other_kernel()}:0123abcd")
        assert not provably_dead(f"{host}:{gone}:x:0123abcd")
        assert not provably_dead(f"{host}:{gone}:4f2a")  # an id from an older version
        assert not provably_dead("remote-w1")  # a custom --worker-id
    finally:
        alive.kill()
        alive.wait()
        zombie.wait()


def can_unshare_pid() -> bool:
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def test_another_pid_namespace_is_another_kernel_id():
    if not can_unshare_pid():
        pytest.skip("unshare --pid is not permitted here (the simulated clash tests cover it)")
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c",
         "from debate.store.workers import default_worker_id; print(default_worker_id())"],
        capture_output=True, text=True, check=True).stdout.strip()
    theirs = parse_worker(out)
    assert theirs is not None and theirs.pid == 1
    assert theirs.host == socket.gethostname()[:48] and theirs.kernel != kernel_id()
    assert not provably_dead(out)  # pid 1 here is alive anyway; try a free pid too
    assert not provably_dead(f"{theirs.host}:{dead_pid()}:{theirs.kernel}:{theirs.tag}")


def test_a_lease_held_under_another_kernel_waits_for_expiry(store, tmp_path):
    cfg = make_config(write_questions(tmp_path / "q.jsonl", 3), "debate")
    exp, _ = setup_experiment(store, cfg, {"honest": ScriptedDebater(ScriptedSettings(), {}),
                                           "deceptive": ScriptedDebater(ScriptedSettings(), {})},
                              tmp_path)
    host, gone = socket.gethostname(), dead_pid()
    clash = f"{host}:{gone}:{other_kernel()}:0123abcd"
    ids = claim_debates(store, exp, clash, 100, lease_seconds=60)
    assert len(ids) == 3
    me = default_worker_id()
    assert claim_debates(store, exp, me, 100, lease_seconds=60) == []  # not taken early
    # The same pid on this kernel is provably dead: taken at once.
    dead_here = f"{host}:{gone}:{kernel_id()}:0123abcd"
    with store.write_session() as s:
        s.execute(update(Debate).values(lease_owner=dead_here))
    assert claim_debates(store, exp, me, 100, lease_seconds=60) == ids
    # Another kernel's lease that expired: taken.
    with store.write_session() as s:
        s.execute(update(Debate).values(lease_owner=clash,
                                        lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert claim_debates(store, exp, me, 100, lease_seconds=60) == ids


def worker_command(mode: str, index: int, args: list[str]) -> list[str]:
    """The command of worker `index`: in its own PID namespace (mode 'unshare'; the
    second worker forks two processes first, so the two workers get different pids), or
    (mode 'simulated') with an id that claims this host, a pid free here and another
    kernel, as a worker in another PID namespace has."""
    if mode == "unshare":
        prefix = "/bin/true; " * (2 * index)
        return ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
                f'{prefix}"$@"; exit $?', "sh", DEBATE, *args]
    if index == 0:
        return [DEBATE, *args]
    fake = f"{socket.gethostname()[:48]}:{dead_pid()}:{other_kernel()}:{uuid.uuid4().hex[:8]}"
    return [DEBATE, *args, "--worker-id", fake]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["unshare", "simulated"])
def test_two_workers_with_one_hostname_in_separate_pid_namespaces_share_the_work(
    mode, pg_url, tmp_path
):
    if mode == "unshare" and not can_unshare_pid():
        pytest.skip("unshare --pid is not permitted here; the simulated clash runs instead")
    questions = write_questions(tmp_path / "q.jsonl", 16)
    config = write_config(tmp_path / "exp.yaml", questions, {"name": "debate", "rounds": 2},
                          both_orders=True, debater={"type": "scripted", "delay": 0.3})
    open_store(pg_url).dispose()
    args = ["run", str(config), "--db", pg_url, "--worker", "--chunk", "4", "--quiet"]
    procs = [subprocess.Popen(worker_command(mode, i, args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [finish(p, timeout=120)[0] for p in procs]

    store = open_store(pg_url)
    check_complete(store, 32, 4)
    owners = workers_by_debate(store)
    ids = set().union(*owners.values())
    assert len(ids) == 2  # both worked
    parsed = [parse_worker(i) for i in ids]
    assert all(parsed) and len({p.host for p in parsed}) == 1  # one hostname
    assert len({p.kernel for p in parsed}) == 2  # two PID namespaces
    assert all(len(w) == 1 for w in owners.values())  # nobody took a live worker's debates
    assert not any("lost" in o for o in outs)
    assert sum(turns_run(o) for o in outs) == 32 * 4  # no step done and then dropped
    store.dispose()
