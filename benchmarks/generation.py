"""Text debates with a model: the batched engine with prefix reuse vs the naive loop.

    python benchmarks/generation.py [--quick] [--model PATH_OR_ID] [--model-size tiny|100m]
                                    [--device auto|cpu|cuda] [--naive-debates N]

Workload (the issue's): 32 debates (sequential debate, 3 rounds: 6 turns each), each with
its own ~1,500-token source, turns of a fixed number of tokens (~100 words; EOS is
suppressed so both arms generate exactly the same number of tokens), greedy decoding.
Without --model the test model is built offline (tests/tiny_model.py; `--model-size 100m`
builds a ~100M-parameter one, for a GPU run that needs no hub).

- ours: `debate.run.run_experiment` with a `model` debater (what `debate run` does): each
  engine step sends every debate's turn to the backend at once; batches are left-padded;
  each debate's instructions + source are encoded once and their key/value cache reused.
- batched, no prefix reuse: the same, with `prefix_cache: false` (shows what reuse adds).
- naive: the loop research code uses: one debate at a time, one `model.generate` call per
  turn on the full prompt (identical prompts, built by the same templates).

Both arms' texts are compared turn by turn (greedy: they should be the same).
Memory: a second run of many short debates (1,000; --quick: 200) leased in chunks of 100
records RSS as debates finish; it must not grow with the number of finished debates.

Last line: `generation ratio=<ours/naive turns per second> target=4` (15 on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ["the", "keeper", "climbed", "tower", "every", "evening", "for", "thirty", "years", "after", "new", "harbour", "opened", "south", "no", "ship", "came", "through", "channel", "any", "more", "one", "autumn", "night", "he", "simply", "left", "lamp", "dark", "mara", "spent", "spring", "digging", "along", "north", "wall", "she", "planted", "twelve", "cherry", "trees", "pears", "went", "gate", "where", "sun", "was", "warmer", "captain", "crew", "planet", "star", "engine", "signal"]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_source(tokenizer, rng: random.Random, tokens: int) -> str:
    words: list[str] = []
    while True:
        words.extend(rng.choice(WORDS) for _ in range(50))
        text = " ".join(words)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n >= tokens:
            return text


def write_dataset(path: Path, tokenizer, n: int, source_tokens: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "id": f"q{i}",
                "question": f"Why did the keeper leave the lamp dark in story {i}?",
                "answers": ["No ship came through the channel.", "He lost his sight."],
                "correct_index": 0,
                "source": make_source(tokenizer, rng, source_tokens),
                "source_title": f"Story {i}",
            }) + "\n")


def run_engine(store, data: Path, name: str, model: str, device: str, rounds: int,
               turn_tokens: int, prefix_cache: bool, threads: int | None,
               claim_size: int | None = None):
    from debate.config import parse_config
    from debate.run import run_experiment

    cfg = parse_config({
        "name": name,
        "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": "debate", "rounds": rounds, "max_words": 2000,
                     "max_quoted_words": 2000},
        "debater": {"type": "model", "model": model, "device": device, "temperature": 0.0,
                    "max_new_tokens": turn_tokens, "min_new_tokens": turn_tokens,
                    "max_resamples": 0, "prefix_cache": prefix_cache, "cpu_threads": threads,
                    "max_batch_size": 64, "token_budget": 1 << 22, "prefix_cache_mb": 256},
    })
    return run_experiment(store, cfg, data.parent, show_progress=False, claim_size=claim_size)


def stored_texts(store, experiment_id: int) -> dict[tuple[str, int, str], str]:
    from sqlalchemy import select

    from debate.store.models import Debate, Question, Turn

    with store.session() as s:
        rows = s.execute(
            select(Question.external_id, Debate.variant, Turn.round, Turn.role, Turn.text)
            .join(Debate, Turn.debate_id == Debate.id)
            .join(Question, Debate.question_id == Question.id)
            .where(Debate.experiment_id == experiment_id)
        ).all()
    return {(f"{q}/{v}", r, role): text for q, v, r, role, text in rows}


def run_naive(store, experiment_id: int, backend, n_debates: int, turn_tokens: int
              ) -> tuple[int, float, dict[tuple[str, int, str], str]]:
    """One debate at a time, one model.generate per turn on the whole prompt."""
    import torch
    from sqlalchemy import select

    from debate.backends.prompts import TemplateSet, debater_prompt
    from debate.engine import build_request
    from debate.store.models import Debate
    from debate.store.runs import StoredTurn, load_states

    with store.session() as s:
        ids = list(s.scalars(select(Debate.id).where(Debate.experiment_id == experiment_id)
                             .order_by(Debate.id)))[:n_debates]
    states = load_states(store, ids)
    templates = TemplateSet.load("debater")
    model, tok = backend.model, backend.tokenizer
    texts: dict[tuple[str, int, str], str] = {}
    with store.session() as s:
        variants = {i: v for i, v in s.execute(
            select(Debate.id, Debate.variant).where(Debate.id.in_(ids)))}
    turns = 0
    start = time.perf_counter()
    for state in states:
        state.turns = []
        for index, step in enumerate(state.protocol.schedule()):
            for slot in step:
                request = build_request(state, slot, index)
                prompt = debater_prompt(templates, request, state.protocol.family)
                text = backend.render(prompt.chat)
                enc = tok(text, add_special_tokens=False, return_tensors="pt").to(backend.device)
                with torch.inference_mode():
                    out = model.generate(**enc, max_new_tokens=turn_tokens,
                                         min_new_tokens=turn_tokens, do_sample=False,
                                         pad_token_id=backend.pad_id)
                reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                state.turns.append(StoredTurn(index, slot.round, slot.role, slot.kind, reply))
                texts[(f"{state.question_id}/{variants[state.id]}", slot.round, slot.role)] = reply
                turns += 1
    return turns, time.perf_counter() - start, texts


def memory_run(model: str, device: str, workdir: Path, tokenizer, n: int, threads: int | None
               ) -> list[tuple[int, float]]:
    """Many one-round debates with short turns, leased 100 at a time; (done, RSS MB) samples."""
    from debate.store import open_store
    from debate.store.runs import count_by_status

    data = workdir / "memory.jsonl"
    write_dataset(data, tokenizer, n // 2, 300, seed=7)
    store = open_store(f"sqlite:///{workdir / 'memory.db'}")
    samples: list[tuple[int, float]] = []
    stop = threading.Event()
    state = {"exp": None}

    def sample() -> None:
        from sqlalchemy import select

        from debate.store.models import Experiment

        while not stop.wait(0.5):
            if state["exp"] is None:
                with store.session() as s:
                    state["exp"] = s.scalar(select(Experiment.id).where(
                        Experiment.name == "memory"))
                continue
            done = count_by_status(store, state["exp"]).get("done", 0)
            samples.append((done, rss_mb()))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    from debate.config import parse_config
    from debate.run import run_experiment

    cfg = parse_config({
        "name": "memory",
        "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 200},
        "both_orders": True,
        "debater": {"type": "model", "model": model, "device": device, "temperature": 0.0,
                    "max_new_tokens": 8, "max_resamples": 0, "cpu_threads": threads,
                    "prefix_cache_mb": 16},
    })
    result = run_experiment(store, cfg, workdir, show_progress=False, claim_size=100)
    stop.set()
    thread.join()
    samples.append((result.counts.get("done", 0), rss_mb()))
    store.dispose()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default=None, help="hub id or local directory")
    ap.add_argument("--model-size", default="tiny", choices=["tiny", "100m"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--debates", type=int, default=None)
    ap.add_argument("--naive-debates", type=int, default=None,
                    help="run the naive loop on the first N debates only (its turns/s does "
                    "not depend on how many debates there are; saves time on big models)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (both arms)")
    ap.add_argument("--memory-debates", type=int, default=None)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()

    import torch

    from debate.backends.settings import BackendSettings
    from debate.backends.transformers_backend import TransformersBackend
    from debate.store import open_store

    debates = args.debates or (8 if args.quick else 32)
    rounds = 2 if args.quick else 3
    source_tokens = 600 if args.quick else 1500
    turn_tokens = 48 if args.quick else 130  # ~100 words of English
    memory_n = args.memory_debates or (200 if args.quick else 1000)
    threads = args.threads if args.threads > 0 else None

    work = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    model = args.model
    if model is None:
        from tiny_model import build_tiny_model

        model = str(build_tiny_model(work / f"model-{args.model_size}", size=args.model_size))
    backend = TransformersBackend(BackendSettings(model=model, device=args.device,
                                                  cpu_threads=threads, prefix_cache=False))
    params = sum(p.numel() for p in backend.model.parameters())
    data = work / "questions.jsonl"
    # both_orders is off: `debates` questions make `debates` debates
    write_dataset(data, backend.tokenizer, debates, source_tokens, seed=1)
    print(f"model {model} ({params / 1e6:.1f}M parameters) on {backend.device} "
          f"{backend.dtype}; torch threads {torch.get_num_threads()}")
    print(f"workload: {debates} debates x {rounds} rounds x 2 debaters, "
          f"~{source_tokens}-token sources, {turn_tokens}-token turns, greedy")

    store = open_store(f"sqlite:///{work / 'bench.db'}")
    t0 = time.perf_counter()
    ours = run_engine(store, data, "ours", model, args.device, rounds, turn_tokens, True, threads)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    flat = run_engine(store, data, "no-prefix", model, args.device, rounds, turn_tokens, False,
                      threads)
    flat_s = time.perf_counter() - t0
    n_naive = min(args.naive_debates or debates, debates)
    naive_turns, naive_s, naive_texts = run_naive(store, ours.experiment_id, backend, n_naive,
                                                  turn_tokens)
    ours_texts = stored_texts(store, ours.experiment_id)
    same = sum(1 for k, v in naive_texts.items() if ours_texts.get(k) == v)
    words = [len(t.split()) for t in ours_texts.values()]

    # engine time: from the first claim to the last write (storing included, loading not)
    ours_rate = ours.stats.turns_per_second
    flat_rate = flat.stats.turns_per_second
    naive_rate = naive_turns / naive_s
    print(f"{'arm':<34}{'turns':>7}{'seconds':>10}{'turns/s':>10}")
    print(f"{'ours (batched + prefix reuse)':<34}{ours.stats.turns:>7}"
          f"{ours.stats.seconds:>10.2f}{ours_rate:>10.2f}   ({ours_s:.1f}s with loading)")
    print(f"{'batched, no prefix reuse':<34}{flat.stats.turns:>7}{flat.stats.seconds:>10.2f}"
          f"{flat_rate:>10.2f}   ({flat_s:.1f}s with loading)")
    print(f"{'naive (generate per turn)':<34}{naive_turns:>7}{naive_s:>10.2f}{naive_rate:>10.2f}"
          + (f"   (first {n_naive} debates)" if n_naive < debates else ""))
    print(f"same text as the naive loop (greedy): {same}/{len(naive_texts)} turns; "
          f"mean words per turn {sum(words) / max(len(words), 1):.0f}")
    print(f"prefix reuse: {ours_rate / flat_rate:.2f}x over batching alone "
          "(engine time, storing included)")
    print(f"peak RSS {peak_rss_mb():.0f} MB"
          + (f"; peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
             if backend.device.type == "cuda" else ""))
    store.dispose()

    if not args.no_memory:
        samples = memory_run(model, args.device, work, backend.tokenizer, memory_n, threads)
        if samples:
            total = samples[-1][0]
            marks = []
            for frac in (0.2, 0.5, 1.0):
                want = total * frac
                pick = next(((d, r) for d, r in samples if d >= want), samples[-1])
                marks.append(pick)
            line = ", ".join(f"{d} done: {r:.0f} MB" for d, r in marks)
            growth = marks[-1][1] - marks[0][1]
            print(f"memory, {total} short debates leased 100 at a time: RSS {line}; growth "
                  f"from 20% to 100% finished: {growth:+.0f} MB "
                  f"({growth / max(total * 0.8, 1) * 1024:+.1f} KB per finished debate)")
        print(f"peak RSS {peak_rss_mb():.0f} MB")

    target = 15.0 if backend.device.type == "cuda" else 4.0
    print(f"generation ratio={ours_rate / naive_rate:.2f} target={target:g}")
    os._exit(0)  # skip slow interpreter teardown of torch threads


if __name__ == "__main__":
    main()
