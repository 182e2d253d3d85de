"""Engine throughput: batched engine vs a naive loop that commits each turn on its own.

    python benchmarks/engine_throughput.py [--quick] [--debates N] [--naive-debates N]

Both arms run the same work on the same schema: N debates of 3 rounds (sequential debate,
two debaters, so 6 turns a debate) with instant scripted debaters, every turn's quotes
verified against the source, everything stored in a fresh SQLite file. The experiment
(questions, documents, debates, seats) is created by the same code in both arms and timed
separately. Each arm runs in its own child process, so its peak RSS is its own.

Ours is `debate.run.run_experiment` (what `debate run` does). The naive loop walks the
debates one by one and, for each turn, builds the request, calls the agent with that one
request, verifies the quotes with the engine's own code, adds ORM rows and commits.

The last line is `engine_throughput ratio=<naive/ours, run phase> target=10`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debate.agents.registry import BuildContext
from debate.config import parse_config
from debate.engine import Engine
from debate.run import build_seat_agents, plan_run
from debate.steps import build_request, quote_rows, turn_write
from debate.store import open_store
from debate.store.experiments import store_experiment
from debate.store.models import Debate, Quote, Turn
from debate.store.runs import StoredTurn, count_by_status, load_states
from debate.store.workers import default_worker_id

ROUNDS = 3
WORDS = ["harbour", "lamp", "keeper", "tower", "channel", "ship", "night", "autumn", "orchard", "wall", "pear", "cherry", "river", "bridge", "mill", "stone", "winter", "letter", "brother", "market", "bell", "garden", "clock", "road", "field", "storm"]


def write_inputs(workdir: Path, n: int) -> tuple[Path, Path]:
    """n two-answer questions over 50 synthetic passages (documents are stored once), and
    the replay script of the two debaters: every turn quotes its passage verbatim."""
    rng = random.Random(0)
    passages = [[rng.choice(WORDS) for _ in range(120)] for _ in range(50)]
    questions, script = workdir / "questions.jsonl", workdir / "script.jsonl"
    with questions.open("w", encoding="utf-8") as qf, script.open("w", encoding="utf-8") as sf:
        for i in range(n):
            words = passages[i % 50]
            answers = [f"It is the {WORDS[(i + 1) % 25]}.", f"It is the {WORDS[(i + 2) % 25]}."]
            qf.write(json.dumps({
                "id": f"q{i}",
                "question": f"What does passage {i % 50} say about the {WORDS[i % 25]}?",
                "answers": answers,
                "correct_index": i % 2,
                "source": " ".join(words).capitalize() + ".",
            }) + "\n")
            for r in range(1, ROUNDS + 1):
                for k, role in enumerate(("A", "B")):
                    start = ((r - 1) * 2 + k) * 10 + 5
                    quote = " ".join(words[start : start + 10])
                    text = (f"Round {r}: the answer is \"{answers[k]}\". The passage says "
                            f"<quote>{quote}</quote>, which settles it.")
                    sf.write(json.dumps({"question_id": f"q{i}", "role": role, "round": r,
                                         "text": text}) + "\n")
    return questions, script


def config(questions: Path, script: Path) -> dict:
    return {
        "name": "bench",
        "seed": 1,
        "dataset": {"name": "jsonl", "path": str(questions)},
        "protocol": {"name": "debate", "rounds": ROUNDS},
        "debater": {"type": "scripted", "script": str(script)},
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@dataclass
class Setup:
    store: Any
    experiment_id: int
    agents: dict[int, Any]
    seconds: float


def set_up(workdir: Path, n: int, db_name: str) -> Setup:
    """What `debate run` does before the engine starts (the same for both arms): validate
    the config, load the questions, build the debaters, store the experiment."""
    cfg = parse_config(config(*write_inputs(workdir, n)))
    store = open_store(f"sqlite:///{workdir / db_name}")
    t0 = time.perf_counter()
    plan = plan_run(cfg, workdir)

    seat_agents, _ = build_seat_agents(cfg, BuildContext(workdir))
    stored = store_experiment(
        store, name=cfg.name, config=cfg.model_dump(mode="json"), config_hash=cfg.hash(),
        protocol=plan.protocol, seed=cfg.seed, questions=plan.questions,
        both_orders=cfg.both_orders,
        identities={seat: a.identity for seat, a in seat_agents.items()},
    )
    agents = {stored.agent_ids[seat]: a for seat, a in seat_agents.items()}
    return Setup(store, stored.id, agents, time.perf_counter() - t0)


def measured(setup: Setup, wall: float, cpu: float, turns: int) -> dict:
    setup.store.dispose()
    return {"setup_s": setup.seconds, "run_s": wall, "cpu_s": cpu, "turns": turns,
            "rss_mb": peak_rss_mb()}


def arm_engine(workdir: Path, n: int) -> dict:
    from sqlalchemy import func, select

    setup = set_up(workdir, n, "engine.db")
    t0, c0 = time.perf_counter(), time.process_time()
    stats = Engine(setup.store, setup.agents).run(setup.experiment_id)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert count_by_status(setup.store, setup.experiment_id) == {"done": n}
    with setup.store.session() as session:
        verified = session.scalar(select(func.count()).select_from(Quote).where(Quote.verified))
    assert verified == stats.turns, (verified, stats.turns)
    return measured(setup, wall, cpu, stats.turns)


def arm_naive(workdir: Path, n: int) -> dict:
    """Debate by debate, turn by turn: one agent call, the same quote verification, ORM
    rows, one commit per turn."""
    from sqlalchemy import func, select

    setup = set_up(workdir, n, "naive.db")
    store = setup.store
    worker = default_worker_id()  # turn_write: the per-turn record the engine makes
    t0, c0 = time.perf_counter(), time.process_time()
    turns = 0
    with store.sessions() as session:
        ids = list(session.scalars(
            select(Debate.id).where(Debate.experiment_id == setup.experiment_id)))
        for debate_id in ids:
            state = load_states(store, [debate_id])[0]
            for index, step in enumerate(state.protocol.schedule()):
                for slot in step:
                    seat = state.seats[slot.role]
                    agent = setup.agents[seat.agent_id]
                    request = build_request(state, slot, index)
                    t_call = time.perf_counter()
                    result = agent.respond([request])[0]
                    latency = (time.perf_counter() - t_call) * 1000
                    w = turn_write(worker, state, slot, index, seat.agent_id, request, result,
                                   latency)
                    turn = Turn(
                        debate_id=w.debate_id, step=w.step, round=w.round, role=w.role,
                        kind=w.kind, agent_id=w.agent_id, text=w.text, status=w.status,
                        shown_sha256=w.shown_sha256, template_version=w.template_version,
                        latency_ms=w.latency_ms, meta=w.meta,
                    )
                    turn.quotes = [Quote(**q) for q in quote_rows(w.text, state.source)]
                    session.add(turn)
                    session.commit()
                    turns += 1
                    state.turns.append(StoredTurn(index, slot.round, slot.role, slot.kind, w.text))
            session.get(Debate, debate_id).status = "done"
            session.commit()
        verified = session.scalar(select(func.count()).select_from(Quote).where(Quote.verified))
    assert verified == turns, (verified, turns)  # every scripted turn quotes its passage
    return measured(setup, time.perf_counter() - t0, time.process_time() - c0, turns)


def run_arm(name: str, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--arm", name, "--debates", str(n), "--workdir", tmp],
            check=True, capture_output=True, text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 debates (naive: 200, scaled)")
    ap.add_argument("--debates", type=int, default=None)
    ap.add_argument("--naive-debates", type=int, default=None,
                    help="debates for the naive loop (its time is scaled to --debates)")
    ap.add_argument("--arm", choices=["engine", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.debates or (1_000 if args.quick else 10_000)
    if args.arm:
        fn = arm_engine if args.arm == "engine" else arm_naive
        print(json.dumps(fn(Path(args.workdir), n)))
        return
    n_naive = args.naive_debates or (200 if args.quick else n)
    ours = run_arm("engine", n)
    naive = run_arm("naive", n_naive)
    scale = n / n_naive
    turns = ours["turns"]
    total = ours["setup_s"] + ours["run_s"]
    print(f"debates: {n} x {ROUNDS} rounds, sequential debate, 2 scripted (replay) debaters "
          f"-> {turns} turns with {turns} quotes verified, SQLite file")
    print(f"ours  (batched engine):  run {ours['run_s']:.2f}s wall, {ours['cpu_s']:.2f}s CPU; "
          f"{total:.2f}s with experiment set-up; {turns / ours['run_s']:.0f} turns/s; "
          f"peak RSS {ours['rss_mb']:.0f} MB")
    how = f"measured on {n_naive} debates" + (f", scaled x{scale:g}" if scale != 1 else "")
    print(f"naive (commit per turn): run {naive['run_s'] * scale:.2f}s wall, "
          f"{naive['cpu_s'] * scale:.2f}s CPU ({how}); "
          f"{naive['turns'] / naive['run_s']:.0f} turns/s; peak RSS {naive['rss_mb']:.0f} MB")
    ratio = naive["run_s"] * scale / ours["run_s"]
    cpu_ratio = naive["cpu_s"] * scale / ours["cpu_s"]
    print(f"speed-up {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU (target >= 10x); "
          f"ours within 60 s: {'yes' if total <= 60 else 'NO'}; "
          f"peak RSS <= 500 MB: {'yes' if ours['rss_mb'] <= 500 else 'NO'}")
    print(f"engine_throughput ratio={ratio:.2f} target=10")

if __name__ == "__main__":
    main()
