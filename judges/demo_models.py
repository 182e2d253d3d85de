"""The demo's `models` section: model debaters and a model judge, when a model can be
loaded. It lives in judges/ (above debate) because it judges; `debate.demo.SECTIONS`
names it.

The model is $DEBATE_DEMO_MODEL (a hub id or a local directory), else
Qwen/Qwen2.5-0.5B-Instruct. It is looked up in the local Hugging Face cache only (the demo
never waits on the network); where it is not there, the section says so in one line and
returns. Otherwise it runs a short debate on four sample questions and judges it with a
log-probability judge on the same model. Rerunning reuses both (nothing is redone).
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from debate.config import parse_config
from debate.errors import UserError
from debate.run import run_experiment
from debate.store.db import Store
from judges.run import judge_experiment

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
EXPERIMENT = "demo-model-debate"


def local_model(model: str) -> tuple[str | None, str]:
    """(a local directory holding `model`, or None; why not)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), ""
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(model, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not cached here
        return None, type(exc).__name__
    if not any(Path(snapshot).glob("*.safetensors")) and not any(Path(snapshot).glob("*.bin")):
        return None, "no weights in the cached snapshot"
    return snapshot, ""


def run(store: Store, console: Console) -> None:
    model = os.environ.get("DEBATE_DEMO_MODEL") or DEFAULT_MODEL
    local, why = local_model(model)
    if local is None:
        console.print(
            f"[yellow]model debaters:[/] skipped: {model} is not in the local Hugging Face "
            f"cache ({why}); set DEBATE_DEMO_MODEL to a model directory or cached hub id",
            soft_wrap=True,
        )
        return
    cfg = parse_config({
        "name": EXPERIMENT,
        "description": f"model debaters ({model}) on four sample questions",
        "dataset": {"name": "sample", "limit": 4},
        "protocol": {"name": "debate", "rounds": 2, "max_words": 80},
        "debater": {"type": "model", "name": f"demo:{model}", "model": local,
                    "temperature": 0.7, "max_resamples": 1},
    }, "demo")
    console.print(f"[bold]model debaters[/]: {model}, 4 questions, 2 rounds (batched)...")
    try:
        result = run_experiment(store, cfg, Path.cwd(), show_progress=False)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items()))
        console.print(f"  {EXPERIMENT}: {result.stats.turns} turns written in "
                      f"{result.stats.seconds:.1f}s; debates: {counts}")
        summary = judge_experiment(store, EXPERIMENT, {
            "name": f"demo-logprob-judge:{model}", "type": "logprob", "model": local,
            "both_orders": True})
    except UserError as exc:
        console.print(f"[yellow]model debaters:[/] skipped: {exc}", soft_wrap=True)
        return
    acc = summary["accuracy"]
    bias = summary["position_bias"]
    console.print(
        f"  log-prob judge: {summary['final_judgments']} debates judged in both answer orders; "
        f"accuracy {'-' if acc is None else f'{acc:.2f}'}, position bias "
        f"{'-' if bias is None else f'{bias:+.2f}'}"
    )
    console.print(f"  next: [bold]debate show {EXPERIMENT}[/] or `debate serve` (Browse tab)")
