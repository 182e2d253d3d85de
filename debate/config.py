"""Experiment configs: YAML validated into typed models. Errors name the file and field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from debate.agents.registry import check_spec_word_limit
from debate.errors import ConfigError
from debate.protocols import BUILTIN, Protocol, get_protocol
from debate.validation import validate_mapping

AGENT_FIELDS = ("debater", "honest_debater", "deceptive_debater", "interactive_judge")


class ProtocolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    rounds: int | None = Field(default=None, ge=0, le=50)
    simultaneous: bool | None = None
    min_words: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=1)
    max_quoted_words: int | None = Field(default=None, ge=0)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in BUILTIN:
            raise ValueError(f"unknown protocol {v!r}; known: {', '.join(sorted(BUILTIN))}")
        return v

    def build(self) -> Protocol:
        overrides: dict[str, Any] = {}
        if self.rounds is not None:
            overrides["rounds"] = self.rounds
        if self.simultaneous is not None:
            overrides["simultaneous"] = self.simultaneous
        limits = {
            k: getattr(self, k)
            for k in ("min_words", "max_words", "max_quoted_words")
            if getattr(self, k) is not None
        }
        if limits:
            overrides["limits"] = limits
        try:
            return get_protocol(self.name, **overrides)
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    seed: int = 0
    dataset: dict[str, Any]
    protocol: ProtocolSettings
    both_orders: bool = False
    # One agent for every seat, or separate agents for the honest and deceptive seats.
    debater: dict[str, Any] | None = None
    honest_debater: dict[str, Any] | None = None
    deceptive_debater: dict[str, Any] | None = None
    # Asks the judge's questions in interactive protocols.
    interactive_judge: dict[str, Any] | None = None
    # Model judges run by `debate judge` (see judges/); kept here so they travel with the run.
    judges: list[dict[str, Any]] = Field(default_factory=list)
    description: str | None = None

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    def built_protocol(self) -> Protocol:
        return self.protocol.build()

    def hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def _check_seats(cfg: ExperimentConfig, protocol: Protocol) -> None:
    split = cfg.honest_debater is not None or cfg.deceptive_debater is not None
    if protocol.speaker_roles:
        if split and cfg.debater is not None:
            raise ConfigError("debater: give either debater or honest_debater/deceptive_debater")
        if split and (cfg.honest_debater is None or cfg.deceptive_debater is None):
            missing = "honest_debater" if cfg.honest_debater is None else "deceptive_debater"
            raise ConfigError(f"{missing}: missing (both seats need an agent)")
        if not split and cfg.debater is None:
            raise ConfigError("debater: missing (the protocol has debater seats)")
        if split and protocol.open_choice:
            raise ConfigError(
                "honest_debater: open protocols pick sides during the debate; give `debater`"
            )
    if protocol.interactive and cfg.interactive_judge is None:
        raise ConfigError("interactive_judge: missing (the protocol is interactive)")
    for name in AGENT_FIELDS:
        spec = getattr(cfg, name)
        if spec is not None:
            check_spec_word_limit(spec, name, protocol.limits, protocol.name)


def parse_config(data: Any, source: str = "<config>") -> ExperimentConfig:
    cfg = validate_mapping(ExperimentConfig, data, source)
    try:
        protocol = cfg.built_protocol()
        _check_seats(cfg, protocol)
    except (ValueError, ConfigError) as exc:
        text = str(exc)
        head = text.split(":")[0].split(".")[0]
        field = text if head in ExperimentConfig.model_fields else f"protocol.{text}"
        raise ConfigError(f"{source}: {field}") from None
    return cfg


def read_yaml(path: Path, missing: str) -> Any:
    """The YAML document in `path`; a missing file raises ConfigError(`missing`), bad YAML
    a ConfigError naming `file:line`."""
    if not path.is_file():
        raise ConfigError(missing)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    return parse_config(read_yaml(path, f"{path}: no such file"), str(path))
