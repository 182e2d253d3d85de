"""Activation capture's cost: the same model debates generated with and without capture.

    python benchmarks/probe_capture.py [--quick] [--model PATH_OR_ID] [--model-size tiny|100m]
                                       [--device auto|cpu|cuda] [--rounds N] [--threads N]

Workload (as benchmarks/generation.py): debates of the sequential protocol, each with its
own source, fixed-length turns (EOS suppressed, so both arms generate the same number of
tokens), greedy decoding, through `debate.run.run_experiment` (batching, prefix and
transcript key/value reuse) into SQLite. The capturing arm's debater has

    activations: {layers: [0.25, 0.5, 0.75, -1], positions: [generated_mean, prompt_last],
                  dtype: float16}

(4 hidden states, fewer where fractions meet on a shallow model, times 2 positions). The arms alternate (without, with, without, with, ...) for
`--rounds` rounds, each on a fresh experiment, and the medians are compared: of the
engine's own wall time (claim to last write: generation, capture and storing; model
loading not included) and of the process CPU time of the whole run (what the run itself
consumed, whatever else the machine is doing). Both arms' texts must be identical
(capture only reads).

Last line: `probe_capture ratio=<without/with time> target=0.87` (capture costs at most 15%),
from CPU time (`--clock cpu`, the default: a shared machine's load does not enter it) or
the engine's wall time (`--clock wall`, for a quiet machine or a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generation import stored_texts, write_dataset
from tiny_model import build_tiny_model

from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.config import parse_config
from debate.run import run_experiment
from debate.store import open_store
from debate.store.runs import activation_totals

CAPTURE = {"layers": [0.25, 0.5, 0.75, -1], "positions": ["generated_mean", "prompt_last"],
           "dtype": "float16"}


def run_arm(store, data: Path, name: str, model: str, device: str, rounds: int,
            turn_tokens: int, threads: int | None, capture: bool):
    debater = {"type": "model", "model": model, "device": device, "temperature": 0.0,
               "max_new_tokens": turn_tokens, "min_new_tokens": turn_tokens,
               "max_resamples": 0, "cpu_threads": threads, "max_batch_size": 64,
               "token_budget": 1 << 22, "prefix_cache_mb": 256}
    if capture:
        debater["activations"] = CAPTURE
    cfg = parse_config({
        "name": name,
        "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": "debate", "rounds": rounds, "max_words": 2000,
                     "max_quoted_words": 2000},
        "debater": debater,
    })
    return run_experiment(store, cfg, data.parent, show_progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default=None, help="hub id or local directory")
    ap.add_argument("--model-size", default="tiny", choices=["tiny", "100m"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--debates", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per arm")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (both arms)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="which median the ratio line uses")
    args = ap.parse_args()

    import torch

    debates = args.debates or (8 if args.quick else 32)
    debate_rounds = 2 if args.quick else 3
    source_tokens = 600 if args.quick else 1500
    turn_tokens = 48 if args.quick else 130
    repeats = args.rounds or (2 if args.quick else 3)
    threads = args.threads if args.threads > 0 else None

    work = Path(tempfile.mkdtemp(prefix="bench-probe-capture-"))
    model = args.model
    if model is None:
        model = str(build_tiny_model(work / f"model-{args.model_size}", size=args.model_size))
    probe = TransformersBackend(BackendSettings(model=model, device=args.device,
                                                cpu_threads=threads))
    params = sum(p.numel() for p in probe.model.parameters())
    hidden = probe.model.config.hidden_size
    data = work / "questions.jsonl"
    write_dataset(data, probe.tokenizer, debates, source_tokens, seed=1)
    print(f"model {model} ({params / 1e6:.1f}M parameters, hidden size {hidden}) on "
          f"{probe.device} {probe.dtype}; torch threads {torch.get_num_threads()}")
    print(f"workload: {debates} debates x {debate_rounds} rounds x 2 debaters, "
          f"~{source_tokens}-token sources, {turn_tokens}-token turns, greedy; "
          f"{repeats} alternating rounds per arm")
    print(f"capture: {CAPTURE}")
    probe.close()

    times: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    texts: dict[bool, dict] = {}
    totals = None
    for i in range(repeats):
        for capture in (False, True):
            store = open_store(f"sqlite:///{work / f'bench-{i}-{int(capture)}.db'}")
            c0 = time.process_time()
            result = run_arm(store, data, f"arm-{int(capture)}-{i}", model, args.device,
                             debate_rounds, turn_tokens, threads, capture)
            cpu[capture].append(time.process_time() - c0)
            assert result.counts == {"done": debates}, result.counts
            times[capture].append(result.stats.seconds)
            texts[capture] = stored_texts(store, result.experiment_id)
            if capture:
                totals = activation_totals(store, result.experiment_id)
            store.dispose()
            print(f"  round {i + 1} {'with' if capture else 'without'} capture: "
                  f"{result.stats.seconds:.2f} s wall, {cpu[capture][-1]:.2f} s CPU "
                  f"({result.stats.turns} turns)")
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    cpu_without, cpu_with = statistics.median(cpu[False]), statistics.median(cpu[True])
    same = sum(1 for k, v in texts[False].items() if texts[True].get(k) == v)
    assert totals is not None
    print(f"median engine wall time: without capture {without:.2f} s, with capture "
          f"{with_:.2f} s (overhead {100 * (with_ / without - 1):+.1f}%)")
    print(f"median CPU time: without capture {cpu_without:.2f} s, with capture {cpu_with:.2f} s "
          f"(overhead {100 * (cpu_with / cpu_without - 1):+.1f}%)")
    print(f"same text in both arms: {same}/{len(texts[False])}")
    print(f"stored: {totals.vectors} vectors for {totals.turns} turns, "
          f"{totals.bytes / 2**20:.2f} MiB, {totals.bytes_per_turn:,.0f} bytes per turn "
          f"({totals.vectors // max(totals.turns, 1)} float16 vectors of {hidden} values)")
    ratio = cpu_without / cpu_with if args.clock == "cpu" else without / with_
    print(f"probe_capture ratio={ratio:.3f} target=0.87")


if __name__ == "__main__":
    main()
