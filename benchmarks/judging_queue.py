"""Human judging queue under load: 100,000 debates in the store, 20 judges at once
through gradio_client against a launched `debate serve`, on SQLite and on PostgreSQL.

Each judge loops: "Next debate" (timed), then submits a judgment. Reports the p50/p95/max
latency of "Next debate" per database, checks that no debate got more judgments than the
campaign asks and that no judge got a question twice, and ends with

    judging_queue ratio=<200 / worse p95 in ms> target=1.0

PostgreSQL: DEBATE_TEST_PG_URL (an admin URL; a fresh database is made and dropped),
else a throw-away server from .ci/start-postgres.

    python benchmarks/judging_queue.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from debate.protocols import get_protocol
from debate.store import open_store
from debate.store.db import Store
from debate.store.models import (
    Assignment,
    Debate,
    Experiment,
    Seat,
    Turn,
    User,
)
from debate.store.models import Question as QuestionRow
from debate.users import hash_password
from judges.queue import create_campaign

TARGET_MS = 200.0
PASSWORD = "benchmark-password"
CHUNK = 5000


def seed(store: Store, n_debates: int, n_judges: int) -> int:
    """Bulk-insert one finished experiment: n_debates/2 questions in both answer orders,
    each debate with one round of two turns; plus the judges. Returns the campaign id."""
    proto = get_protocol("debate", rounds=1)
    spec = proto.to_dict()
    n_questions = n_debates // 2
    with store.session() as s:
        exp = Experiment(name="bench", protocol="debate", config={}, config_hash="0" * 64,
                         seed=0, source="run")
        s.add(exp)
        s.flush()
        exp_id = exp.id
    for start in range(0, n_questions, CHUNK):
        with store.session() as s:
            qrows = [{"experiment_id": exp_id, "external_id": f"q{i}", "dataset": "bench",
                      "text": f"Question {i}: which is right?", "answers": [f"yes {i}", f"no {i}"],
                      "correct_index": i % 2, "document_id": None, "meta": {}}
                     for i in range(start, min(start + CHUNK, n_questions))]
            qids = s.execute(insert(QuestionRow).returning(QuestionRow.id,
                                                           sort_by_parameter_order=True),
                             qrows).scalars().all()
            drows = []
            for qid in qids:
                for order in ([0, 1], [1, 0]):
                    drows.append({"experiment_id": exp_id, "question_id": qid,
                                  "protocol": "debate", "protocol_spec": spec,
                                  "variant": f"order={order[0]}{order[1]}",
                                  "answer_order": order, "seed": qid, "status": "done",
                                  "steps_done": 2, "meta": {}})
            dids = s.execute(insert(Debate).returning(Debate.id, sort_by_parameter_order=True),
                             drows).scalars().all()
            s.execute(insert(Seat), [{"debate_id": d, "role": r, "agent_id": None,
                                      "answer_index": row["answer_order"][k]}
                                     for d, row in zip(dids, drows)
                                     for k, r in enumerate(("A", "B"))])
            s.execute(insert(Turn), [{"debate_id": d, "step": k, "round": 1, "role": r,
                                      "kind": "speech", "text": f"I argue {r}: <quote>it</quote>",
                                      "status": "ok", "meta": {}}
                                     for d in dids for k, r in enumerate(("A", "B"))])
    digest = hash_password(PASSWORD)
    with store.session() as s:
        s.execute(insert(User), [{"name": f"judge{i}", "role": "judge", "password_hash": digest}
                                 for i in range(n_judges)])
    return create_campaign(store, name="bench-campaign", experiment="bench").id


def settle(store: Store) -> None:
    """Bring the freshly bulk-loaded store to the state a long-lived one is in: on
    PostgreSQL, vacuumed and analysed now rather than by autovacuum in the middle of the
    measurement; on SQLite, with planner statistics (ANALYZE)."""
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


@dataclass
class Result:
    backend: str
    latencies_ms: list[float]
    double_assigned: int
    repeated_questions: int
    seconds: float
    errors: list[str]

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("inf")


def start_server(url: str, port: int, log: Path) -> subprocess.Popen:
    code = ("from debate.cli import main; import sys; "
            f"main(['serve', '--db', {url!r}, '--port', '{port}'])")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 401:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the server did not start; see {log}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def login(url: str, name: str):
    """A logged-in client. Logging in (argon2, slow on purpose) is not what is measured."""
    from gradio_client import Client

    # ssl_verify=False: the server is plain HTTP on loopback, so no certificate is ever
    # checked; with the default gradio_client builds a CA-loading SSL context for every
    # request (~60 ms of CPU), which would measure the load generator, not the server.
    return Client(url, auth=(name, PASSWORD), verbose=False, download_files=False,
                  ssl_verify=False, httpx_kwargs={"timeout": 60})


def judge_loop(client, name: str, campaign: str, rounds: int, think_s: float,
               barrier: threading.Barrier, out: list[float], errors: list[str]) -> None:
    rng = random.Random(name)
    try:
        client.predict(api_name="/whoami")  # the page loads before the judge clicks Next
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{name}: page load: {exc}")
    barrier.wait()
    time.sleep(rng.uniform(0, think_s))  # judges do not all click at the same instant
    for _ in range(rounds):
        t0 = time.perf_counter()
        try:
            res = client.predict(campaign, api_name="/next_debate")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{name}: next: {exc}")
            return
        out.append((time.perf_counter() - t0) * 1000.0)
        if os.environ.get("BENCH_TRACE"):
            print(f"{name} {len(out)} {out[-1]:.0f}", flush=True)
        assignment, debate, rnd = res[1], res[2], res[3]
        if not assignment:
            errors.append(f"{name}: queue ran dry")
            return
        time.sleep(rng.uniform(0.5, 1.5) * think_s)  # reading the debate
        try:
            client.predict(campaign, assignment, debate, rnd, 60, 40, "benchmark verdict",
                           api_name="/submit_judgment")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{name}: submit: {exc}")
            return


def run_backend(backend: str, url: str, n_debates: int, n_judges: int, rounds: int,
                think_s: float, workdir: Path) -> Result:
    store = open_store(url)
    t0 = time.perf_counter()
    campaign_id = seed(store, n_debates, n_judges)
    settle(store)
    print(f"[{backend}] seeded {n_debates} debates in {time.perf_counter() - t0:.1f}s",
          flush=True)
    port = free_port()
    server = start_server(url, port, workdir / f"server-{backend}.log")
    latencies: list[float] = []
    errors: list[str] = []
    try:
        t_login = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:  # the server checks 4 passwords at a time
            clients = list(pool.map(lambda i: login(f"http://127.0.0.1:{port}/", f"judge{i}"),
                                    range(n_judges)))
        print(f"[{backend}] {n_judges} judges logged in in "
              f"{time.perf_counter() - t_login:.1f}s", flush=True)
        barrier = threading.Barrier(n_judges)
        threads = [threading.Thread(target=judge_loop, args=(
            clients[i], f"judge{i}", str(campaign_id), rounds, think_s, barrier, latencies,
            errors))
            for i in range(n_judges)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)
    with store.session() as s:
        per_debate = Counter(s.scalars(select(Assignment.debate_id)))
        pairs = Counter(s.execute(select(Assignment.user_id, Assignment.question_id)).all())
        total = s.scalar(select(func.count()).select_from(Debate))
    assert total == n_debates
    store.dispose()
    return Result(backend, latencies, sum(1 for n in per_debate.values() if n > 1),
                  sum(1 for n in pairs.values() if n > 1), seconds, errors)


def pg_admin_url() -> tuple[str, callable]:
    url = os.environ.get("DEBATE_TEST_PG_URL")
    if url:
        return url, lambda: None
    out = subprocess.run([str(ROOT / ".ci" / "start-postgres")], capture_output=True, text=True,
                         check=True).stdout
    info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return info["URL"], lambda: subprocess.run(
        [str(ROOT / ".ci" / "start-postgres"), "stop", info["DIR"]], check=False)


def run_pg(results: list[Result], admin: str, stop, n_debates: int, n_judges: int,
           rounds: int, think: float, workdir: Path) -> None:
    name = "bench_" + uuid.uuid4().hex[:10]
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        pg = make_url(admin).set(database=name).render_as_string(hide_password=False)
        results.append(run_backend("postgresql", pg, n_debates, n_judges, rounds, think,
                                   workdir))
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="2,000 debates, 2 requests a judge")
    ap.add_argument("--debates", type=int, default=None)
    ap.add_argument("--judges", type=int, default=20)
    ap.add_argument("--requests", type=int, default=None,
                    help="'Next debate' calls per judge (default 20; --quick 2)")
    ap.add_argument("--think-ms", type=float, default=2000.0,
                    help="time a judge spends on a debate before submitting (mean; 0: none)")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], default=None,
                    help="measure one database (the last line then reports that one)")
    args = ap.parse_args()
    n_debates = args.debates or (2_000 if args.quick else 100_000)
    rounds = args.requests or (2 if args.quick else 20)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        think = args.think_ms / 1000.0
        if args.only in (None, "sqlite"):
            results.append(run_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}",
                                       n_debates, args.judges, rounds, think, workdir))
        if args.only == "sqlite":
            admin, stop = None, None
        else:
            admin, stop = pg_admin_url()
        if admin is not None:
            run_pg(results, admin, stop, n_debates, args.judges, rounds, think, workdir)
    print(f"\n{n_debates} debates, {args.judges} judges at once, {rounds} 'Next debate' "
          f"calls each, each followed after ~{args.think_ms:.0f} ms by a submit, "
          "through gradio_client")
    print(f"{'database':<12}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
          f"{'double':>8}{'repeat q':>10}{'errors':>8}")
    for r in results:
        print(f"{r.backend:<12}{len(r.latencies_ms):>9}{r.pct(50):>9.1f}{r.pct(95):>9.1f}"
              f"{max(r.latencies_ms or [float('inf')]):>9.1f}{r.double_assigned:>8}"
              f"{r.repeated_questions:>10}{len(r.errors):>8}")
        for e in r.errors[:5]:
            print(f"  error: {e}")
    worst = max(r.pct(95) for r in results)
    broken = any(r.double_assigned or r.repeated_questions or r.errors for r in results)
    ratio = 0.0 if broken else TARGET_MS / worst
    if broken:
        print("FAILED: double assignment, repeated question or errors (ratio set to 0)")
    print(json.dumps({r.backend: {"p95_ms": round(r.pct(95), 1)} for r in results}))
    print(f"judging_queue ratio={ratio:.3f} target=1.0")


if __name__ == "__main__":
    main()
