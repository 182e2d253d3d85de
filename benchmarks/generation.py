"""Text debates with a model: four ways to generate them, side by side, on several shapes.

    python benchmarks/generation.py [--quick] [--shapes tiny,25m,100m] [--device auto|cpu|cuda]
                                    [--debates N] [--slow-debates N] [--reps N] [--threads N]

Workload (issue 17): 32 debates (sequential debate, 3 rounds: 6 turns each), each with its
own long source (~2,000 tokens; prompts grow to ~2,400 with the transcript), turns of at
most 100 new tokens, greedy decoding (a turn ends at the model's end token or at 100).
Models are built offline (tests/tiny_model.py, random weights, trained tokenizer, loaded
like a hub checkpoint): `tiny` is the tests' 0.06M model whose cost is attention; `25m`
(hidden 512, 8 layers, 8 heads, 2 key/value heads) has its cost in the weights, as real
models do; `100m` (hidden 1024, 8 layers, 16 heads, 4 key/value heads) is the GPU shape
(full mode; --shapes picks).

Arms, each producing the same debates:
- ours: `debate.run.run_experiment` with a model debater, `generation: own` (what
  `debate run` does on CPU): one batched call per engine step, the debate's instructions +
  source and its transcript so far reused from kept key/value caches, storing included.
- continuous: the same engine with `generation: continuous`: transformers'
  ContinuousBatchingManager (paged cache, block sharing on, cache sized explicitly from
  the model and the batch settings: see debate/backends/continuous.py).
- static: the classic batched loop: per engine step, every debate's prompt left-padded
  into `model.generate` batches of --static-batch rows (whole prompts every turn).
- naive: one `model.generate` per turn on the whole prompt, one debate at a time.

Every arm feeds the same token ids (the backend's `prompt_ids`), and every arm's text is
checked against ours turn by turn (greedy: it must be the same). The arms alternate: with
--reps R each arm runs R times, in forward then reverse order, and its rate is its total
turns over its total time. The slow arms (static, naive) run on the first --slow-debates
debates of each rep (turns/s of one-at-a-time or re-read-everything loops does not depend
on how many debates wait; static's batches stay full as long as slow-debates >=
static-batch).

Last lines: `generation_<shape> ratio=...` for each shape, `generation_vs_continuous
ratio=<ours/continuous on the weight-bound shape> target=1`, and finally
`generation ratio=<ours/naive on the weight-bound shape> target=4` (the headline).
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_model import build_tiny_model

from debate.backends.prompts import TemplateSet, debater_prompt
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.config import parse_config
from debate.run import run_experiment
from debate.steps import build_request
from debate.store import open_store
from debate.store.models import Debate, Experiment, Question, Turn
from debate.store.runs import StoredTurn, count_by_status, load_states

WORDS = ["the", "keeper", "climbed", "tower", "every", "evening", "for", "thirty", "years", "after", "new", "harbour", "opened", "south", "no", "ship", "came", "through", "channel", "any", "more", "one", "autumn", "night", "he", "simply", "left", "lamp", "dark", "mara", "spent", "spring", "digging", "along", "north", "wall", "she", "planted", "twelve", "cherry", "trees", "pears", "went", "gate", "where", "sun", "was", "warmer", "captain", "crew", "planet", "star", "engine", "signal"]

WEIGHT_BOUND = "25m"


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
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= tokens:
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


@dataclass
class Workload:
    debates: int
    rounds: int
    source_tokens: int
    turn_tokens: int
    slow_debates: int
    static_batch: int
    reps: int
    threads: int | None
    device: str
    dtype: str = "auto"
    attn: str | None = None  # attn_implementation for every arm (None: the model's default)
    # room for every debate's kept prefix + transcripts (4 per debate), so the run measures
    # reuse, not LRU eviction (32 debates of the 25m model with 1,500-token sources need
    # ~2.5 GB; a smaller bound re-encodes the sources every step)
    prefix_cache_mb: float = 4096


@dataclass
class ArmResult:
    turns: int = 0
    seconds: float = 0.0
    texts: dict[tuple[str, int, str], str] = field(default_factory=dict)
    tokens: int = 0
    cpu: float = 0.0  # process CPU seconds (all threads) over the whole arm, loading included

    @property
    def rate(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.turns / self.cpu if self.cpu else 0.0


def engine_config(data: Path, name: str, model: str, w: Workload, generation: str):
    return parse_config({
        "name": name,
        "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": "debate", "rounds": w.rounds, "max_words": 4000,
                     "max_quoted_words": 4000},
        "debater": {"type": "model", "model": model, "device": w.device, "temperature": 0.0,
                    "max_new_tokens": w.turn_tokens, "max_resamples": 0,
                    "cpu_threads": w.threads, "generation": generation, "dtype": w.dtype,
                    "attn_implementation": w.attn,
                    "max_batch_size": 64, "token_budget": 1 << 17,
                    "prefix_cache_mb": w.prefix_cache_mb},
    })


def stored_texts(store, experiment_id: int) -> dict[tuple[str, int, str], str]:
    from sqlalchemy import select

    with store.session() as s:
        rows = s.execute(
            select(Question.external_id, Turn.round, Turn.role, Turn.meta, Turn.text)
            .join(Debate, Turn.debate_id == Debate.id)
            .join(Question, Debate.question_id == Question.id)
            .where(Debate.experiment_id == experiment_id)
        ).all()
    # the raw model text (before any truncation for the word limit, which is off here)
    return {(q, r, role): (meta or {}).get("raw_text", text) for q, r, role, meta, text in rows}


def first_error(store, experiment_id: int) -> str | None:
    from sqlalchemy import select

    with store.session() as s:
        return s.scalar(select(Debate.error).where(Debate.experiment_id == experiment_id,
                                                   Debate.error.is_not(None)).limit(1))


def run_engine_arm(store, data: Path, name: str, model: str, w: Workload, generation: str
                   ) -> tuple[ArmResult, int]:
    result = run_experiment(store, engine_config(data, name, model, w, generation),
                            data.parent, show_progress=False)
    if result.counts != {"done": w.debates}:
        raise SystemExit(f"{name}: debates {result.counts}; first error: {first_error(store, result.experiment_id)}")
    texts = stored_texts(store, result.experiment_id)
    # engine time: from the first claim to the last write (storing included, loading not)
    return ArmResult(result.stats.turns, result.stats.seconds, texts), result.experiment_id


def debate_states(store, experiment_id: int, n: int):
    from sqlalchemy import select

    with store.session() as s:
        ids = list(s.scalars(select(Debate.id).where(Debate.experiment_id == experiment_id)
                             .order_by(Debate.id)))[:n]
    states = load_states(store, ids)
    for state in states:
        state.turns = []
    return states


def cut_at_stop(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in stop_ids:
            return tokens[:i]
    return tokens


def run_hf_loop(store, experiment_id: int, backend, w: Workload, batch_rows: int
                ) -> ArmResult:
    """Every debate's turns through `model.generate` on whole prompts: `batch_rows` = 1 is
    the naive loop (one debate at a time, one call per turn); more is static batching
    (per engine step, the step's prompts left-padded into batches of that many rows)."""
    import torch

    states = debate_states(store, experiment_id, w.slow_debates)
    templates = TemplateSet.load("debater")
    model, tok = backend.model, backend.tokenizer
    out = ArmResult()

    def generate(rows: list[list[int]]) -> list[list[int]]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), backend.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        with torch.inference_mode():
            gen = model.generate(input_ids=ids.to(backend.device),
                                 attention_mask=mask.to(backend.device),
                                 max_new_tokens=w.turn_tokens, do_sample=False,
                                 pad_token_id=backend.pad_id)
        return [cut_at_stop(g[width:].tolist(), backend.stop_ids) for g in gen]

    def speak(group: list) -> None:
        prompts = []
        for state, slot, index in group:
            request = build_request(state, slot, index)
            prompts.append(backend.prompt_ids(debater_prompt(
                templates, request, state.protocol.family).chat))
        for start in range(0, len(group), batch_rows):
            replies = generate(prompts[start:start + batch_rows])
            for (state, slot, index), reply in zip(group[start:start + batch_rows], replies):
                text = tok.decode(reply, skip_special_tokens=True)
                state.turns.append(StoredTurn(index, slot.round, slot.role, slot.kind, text))
                out.texts[(state.question_id, slot.round, slot.role)] = text
                out.turns += 1
                out.tokens += len(reply)

    start = time.perf_counter()
    if batch_rows == 1:
        for state in states:
            for index, step in enumerate(state.protocol.schedule()):
                for slot in step:
                    speak([(state, slot, index)])
    else:
        schedule = list(states[0].protocol.schedule())
        for index, step in enumerate(schedule):
            for slot in step:
                speak([(state, slot, index) for state in states])
    out.seconds = time.perf_counter() - start
    return out


def question_ids(store, experiment_id: int) -> dict[int, str]:
    from sqlalchemy import select

    with store.session() as s:
        return {i: e for i, e in s.execute(select(Question.id, Question.external_id)).all()}


def run_shape(shape: str, w: Workload, work: Path, arms: list[str], flip: bool
              ) -> dict[str, ArmResult]:
    import torch

    model = str(build_tiny_model(work / f"model-{shape}", size=shape))
    backend = TransformersBackend(BackendSettings(model=model, device=w.device, dtype=w.dtype,
                                                  attn_implementation=w.attn,
                                                  cpu_threads=w.threads, prefix_cache=False))
    params = sum(p.numel() for p in backend.model.parameters())
    data = work / f"questions-{shape}.jsonl"
    write_dataset(data, backend.tokenizer, w.debates, w.source_tokens, seed=1)
    print(f"\n== shape {shape}: {params / 1e6:.1f}M parameters on {backend.device} "
          f"{backend.dtype}, attention {backend.model.config._attn_implementation}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"workload: {w.debates} debates x {w.rounds} rounds x 2 debaters, "
          f"~{w.source_tokens}-token sources, turns of at most {w.turn_tokens} tokens, greedy; "
          f"static and naive on the first {w.slow_debates} debates of each rep", flush=True)

    store = open_store(f"sqlite:///{work / f'bench-{shape}.db'}")
    results = {arm: ArmResult() for arm in ("ours", "continuous", "static", "naive")}
    reference: dict[tuple[str, int, str], str] = {}
    qnames: dict[int, str] = {}
    first_exp = None
    for rep in range(w.reps):
        # alternate the order between reps (and shapes); the first arm of all is ours, whose
        # debates the slow arms replay and whose text is the reference
        order = arms if (rep + flip) % 2 == 0 else arms[::-1]
        if first_exp is None:
            order = ["ours"] + [a for a in order if a != "ours"]
        for arm in order:
            cpu0 = time.process_time()
            if arm in ("ours", "continuous"):
                generation = "own" if arm == "ours" else "continuous"
                res, exp = run_engine_arm(store, data, f"{arm}-{rep}", model, w, generation)
                first_exp = first_exp or exp
            else:
                if not qnames:
                    qnames = question_ids(store, first_exp)
                res = run_hf_loop(store, first_exp, backend, w,
                                  1 if arm == "naive" else w.static_batch)
                res.texts = {(qnames.get(q, q), r, role): t for (q, r, role), t in res.texts.items()}
            res.cpu = time.process_time() - cpu0
            agg = results[arm]
            agg.turns += res.turns
            agg.seconds += res.seconds
            agg.tokens += res.tokens
            agg.cpu += res.cpu
            agg.texts.update(res.texts)
            if arm == "ours":
                reference.update(res.texts)
            print(f"  rep {rep + 1} {arm:<11} {res.turns:>5} turns {res.seconds:>8.2f} s "
                  f"{res.rate:>8.2f} turns/s   CPU {res.cpu:.1f} s", flush=True)
    store.dispose()

    print(f"{'arm':<44}{'turns':>7}{'seconds':>10}{'turns/s':>10}{'CPU s':>9}"
          f"{'turns/CPU s':>13}{'same text':>12}")
    labels = {
        "ours": "ours (engine, generation: own)",
        "continuous": "continuous batching (engine, continuous)",
        "static": f"static left-padded batches of {w.static_batch}",
        "naive": "naive (one generate per turn)",
    }
    for arm in arms:
        r = results[arm]
        same = sum(1 for k, v in r.texts.items() if reference.get(k) == v)
        print(f"{labels[arm]:<44}{r.turns:>7}{r.seconds:>10.2f}{r.rate:>10.2f}{r.cpu:>9.1f}"
              f"{r.cpu_rate:>13.3f}{same:>7}/{len(r.texts):<4}")
        r.same = (same, len(r.texts))  # type: ignore[attr-defined]
    words = [len(t.split()) for t in reference.values()]
    print(f"mean words per turn {sum(words) / max(len(words), 1):.0f}; peak RSS "
          f"{peak_rss_mb():.0f} MB"
          + (f"; peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
             if backend.device.type == "cuda" else ""), flush=True)
    backend.close()
    return results


def memory_run(work: Path, threads: int | None, device: str, n: int) -> None:
    """Many one-round debates with short turns on the tiny model, leased 100 at a time:
    RSS must not grow with the number of finished debates."""
    from transformers import AutoTokenizer

    model = str(build_tiny_model(work / "model-memory", size="tiny"))
    data = work / "memory.jsonl"
    write_dataset(data, AutoTokenizer.from_pretrained(model), n // 2, 300, seed=7)
    store = open_store(f"sqlite:///{work / 'memory.db'}")
    samples: list[tuple[int, float]] = []
    stop = threading.Event()
    state: dict = {"exp": None}

    def sample() -> None:
        from sqlalchemy import select

        while not stop.wait(0.5):
            if state["exp"] is None:
                with store.session() as s:
                    state["exp"] = s.scalar(select(Experiment.id).where(
                        Experiment.name == "memory"))
                continue
            samples.append((count_by_status(store, state["exp"]).get("done", 0), rss_mb()))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    cfg = parse_config({
        "name": "memory",
        "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 200},
        "both_orders": True,
        "debater": {"type": "model", "model": model, "device": device, "temperature": 0.0,
                    "max_new_tokens": 8, "max_resamples": 0, "cpu_threads": threads,
                    "prefix_cache_mb": 16},
    })
    result = run_experiment(store, cfg, work, show_progress=False, claim_size=100)
    stop.set()
    thread.join()
    samples.append((result.counts.get("done", 0), rss_mb()))
    store.dispose()
    total = samples[-1][0]
    marks = [next(((d, r) for d, r in samples if d >= total * f), samples[-1])
             for f in (0.2, 0.5, 1.0)]
    growth = marks[-1][1] - marks[0][1]
    print(f"\nmemory, {total} short debates leased 100 at a time: RSS "
          + ", ".join(f"{d} done: {r:.0f} MB" for d, r in marks)
          + f"; growth from 20% to 100% finished: {growth:+.0f} MB "
          f"({growth / max(total * 0.8, 1) * 1024:+.1f} KB per finished debate)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small workload (smoke test)")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated: tiny, 25m, 100m (default: tiny,25m; full: +100m)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU) | float32 ...")
    ap.add_argument("--attn", default=None,
                    help="attn_implementation for every arm: sdpa, flash_attention_2, eager")
    ap.add_argument("--debates", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--source-tokens", type=int, default=None)
    ap.add_argument("--turn-tokens", type=int, default=None)
    ap.add_argument("--slow-debates", type=int, default=None,
                    help="debates the static and naive arms run per rep")
    ap.add_argument("--static-batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads, all arms (0: torch's default)")
    ap.add_argument("--prefix-cache-mb", type=float, default=4096)
    ap.add_argument("--flip", action="store_true",
                    help="start with the reversed arm order (ours always runs first)")
    ap.add_argument("--arms", default="ours,continuous,static,naive",
                    help="comma-separated subset of the arms (for profiling; ratios need all)")
    ap.add_argument("--memory-debates", type=int, default=0,
                    help="also run the memory check with this many short debates (tiny model)")
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quick = args.quick
    shapes = (args.shapes or ("tiny,25m" if quick else "tiny,25m,100m")).split(",")
    w = Workload(
        debates=args.debates or (8 if quick else 32),
        rounds=args.rounds or (2 if quick else 3),
        source_tokens=args.source_tokens or (600 if quick else 2000),
        turn_tokens=args.turn_tokens or (32 if quick else 100),
        slow_debates=0,
        static_batch=args.static_batch,
        reps=args.reps or (1 if quick else 2),
        threads=args.threads if args.threads > 0 else None,
        device=args.device,
        dtype=args.dtype,
        attn=args.attn,
        prefix_cache_mb=args.prefix_cache_mb,
    )
    w.slow_debates = min(args.slow_debates or (4 if quick else 8), w.debates)
    arms = [a for a in args.arms.split(",") if a]
    if "ours" not in arms:
        arms.insert(0, "ours")  # the reference text, and the debates the slow arms replay
    work = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    ratios: dict[str, tuple[float, float]] = {}
    for index, shape in enumerate(shapes):
        res = run_shape(shape, w, work, arms, bool(index % 2) != args.flip)
        if set(arms) != {"ours", "continuous", "static", "naive"}:
            continue
        ours = res["ours"].rate
        ratios[shape] = (ours / res["naive"].rate, ours / res["continuous"].rate)
        print(f"{shape}: ours/naive {ratios[shape][0]:.2f}x, ours/static "
              f"{ours / res['static'].rate:.2f}x, ours/continuous {ratios[shape][1]:.2f}x "
              "(wall clock); by CPU time: ours/naive "
              f"{res['ours'].cpu_rate / res['naive'].cpu_rate:.2f}x, ours/continuous "
              f"{res['ours'].cpu_rate / res['continuous'].cpu_rate:.2f}x", flush=True)
    if not ratios:
        return
    if args.memory_debates:
        memory_run(work, w.threads, w.device, args.memory_debates)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    cuda = torch.cuda.is_available() and args.device != "cpu"
    target = 15.0 if cuda else 4.0
    for shape, (naive, _cont) in ratios.items():
        print(f"generation_{shape} ratio={naive:.2f} target={target:g}")
    head = WEIGHT_BOUND if WEIGHT_BOUND in ratios else shapes[-1]
    if cuda:
        pick = "own" if ratios[head][1] >= 1 else "continuous"
        print(f"implied generation: auto choice on cuda: {pick} "
              f"(ours/continuous {ratios[head][1]:.2f}x on {head})")
    print(f"generation_vs_continuous ratio={ratios[head][1]:.2f} target=1")
    print(f"generation ratio={ratios[head][0]:.2f} target={target:g}")


if __name__ == "__main__":
    main()
