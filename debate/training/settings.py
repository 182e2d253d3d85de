"""DPO training settings: a YAML file validated into typed models; errors name the field.

    # dpo.yaml (every field optional; these are the defaults)
    beta: 0.1                   # strength of the pull towards the reference model
    loss_type: sigmoid          # sigmoid (DPO) | ipo | hinge | robust
    label_smoothing: 0.0        # robust DPO: probability a preference label is flipped
    learning_rate: 5.0e-6
    lr_scheduler: linear        # linear | cosine | constant | constant_with_warmup
    warmup_ratio: 0.0
    weight_decay: 0.0
    epochs: 1.0
    max_steps: null             # a number overrides epochs
    batch_size: 4               # pairs per device per step
    gradient_accumulation_steps: 1
    max_length: 2048            # tokens of prompt + completion; longer pairs are cut
                                # (pairs whose prompt alone fills it are dropped by TRL)
    gradient_checkpointing: false
    precision: auto             # auto (bf16 on a CUDA GPU that has it, else fp32) | float32
                                # | bfloat16 | float16
    device: auto                # auto | cpu | cuda
    cpu_threads: null
    seed: 0
    eval_fraction: 0.0          # pairs held out by debate, evaluated after training
    logging_steps: 10
    save_steps: 50              # checkpoints (resumable) every N steps, and at the end
    save_total_limit: 2
    lora: null                  # or {r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}
    merge_lora: true            # LoRA: write merged weights (false: the adapter alone)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from debate.config import read_yaml
from debate.validation import validate_mapping


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=16, ge=1, le=1024)
    alpha: float = Field(default=32.0, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class DPOSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beta: float = Field(default=0.1, gt=0)
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5)
    learning_rate: float = Field(default=5e-6, gt=0, le=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_length: int | None = Field(default=2048, ge=16)
    gradient_checkpointing: bool = False
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int | None = Field(default=None, ge=1)
    seed: int = 0
    # share of the pairs held out (whole debates, by debate id) to evaluate at the end
    eval_fraction: float = Field(default=0.0, ge=0, lt=1)
    logging_steps: int = Field(default=10, ge=1)
    save_steps: int = Field(default=50, ge=1)
    save_total_limit: int | None = Field(default=2, ge=1)
    lora: LoraSettings | None = None
    merge_lora: bool = True

    @model_validator(mode="after")
    def _label_smoothing_needs_robust(self) -> DPOSettings:
        if self.label_smoothing and self.loss_type != "robust":
            raise ValueError("label_smoothing: only used by loss_type robust")
        return self

    def fingerprint(self) -> str:
        """What decides the trained weights (not logging or checkpoint cadence)."""
        skip = {"logging_steps", "save_steps", "save_total_limit", "cpu_threads", "device"}
        blob = json.dumps(self.model_dump(mode="json", exclude=skip), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_dpo_settings(data: Any, source: str = "dpo settings") -> DPOSettings:
    if data is None:
        data = {}
    return validate_mapping(DPOSettings, data, source, "a mapping of DPO settings")


def load_dpo_settings(path: str | Path | None) -> DPOSettings:
    if path is None:
        return DPOSettings()
    path = Path(path)
    return parse_dpo_settings(read_yaml(path, f"--config: no such file {path}"), str(path))
