"""Model judges: the log-probability judge vs a generate-then-parse judge, same transcripts.

    python benchmarks/judges.py [--quick] [--model PATH_OR_ID] [--device auto|cpu|cuda]
                                [--reasoning-tokens N]

The transcripts are the bundled sample questions debated by scripted debaters (both answer
orders, 3 rounds), stored in a fresh SQLite file. Each judge then judges every debate
once (final judgment, shown order only) through `judges.run.judge_experiment`, which
is what `debate judge` does, storing included (model loading is not timed):

- logprob: one batched forward pass per prompt, P(A) and P(B) after "Answer:";
- text: the judge writes up to N reasoning tokens (default 256, the text judge's default),
  then its verdict is parsed from "Answer: X" (batched generation, same backend).

Without --model the test model is built offline (tests/tiny_model.py); its text verdicts
do not parse (it is random), which does not change the work done. A random model would
stop at a random end-of-text token, so the text judge's reasoning is held at exactly N
tokens (min_new_tokens), as a real judge's reasoning would run.
Last line: `judges ratio=<logprob/text judgments per second> target=5`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reasoning-tokens", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (both arms)")
    args = ap.parse_args()

    from debate.config import parse_config
    from debate.run import run_experiment
    from debate.store import open_store
    from judges.config import parse_judge_config
    from judges.run import build_judge, judge_experiment

    work = Path(tempfile.mkdtemp(prefix="bench-judges-"))
    model = args.model
    if model is None:
        from tiny_model import build_tiny_model

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
    common = {"model": model, "device": args.device, "both_orders": False,
              "cpu_threads": args.threads if args.threads > 0 else None}
    arms = [
        ("logprob (one forward pass)", {**common, "type": "logprob", "name": "lp"}),
        (f"text ({reasoning} tokens, then parse)",
         {**common, "type": "text", "name": "text", "max_new_tokens": reasoning,
          "min_new_tokens": reasoning}),
    ]
    rates = []
    print(f"model {model}; {2 * questions} debates of 3 rounds (scripted transcripts)")
    print(f"{'judge':<34}{'judgments':>10}{'seconds':>10}{'per second':>12}{'unknown':>9}")
    for label, cfg in arms:
        judge = build_judge(parse_judge_config(cfg), work)  # loading is not timed
        t0 = time.perf_counter()
        summary = judge_experiment(store, "transcripts", cfg, judge=judge)
        seconds = time.perf_counter() - t0
        n = summary["judgments_written"]
        rates.append(n / seconds)
        print(f"{label:<34}{n:>10}{seconds:>10.2f}{n / seconds:>12.2f}{summary['unknown']:>9}")
    print("(each arm timed from prompts to stored judgments; model loading not timed)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    store.dispose()
    print(f"judges ratio={rates[0] / rates[1]:.2f} target=5")
    os._exit(0)


if __name__ == "__main__":
    main()
