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
from pathlib import Path

ROUNDS = 3
WORDS = ["harbour", "lamp", "keeper", "tower", "channel", "ship", "night", "autumn", "orchard", "wall", "pear", "cherry", "river", "bridge", "mill", "stone", "winter", "letter", "brother", "market", "bell", "garden", "clock", "road", "field", "storm"]


def write_questions(path: Path, n: int) -> None:
    """n two-answer questions over 50 synthetic passages (documents are stored once)."""
    rng = random.Random(0)
    passages = [
        " ".join(rng.choice(WORDS) for _ in range(120)).capitalize() + "." for _ in range(50)
    ]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "id": f"q{i}",
                        "question": f"What does passage {i % 50} say about the {WORDS[i % 25]}?",
                        "answers": [f"It is the {WORDS[(i + 1) % 25]}.", f"It is the {WORDS[(i + 2) % 25]}."],
                        "correct_index": i % 2,
                        "source": passages[i % 50],
                    }
                )
                + "\n"
            )


def config(questions: Path) -> dict:
    return {
        "name": "bench",
        "seed": 1,
        "dataset": {"name": "jsonl", "path": str(questions)},
        "protocol": {"name": "debate", "rounds": ROUNDS},
        "debater": {"type": "scripted"},
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def arm_engine(workdir: Path, n: int) -> dict:
    from debate.config import parse_config
    from debate.run import run_experiment
    from debate.store import open_store

    qpath = workdir / "questions.jsonl"
    write_questions(qpath, n)
    store = open_store(f"sqlite:///{workdir / 'engine.db'}")
    t0 = time.perf_counter()
    result = run_experiment(store, parse_config(config(qpath)), workdir, show_progress=False)
    total = time.perf_counter() - t0
    store.dispose()
    assert result.counts == {"done": n}, result.counts
    return {"total_s": total, "run_s": result.stats.seconds, "turns": result.stats.turns,
            "rss_mb": peak_rss_mb()}


def arm_naive(workdir: Path, n: int) -> dict:
    from sqlalchemy import select

    from debate.agents.registry import BuildContext, build_agent
    from debate.config import parse_config
    from debate.datasets import load_questions, validate_dataset_settings
    from debate.engine import Engine, build_request
    from debate.store import open_store
    from debate.store.experiments import SeatAgents, agent_id, create_experiment
    from debate.store.models import Debate, Quote, Turn
    from debate.store.runs import load_states

    qpath = workdir / "questions.jsonl"
    write_questions(qpath, n)
    cfg = parse_config(config(qpath))
    store = open_store(f"sqlite:///{workdir / 'naive.db'}")
    t0 = time.perf_counter()
    questions = load_questions(validate_dataset_settings(cfg.dataset), workdir)
    agent = build_agent(cfg.debater, "debater", BuildContext(workdir))
    with store.session() as s:
        aid = agent_id(s, agent.identity)
    exp_id, _ = create_experiment(
        store, name=cfg.name, config=cfg.model_dump(mode="json"), config_hash=cfg.hash(),
        protocol=cfg.built_protocol(), seed=cfg.seed, questions=questions,
        both_orders=False, agents=SeatAgents(aid, aid),
    )
    setup = time.perf_counter() - t0
    engine = Engine(store, {aid: agent})  # only for its per-turn verification code
    t1 = time.perf_counter()
    turns = 0
    with store.sessions() as session:
        ids = list(session.scalars(select(Debate.id).where(Debate.experiment_id == exp_id)))
        for debate_id in ids:
            state = load_states(store, [debate_id])[0]
            for index, step in enumerate(state.protocol.schedule()):
                for slot in step:
                    request = build_request(state, slot, index)
                    t_call = time.perf_counter()
                    result = agent.respond([request])[0]
                    latency = (time.perf_counter() - t_call) * 1000
                    w = engine._turn_write(state, slot, index, aid, request, result, latency)
                    turn = Turn(
                        debate_id=w.debate_id, step=w.step, round=w.round, role=w.role,
                        kind=w.kind, agent_id=w.agent_id, text=w.text, status=w.status,
                        shown_sha256=w.shown_sha256, template_version=w.template_version,
                        latency_ms=w.latency_ms, meta=w.meta,
                    )
                    turn.quotes = [Quote(**q) for q in w.quotes]
                    session.add(turn)
                    session.commit()
                    turns += 1
                    from debate.store.runs import StoredTurn

                    state.turns.append(StoredTurn(index, slot.round, slot.role, slot.kind, w.text))
            session.get(Debate, debate_id).status = "done"
            session.commit()
    run = time.perf_counter() - t1
    store.dispose()
    return {"total_s": setup + run, "run_s": run, "turns": turns, "rss_mb": peak_rss_mb()}


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
    naive_run = naive["run_s"] * scale
    turns = ours["turns"]
    print(f"debates: {n} x {ROUNDS} rounds, sequential debate, 2 scripted debaters -> "
          f"{turns} turns, SQLite file")
    print(f"ours  (batched engine): run {ours['run_s']:.2f}s, with experiment set-up "
          f"{ours['total_s']:.2f}s, {turns / ours['run_s']:.0f} turns/s, "
          f"peak RSS {ours['rss_mb']:.0f} MB")
    measured = f"measured on {n_naive} debates" + (f", scaled x{scale:g}" if scale != 1 else "")
    print(f"naive (commit per turn): run {naive_run:.2f}s ({measured}), "
          f"{naive['turns'] * 1 / naive['run_s']:.0f} turns/s, peak RSS {naive['rss_mb']:.0f} MB")
    ratio = naive_run / ours["run_s"]
    print(f"speed-up {ratio:.1f}x (target >= 10x); ours within 60 s: "
          f"{'yes' if ours['total_s'] <= 60 else 'NO'}; RSS <= 500 MB: "
          f"{'yes' if ours['rss_mb'] <= 500 else 'NO'}")
    print(f"engine_throughput ratio={ratio:.2f} target=10")


if __name__ == "__main__":
    main()
