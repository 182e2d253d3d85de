"""`debate train dpo`: Direct Preference Optimisation of a debater with TRL (+ PEFT LoRA).

    CKPT/
      checkpoints/checkpoint-N/   the trainer's checkpoints (weights, optimiser, scheduler,
                                  data order): a killed run resumes from the last one
      run.json                    what this training is (base model, data, settings); a
                                  rerun with other data or settings is refused
      config.json, model.safetensors, tokenizer files   the trained model (merged weights), or
      adapter_config.json, adapter_model.safetensors    a LoRA adapter (merge_lora: false),
                                  which transformers loads on top of its base model
      training.json               written last: settings, data manifest, steps, losses, times

The base model is loaded through the transformers backend's own loader (a hub id or a
local directory), and the result loads back as a `type: model` debater with
`model: CKPT` through that same path.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from debate.backends.loading import load_pretrained, pick_device
from debate.backends.settings import BackendSettings
from debate.errors import ConfigError, UserError
from debate.training.pairs_io import read_manifest, read_pairs
from debate.training.settings import DPOSettings

DONE_FILE = "training.json"
RUN_FILE = "run.json"


@dataclass
class TrainResult:
    out: Path
    steps: int
    resumed_from: str | None
    already_done: bool
    losses: list[tuple[int, float]]
    seconds: float
    seconds_per_step: float | None
    merged: bool
    adapter: bool


def _resolve_model(model: str) -> str:
    p = Path(model).expanduser()
    return str(p.resolve()) if p.is_dir() else model


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete trainer checkpoint under CKPT/checkpoints (None if none)."""
    root = ckpt_dir / "checkpoints"
    if not root.is_dir():
        return None
    found = []
    for p in root.glob("checkpoint-*"):
        suffix = p.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (p / "trainer_state.json").is_file():
            found.append((int(suffix), p))
    return max(found)[1] if found else None


def _precision(settings: DPOSettings, device: torch.device) -> dict[str, bool]:
    if device.type != "cuda":
        if settings.precision in ("bfloat16", "float16"):
            raise UserError(f"precision: {settings.precision} training needs a CUDA GPU here "
                            "(use float32 or auto on a CPU)")
        return {"bf16": False, "fp16": False}
    p = settings.precision
    if p == "auto":
        p = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return {"bf16": p == "bfloat16", "fp16": p == "float16"}


def _check_run(out: Path, run: dict[str, Any]) -> None:
    """A rerun must be the same training: same base model, data and settings."""
    path = out / RUN_FILE
    if not path.is_file():
        return
    before = json.loads(path.read_text())
    for key in ("model", "data_sha", "settings_fingerprint", "lora"):
        if before.get(key) != run.get(key):
            raise UserError(
                f"--out: {out} holds a training with another {key.replace('_', ' ')} "
                f"({before.get(key)!r}, now {run.get(key)!r}); choose a new --out")


def _data_sha(data_dir: Path) -> str:
    return hashlib.sha256((data_dir / "pairs.jsonl").read_bytes()).hexdigest()[:16]


def train_dpo(
    data_dir: str | Path,
    model: str,
    out: str | Path,
    settings: DPOSettings,
    *,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
    stop_after_steps: int | None = None,
) -> TrainResult:
    """Train `model` with DPO on the pairs in `data_dir`; write the result to `out`.

    Resumes from the last checkpoint under `out` when there is one; returns at once when
    `out` already holds a finished training of the same model, data and settings.
    `stop_after_steps` stops after that global step as if the run were killed there (its
    checkpoints are kept, the final model is not written): for tests of resumption."""
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    data_dir, out = Path(data_dir), Path(out)
    manifest = read_manifest(data_dir)
    rows = read_pairs(data_dir)
    train_rows, eval_rows = split_pairs(rows, settings.eval_fraction, settings.seed)
    model = _resolve_model(model)
    run = {"model": model, "data": str(data_dir.resolve()), "data_sha": _data_sha(data_dir),
           "settings_fingerprint": settings.fingerprint(), "lora": settings.lora is not None}
    _check_run(out, run)
    if (out / DONE_FILE).is_file():
        done = json.loads((out / DONE_FILE).read_text())
        return TrainResult(out, done["steps"], None, True,
                           [tuple(x) for x in done.get("losses", [])], 0.0,
                           done.get("seconds_per_step"), done.get("merged", False),
                           done.get("adapter", False))
    try:
        device, _ = pick_device(settings.device, "float32", "dpo")
    except ConfigError as exc:
        raise ConfigError(str(exc).removeprefix("dpo.")) from None  # "device: ..."
    precision = _precision(settings, device)
    if device.type == "cpu" and settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    backend = BackendSettings(model=model, device=str(device), dtype="float32")
    tok, policy = _load(backend, device)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    too_long = _prompts_too_long(tok, rows, settings.max_length)
    if too_long == len(rows):
        raise UserError(f"max_length: every pair's prompt is {settings.max_length} tokens or "
                        "longer, so no completion token would be trained on; raise max_length")
    if too_long and log:
        log(f"{too_long} of {len(rows)} pairs have a prompt of max_length "
            f"({settings.max_length}) tokens or more and are left out by the trainer")
    ref = None
    peft_config = None
    if settings.lora is None:
        _, ref = _load(backend, device)
    else:
        from peft import LoraConfig

        lora = settings.lora
        peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=lora.target_modules, task_type="CAUSAL_LM")
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    policy.train()

    args = DPOConfig(
        output_dir=str(out / "checkpoints"),
        beta=settings.beta,
        loss_type=[settings.loss_type],
        label_smoothing=settings.label_smoothing,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=settings.weight_decay,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        gradient_checkpointing=settings.gradient_checkpointing,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to="none",
        disable_tqdm=not show_progress,
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        **precision,
    )
    losses: list[tuple[int, float]] = []

    class _Record(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kw):
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))
                if log:
                    extra = "".join(
                        f", {name} {logs[key]:.3f}" for key, name in (
                            ("rewards/accuracies", "reward accuracy"),
                            ("rewards/margins", "reward margin")) if key in logs)
                    log(f"step {state.global_step}: loss {logs['loss']:.4f}{extra}")

        def on_step_end(self, _args, state, control, **_kw):
            if stop_after_steps is not None and state.global_step >= stop_after_steps:
                control.should_save = True
                control.should_training_stop = True

    class _BarOnly(ProgressCallback):
        def on_log(self, *_args, **_kw):
            return None

    trainer = DPOTrainer(
        model=policy,
        ref_model=ref,
        args=args,
        train_dataset=Dataset.from_list(_trl(train_rows)),
        eval_dataset=Dataset.from_list(_trl(eval_rows)) if eval_rows else None,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[_Record()],
    )
    if not show_progress:
        trainer.remove_callback(PrinterCallback)  # no raw log dicts when quiet
    else:
        # the bar alone: the log lines are ours (_Record), not the raw dicts
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_BarOnly)
    resume = last_checkpoint(out)
    if resume is not None and log:
        log(f"resuming from {resume}")
    started = time.perf_counter()
    start_step = 0
    if resume is not None:
        start_step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    if stop_after_steps is not None and steps < trainer.state.max_steps:
        return TrainResult(out, steps, str(resume) if resume else None, False, losses,
                           seconds, None, False, False)
    ran = steps - start_step
    evaluation = None
    if eval_rows:
        evaluation = {k: v for k, v in trainer.evaluate().items()
                      if k in ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins")}
        if log:
            log(f"held-out pairs ({len(eval_rows)}): " + ", ".join(
                f"{k.removeprefix('eval_')} {v:.4f}" for k, v in evaluation.items()))
    merged, adapter = _save_final(trainer, tok, out, settings)
    done = {
        "base_model": model,
        "data": run["data"],
        "data_sha": run["data_sha"],
        "rule": manifest.get("rule_text"),
        "experiments": manifest.get("experiments"),
        "pairs": len(rows),
        "train_pairs": len(train_rows),
        "held_out_pairs": len(eval_rows),
        "held_out": evaluation,
        "pairs_left_out_prompt_too_long": too_long,
        "settings": settings.model_dump(mode="json"),
        "steps": steps,
        "resumed_from": str(resume) if resume else None,
        "losses": losses,
        "log_history": trainer.state.log_history,
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / ran, 4) if ran > 0 else None,
        "device": str(device),
        "merged": merged,
        "adapter": adapter,
        "reference": "the base model (LoRA: adapters disabled)",
    }
    (out / DONE_FILE).write_text(json.dumps(done, indent=2, default=_jsonable) + "\n")
    del trainer, policy, ref
    return TrainResult(out, steps, str(resume) if resume else None, False, losses, seconds,
                       done["seconds_per_step"], merged, adapter)


def split_pairs(rows: list[dict[str, str]], fraction: float,
                seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, held out): whole debates held out, chosen by a seeded hash of the debate."""
    if fraction <= 0:
        return rows, []
    groups = sorted({r["group"] for r in rows},
                    key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    n_out = round(len(groups) * fraction)
    if n_out < 1 or n_out >= len(groups):
        raise UserError(f"eval_fraction: {fraction} of {len(groups)} debates leaves no "
                        "held-out or no training debate")
    held = set(groups[:n_out])
    return ([r for r in rows if r["group"] not in held], [r for r in rows if r["group"] in held])


def _trl(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]


def _prompts_too_long(tok, rows: list[dict[str, str]], max_length: int | None) -> int:
    if max_length is None:
        return 0
    return sum(len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) >= max_length
               for r in rows)


def _load(backend: BackendSettings, device: torch.device):
    """Tokenizer and model through the transformers backend's loader; errors name --model."""
    try:
        return load_pretrained(backend, "model", device, torch.float32)
    except ConfigError as exc:
        raise ConfigError("--model" + str(exc).removeprefix("model.model")) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _save_final(trainer, tok, out: Path, settings: DPOSettings) -> tuple[bool, bool]:
    """Write the trained model (merged weights or the adapter) and tokenizer into `out`,
    through a temporary folder so a crash leaves the last checkpoint, not half a model."""
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    merged = adapter = False
    if settings.lora is not None and settings.merge_lora:
        model = model.merge_and_unload()
        merged = True
    elif settings.lora is not None:
        adapter = True
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    for f in tmp.iterdir():
        target = out / f.name
        if target.is_dir():
            shutil.rmtree(target)
        f.replace(target)
    tmp.rmdir()
    return merged, adapter
