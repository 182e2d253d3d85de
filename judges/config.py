"""Model judge configs (YAML), validated; errors name the file and the field.

    name: qwen-logprob          # optional; names the judge in the store
    type: logprob               # logprob: one forward pass, P(A), P(B)
                                # text: reasons, then "Answer: X"; majority vote over samples
    model: Qwen/Qwen2.5-0.5B-Instruct
    backend: transformers       # or openai (+ base_url, api_key_env ...)
    both_orders: true           # judge each debate in both answer orders; record position bias
    stepped: false              # also judge after every round
    samples: 1                  # text judge: samples per order, majority vote
    temperature: 0.0            # text judge sampling (> 0 when samples > 1)
    max_new_tokens: 256         # text judge
    templates: my_judge_templates/   # optional: replaces built-in judge template files
    context_policy: truncate_source  # a prompt past the model's context: cut the source an
                                # expert judge is shown (marked) | refuse; a transcript too
                                # long stops the run with one line either way
    max_context: null           # transformers: tokens a prompt + reply may take (default: the
                                # model's max_position_embeddings)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from debate.backends.settings import BackendSettings
from debate.config import read_yaml
from debate.validation import validate_mapping


class JudgeConfig(BackendSettings):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str | None = None
    type: Literal["logprob", "text"] = "logprob"
    both_orders: bool = True
    stepped: bool = False
    samples: int = Field(default=1, ge=1, le=64)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=256, ge=1)
    min_new_tokens: int = Field(default=0, ge=0)  # benchmarks: fixed-length reasoning
    templates: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> JudgeConfig:
        if self.samples > 1 and self.type != "text":
            raise ValueError("samples > 1 is for text judges (a logprob judge is deterministic)")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (greedy samples are identical)")
        return self

    @property
    def display_name(self) -> str:
        return self.name or f"{self.type}-judge:{self.model}"

    def backend_settings(self) -> BackendSettings:
        return BackendSettings(**{k: getattr(self, k) for k in BackendSettings.model_fields})


def parse_judge_config(data: Any, source: str = "judge") -> JudgeConfig:
    return validate_mapping(JudgeConfig, data, source, "a mapping of judge settings")


def load_judge_file(path: str | Path) -> dict[str, Any]:
    """The judge settings in a YAML file, as a mapping (validated by parse_judge_config)."""
    path = Path(path)
    data = read_yaml(path, f"--judge: no such file {path}")
    parse_judge_config(data, str(path))
    return data
