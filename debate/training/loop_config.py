"""The self-play loop's config (`debate train loop CONFIG`): YAML validated into typed
models; errors name the file and the field. The fields are described in
debate/training/loop.py and examples/selfplay-loop.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from debate.config import ProtocolSettings, read_yaml
from debate.errors import ConfigError
from debate.training.preferences import SelectionRule
from debate.training.settings import DPOSettings, LoraSettings, parse_dpo_settings
from debate.validation import validate_mapping


class TrainableProtocol(ProtocolSettings):
    """A protocol with a debater or consultant to train, answering on its own."""

    @model_validator(mode="after")
    def _trainable(self) -> TrainableProtocol:
        proto = self.build()
        if proto.family not in ("debate", "consultancy"):
            raise ValueError(f"{self.name} has no debater to train (debate or consultancy "
                             "protocols)")
        if proto.interactive:
            raise ValueError(f"{self.name}: interactive protocols are not trained by the loop")
        return self


class LoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=150)
    rounds: int = Field(ge=1, le=50)
    seed: int = 0
    dataset: dict[str, Any]
    # held-out questions on which every round is measured (none: the training questions)
    eval_dataset: dict[str, Any] | None = None
    both_orders: bool = True
    protocols: list[TrainableProtocol] = Field(min_length=1)
    debater: dict[str, Any]
    judge: dict[str, Any]
    data: SelectionRule = Field(default_factory=SelectionRule)
    dpo: dict[str, Any] | str = Field(default_factory=dict)  # settings, or a YAML file
    lora: bool = False
    cross_play: bool = True
    strength_bootstrap: int = Field(default=200, ge=0)  # replicates for the strength curve
    out: str | None = None

    @field_validator("protocols", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": p} if isinstance(p, str) else p for p in v]
        return v

    @field_validator("protocols")
    @classmethod
    def _once_each(cls, v: list[TrainableProtocol]) -> list[TrainableProtocol]:
        names = [p.name for p in v]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise ValueError(f"{twice} appears twice (one track per protocol)")
        return v

    @field_validator("debater")
    @classmethod
    def _model_debater(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type") != "model":
            raise ValueError("type: the loop trains a `type: model` debater")
        if v.get("backend", "transformers") != "transformers":
            raise ValueError("backend: training needs the weights (backend: transformers)")
        if "name" in v:
            raise ValueError("name: the loop names each round's debater itself")
        return v


def parse_loop_config(data: Any, source: str = "loop config",
                      config_dir: Path | None = None) -> tuple[LoopConfig, DPOSettings]:
    cfg = validate_mapping(LoopConfig, data, source)
    if isinstance(cfg.dpo, str):
        p = Path(cfg.dpo)
        p = p if p.is_absolute() else (config_dir or Path.cwd()) / p
        dpo = parse_dpo_settings(read_yaml(p, f"{source}: dpo: no such file {p}"), str(p))
    else:
        dpo = parse_dpo_settings(cfg.dpo, f"{source}: dpo")
    if cfg.lora and dpo.lora is None:
        dpo = dpo.model_copy(update={"lora": LoraSettings()})
    sources = cfg.data.sources
    if sources == ["candidates"] and int(cfg.debater.get("best_of", 1)) < 2:
        raise ConfigError(f"{source}: debater.best_of: needs >= 2 candidates per turn to make "
                          "preference pairs from candidates")
    return cfg, dpo


def load_loop_config(path: str | Path) -> tuple[LoopConfig, DPOSettings]:
    path = Path(path)
    return parse_loop_config(read_yaml(path, f"{path}: no such file"), str(path),
                             path.resolve().parent)
