"""Model judges: the log-probability judge vs a generate-then-parse judge, same transcripts.

    python benchmarks/judges.py [--quick] [--model PATH_OR_ID] [--device auto|cpu|cuda]
                                [--reasoning-tokens N] [--repeats N] [--threads N]

The transcripts are the bundled sample questions debated by scripted debaters (both answer
orders, 3 rounds), stored in a fresh SQLite file. Each judge then judges every debate
once (final judgment, shown order only) through `judges.run.judge_experiment`, which
is what `debate judge` does, storing included (model loading is not timed):

- logprob: one forward pass per prompt (unpadded on CPU), P(A) and P(B) after "Answer:";
- text: the judge writes up to N reasoning tokens (default 256, the text judge's default),
  then its verdict is parsed from "Answer: X" (batched generation, same backend).

Without --model the test model is built offline (tests/tiny_model.py); its text verdicts
do not parse (it is random), which does not change the work done. A random model would
stop at a random end-of-text token, so the text judge's reasoning is held at exactly N
tokens (min_new_tokens), as a real judge's reasoning would run.
The arms alternate (logprob, text, logprob, text, ...) for --repeats rounds, each round
under fresh judge names so it does all the work again; each arm's rate is its median over
the rounds, which keeps a slow moment of a shared machine from deciding the ratio.
Last line: `judges ratio=<median logprob / median text judgments per second> target=5`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_model import build_tiny_model

from debate.config import parse_config
from debate.run import run_experiment
from debate.store import open_store
from judges.config import parse_judge_config
from judges.run import build_judge, judge_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reasoning-tokens", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads, both arms (default 0: torch's default, all "
                         "cores, which is what `debate judge` uses unless cpu_threads is set)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="rounds of both arms (default 5; --quick 1)")
    args = ap.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one load per arm and round; keep the table readable
    work = Path(tempfile.mkdtemp(prefix="bench-judges-"))
    model = args.model
    if model is None:
        model = str(build_tiny_model(work / "model"))
    questions = 6 if args.quick else 20
    reasoning = args.reasoning_tokens or (128 if args.quick else 256)
    store = open_store(f"sqlite:///{work / 'bench.db'}")
    run_experiment(store, parse_config({
        "name": "transcripts",
        "dataset": {"name": "sample", "limit": questions},
        "protocol": {"name": "debate", "rounds": 3},
        "both_orders": True,
        "debater": {"type": "scripted"},
    }), work, show_progress=False)
    repeats = args.repeats or (1 if args.quick else 5)
    common = {"model": model, "device": args.device, "both_orders": False,
              "cpu_threads": args.threads if args.threads > 0 else None}
    arms = [
        ("logprob (one forward pass)", {**common, "type": "logprob", "name": "lp"}),
        (f"text ({reasoning} tokens, then parse)",
         {**common, "type": "text", "name": "text", "max_new_tokens": reasoning,
          "min_new_tokens": reasoning}),
    ]
    rates: dict[str, list[float]] = {label: [] for label, _ in arms}
    print(f"model {model}; {2 * questions} debates of 3 rounds (scripted transcripts); "
          f"{repeats} rounds of both arms")
    print(f"{'round':<7}{'judge':<34}{'judgments':>10}{'seconds':>10}{'per second':>12}"
          f"{'unknown':>9}")
    for rnd in range(1, repeats + 1):
        for label, base in arms:
            cfg = {**base, "name": f"{base['name']}-{rnd}"}  # a new judge: all the work again
            judge = build_judge(parse_judge_config(cfg), work)  # loading is not timed
            t0 = time.perf_counter()
            summary = judge_experiment(store, "transcripts", cfg, judge=judge)
            seconds = time.perf_counter() - t0
            n = summary["judgments_written"]
            rates[label].append(n / seconds)
            print(f"{rnd:<7}{label:<34}{n:>10}{seconds:>10.2f}{n / seconds:>12.2f}"
                  f"{summary['unknown']:>9}", flush=True)
    medians = [statistics.median(rates[label]) for label, _ in arms]
    for (label, _), med in zip(arms, medians):
        print(f"median  {label:<34}{med:>32.2f}")
    print("(each arm timed from prompts to stored judgments; model loading not timed; "
          f"{torch.get_num_threads()} torch threads)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    store.dispose()
    print(f"judges ratio={medians[0] / medians[1]:.2f} target=5")


if __name__ == "__main__":
    main()
