"""DPO training of a ~100M-parameter debater, built offline: time per step, full weights
and LoRA side by side (the GPU check of the training issue).

    python benchmarks/train_gpu.py                      # GPU: ~100M model, 300 steps each arm
    python benchmarks/train_gpu.py --quick              # CPU smoke test: tiny model, 2 steps
    python benchmarks/train_gpu.py --steps 500 --batch-size 16 --out /tmp/train-gpu

What it does, all offline:
1. builds the ~100M model of tests/tiny_model.py (Qwen2 architecture, 8 layers of 1024,
   random weights, a byte-level BPE tokenizer trained on the spot), saved with
   save_pretrained and loaded back through the transformers backend like a hub id;
2. runs best-of-2 self-play debates with it on the bundled sample questions (both answer
   orders) and turns the stored candidates into preference pairs (`debate train data`);
3. trains it with DPO (`debate train dpo`) for --steps steps on full weights, then the
   same steps with a LoRA adapter (r 16), each from the base model;
4. measures the DPO loss on (up to 64 of) the training pairs before and after, with the
   project's own loss (debate.training.loss), not the trainer's.

Prints seconds per step (the mean over all steps of the trainer's loop, model loading
excluded; the first steps' warm-up is inside it, so use a few hundred steps), pairs per
second, peak GPU memory, and the losses. Last line:
`train_gpu ratio=<DPO loss before / after, full weights> target=1` (above 1: training
lowered the loss on its pairs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from tiny_model import build_tiny_model

from debate.config import parse_config
from debate.run import run_experiment
from debate.store import open_store
from debate.training.dpo import train_dpo
from debate.training.loss import dpo_loss
from debate.training.pairs_io import read_pairs, write_preference_dir
from debate.training.preferences import SelectionRule, build_preference_data
from debate.training.settings import DPOSettings, LoraSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, 2 steps (CPU smoke test)")
    ap.add_argument("--model-size", choices=["tiny", "100m"], default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--questions", type=int, default=None, help="sample questions (x2 orders)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="debate rounds of the self-play (default 2; --quick 1)")
    ap.add_argument("--learning-rate", type=float, default=1e-5)
    ap.add_argument("--no-lora", action="store_true", help="full weights only")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()
    size = args.model_size or ("tiny" if args.quick else "100m")
    steps = args.steps or (2 if args.quick else 300)
    questions = args.questions or (2 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 2)

    import torch

    cuda = torch.cuda.is_available()
    out = args.out or Path(tempfile.mkdtemp(prefix="train-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'CPU'}; torch {torch.__version__}; "
          f"work folder {out}")

    model_dir = out / f"model-{size}"
    if not (model_dir / "config.json").is_file():
        build_tiny_model(model_dir, size=size)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(model_dir))
    params = _param_count(model_dir)
    print(f"model: {size} ({params / 1e6:.1f}M parameters, {cfg.num_hidden_layers} layers of "
          f"{cfg.hidden_size})")

    # 1. self-play with two candidates per speech -> preference pairs
    store = open_store(f"sqlite:///{out / 'store.db'}")
    exp = parse_config({
        "name": f"selfplay-{size}",
        "dataset": {"name": "sample", "limit": questions},
        "protocol": {"name": "debate", "rounds": rounds, "max_words": 60},
        "both_orders": True,
        "debater": {"type": "model", "model": str(model_dir), "best_of": 2, "temperature": 1.0,
                    "max_new_tokens": 96, **({} if cuda else {"cpu_threads": 2})},
    })
    t0 = time.perf_counter()
    run_experiment(store, exp, out, show_progress=False)
    selfplay_s = time.perf_counter() - t0
    data = build_preference_data(store, [exp.name], SelectionRule(
        sources=["candidates"], chosen_must_be_clean=False))
    data_dir = write_preference_dir(data, out / "pairs", force=True)
    rows = read_pairs(data_dir)
    print(f"self-play: {selfplay_s:.1f}s; {len(rows)} preference pairs "
          f"({json.dumps(data.summary()['by_source'])})")

    base = {"max_steps": steps, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "logging_steps": max(1, steps // 10),
            "save_steps": max(steps, 1), "max_length": 2048,
            **({} if cuda else {"cpu_threads": 2})}
    arms = [("full", DPOSettings(**base))]
    if not args.no_lora:
        # LoRA is usually trained at a higher learning rate than full weights
        lora_lr = min(args.learning_rate * 20, 1e-3)
        arms.append(("lora", DPOSettings(**{**base, "learning_rate": lora_lr},
                                         lora=LoraSettings(r=16, alpha=32))))
    results = {}
    for name, settings in arms:
        ckpt = out / f"ckpt-{name}"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        r = train_dpo(data_dir, str(model_dir), ckpt, settings, show_progress=False)
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        per_step = r.seconds_per_step or float("nan")
        results[name] = {"steps": r.steps, "s_per_step": per_step, "wall_s": wall,
                         "pairs_per_s": settings.batch_size / per_step, "peak_gib": peak,
                         "last_loss": r.losses[-1][1] if r.losses else None}
        print(f"{name:5s}: {r.steps} steps, {per_step:.3f} s/step "
              f"({settings.batch_size / per_step:.1f} pairs/s), wall {wall:.1f}s incl. loading, "
              f"peak GPU memory {peak:.2f} GiB, last logged loss {results[name]['last_loss']}")

    # 2. the DPO loss on the training pairs, before and after (full weights)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if cuda else "cpu"
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ref = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).to(device)
    trained = AutoModelForCausalLM.from_pretrained(str(out / "ckpt-full"),
                                                   dtype=torch.float32).to(device)
    subset = rows[:64]
    before = dpo_loss(ref, ref, tok, subset, beta=0.1)
    after = dpo_loss(trained, ref, tok, subset, beta=0.1)
    print(f"DPO loss on {len(subset)} training pairs: before {before.loss:.4f}, after "
          f"{after.loss:.4f} (reward accuracy {after.accuracy:.2f}, margin {after.margin:.3f})")
    if "lora" in results:
        print(f"LoRA / full time per step: "
              f"{results['lora']['s_per_step'] / results['full']['s_per_step']:.2f}")
    (out / "train_gpu.json").write_text(json.dumps({
        "device": torch.cuda.get_device_name(0) if cuda else "cpu", "model": size,
        "parameters": params, "pairs": len(rows), "selfplay_s": selfplay_s, "arms": results,
        "loss_before": before.loss, "loss_after": after.loss}, indent=2, default=str) + "\n")
    ratio = before.loss / after.loss if after.loss > 0 else math.inf
    print(f"train_gpu ratio={ratio:.3f} target=1")


def _param_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():
                total += math.prod(fh.get_slice(k).get_shape())
    return total


if __name__ == "__main__":
    main()
