"""Tournament configs: YAML validated into typed models; errors name the file and field.

    tournament: planted-ladder         # name; marks the file as a tournament for `debate run`
    seed: 0
    dataset: {name: planted, count: 200}
    protocols: [{name: debate, rounds: 1}, {name: consultancy, rounds: 1}]
    schedule: round_robin              # or {type: swiss, rounds: 4, judge: rule-judge}
    both_orders: true                  # every question in both answer orders
    debaters:
      - {type: planted, name: weak, strength: 0.3}
      - {type: model, backend: transformers, model: Qwen/Qwen2.5-0.5B-Instruct,
         name: "qwen-bo{best_of}-t{temperature}",
         sweep: {best_of: [1, 4, 16], temperature: [0.7, 1.0]}}   # 6 debaters
    judges: [{type: rule}]             # run after each round (swiss pairs by their ratings)

A debater entry is an agent spec (as in experiment configs) with a unique `name`; an entry
with `sweep: {setting: [values], ...}` stands for one debater per combination of values
(every agent setting can be swept: model, best_of, temperature, templates, max_new_tokens,
the debater's own word limit `max_words` ...), named by formatting `name` with the values.
A debater's `max_words` may only tighten each protocol's limit; a looser one is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from debate.agents.registry import check_spec_word_limit
from debate.config import ProtocolSettings, read_yaml
from debate.errors import ConfigError
from debate.validation import validate_mapping

NAME_MAX = 200


class RoundRobin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["round_robin"] = "round_robin"


class Swiss(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["swiss"] = "swiss"
    rounds: int = Field(ge=1, le=100)
    judge: str | None = None  # whose verdicts rate for pairing (default: the first judge)


class TournamentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tournament: str = Field(min_length=1, max_length=100)
    seed: int = 0
    dataset: dict[str, Any]
    protocols: list[ProtocolSettings] = Field(
        default_factory=lambda: [ProtocolSettings(name="debate")], min_length=1)
    schedule: RoundRobin | Swiss = Field(default_factory=RoundRobin, discriminator="type")
    both_orders: bool = True
    self_play: bool = True
    debaters: list[dict[str, Any]] = Field(min_length=1)
    judges: list[dict[str, Any]] = Field(default_factory=list)
    description: str | None = None

    @field_validator("protocols", mode="before")
    @classmethod
    def _protocol_names(cls, v: Any) -> Any:
        if isinstance(v, (str, dict)):
            v = [v]
        return [{"name": p} if isinstance(p, str) else p for p in v] if isinstance(v, list) else v

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_name(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v

    @field_validator("tournament")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if "/" in v or v != v.strip():
            raise ValueError("a name without '/' or surrounding spaces")
        return v

    @model_validator(mode="after")
    def _checks(self) -> TournamentConfig:
        names = [p.name for p in self.protocols]
        if len(set(names)) != len(names):
            raise ValueError("protocols: each protocol at most once")
        for i, p in enumerate(self.protocols):
            proto = p.build()
            if proto.family not in ("debate", "consultancy") or proto.open_choice or proto.interactive:
                raise ValueError(f"protocols.{i}: {p.name!r} cannot be played in a tournament "
                                 "(debate and consultancy protocols with assigned sides only)")
        if isinstance(self.schedule, Swiss) and not self.judges:
            raise ValueError("judges: a swiss schedule pairs by rating, so it needs a judge")
        return self

    def hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def debate_protocols(self) -> list[ProtocolSettings]:
        return [p for p in self.protocols if p.build().family == "debate"]

    def consultancy_protocols(self) -> list[ProtocolSettings]:
        return [p for p in self.protocols if p.build().family == "consultancy"]

    def rating_judge(self) -> str | None:
        if isinstance(self.schedule, Swiss) and self.schedule.judge:
            return self.schedule.judge
        return judge_name(self.judges[0]) if self.judges else None


def judge_name(spec: dict[str, Any]) -> str:
    """The name a judge's verdicts are stored under (as the judges package names them)."""
    if spec.get("name"):
        return str(spec["name"])
    if spec.get("type") == "rule":
        return "rule-judge"
    return f"{spec.get('type', 'logprob')}-judge:{spec.get('model')}"


@dataclass(frozen=True)
class DebaterEntry:
    name: str
    spec: dict[str, Any]  # an agent spec, as an experiment config takes it
    where: str  # the config field it came from
    swept: tuple[str, ...] = ()  # the settings whose values came from `sweep`

    def where_of(self, setting: str) -> str:
        """Where `setting` of this debater is written in the config."""
        return f"{self.where}.sweep" if setting in self.swept else self.where


def expand_debaters(cfg: TournamentConfig) -> list[DebaterEntry]:
    """Every debater, sweeps expanded, in config order; names must be unique."""
    out: list[DebaterEntry] = []
    for i, entry in enumerate(cfg.debaters):
        where = f"debaters.{i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an agent spec (a mapping with a 'type')")
        sweep = entry.get("sweep")
        base = {k: v for k, v in entry.items() if k != "sweep"}
        if sweep is None:
            combos: list[dict[str, Any]] = [{}]
        else:
            if not isinstance(sweep, dict) or not sweep:
                raise ConfigError(f"{where}.sweep: expected a mapping of setting -> [values]")
            for key, values in sweep.items():
                if key in ("type", "name", "sweep"):
                    raise ConfigError(f"{where}.sweep.{key}: cannot be swept")
                if not isinstance(values, list) or not values:
                    raise ConfigError(f"{where}.sweep.{key}: expected a non-empty list of values")
            keys = list(sweep)
            combos = [dict(zip(keys, vals)) for vals in itertools.product(*sweep.values())]
        for combo in combos:
            spec = {**base, **combo}
            name = base.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"{where}.name: missing (tournament debaters need a unique name)")
            if combo:
                try:
                    formatted = name.format(**combo)
                except (KeyError, IndexError, ValueError) as exc:
                    raise ConfigError(f"{where}.name: cannot format {name!r} ({exc})") from None
                if formatted == name:  # no placeholder: tell the combinations apart
                    formatted = name + "-" + "-".join(f"{k}={v}" for k, v in combo.items())
                name = formatted
            if "/" in name or "~" in name or len(name) > 60:
                raise ConfigError(f"{where}.name: {name!r} must be at most 60 characters, "
                                  "without '/' or '~'")
            spec["name"] = name
            out.append(DebaterEntry(name, spec, where, tuple(combo)))
    seen: dict[str, str] = {}
    for d in out:
        if d.name in seen:
            raise ConfigError(f"{d.where}.name: {d.name!r} is also the name of a debater in "
                              f"{seen[d.name]}")
        seen[d.name] = d.where
    return out


def is_tournament(data: Any) -> bool:
    return isinstance(data, dict) and "tournament" in data


def parse_tournament(data: Any, source: str = "<tournament>") -> TournamentConfig:
    cfg = validate_mapping(TournamentConfig, data, source)
    try:
        debaters = expand_debaters(cfg)
        for p in cfg.protocols:  # an agent's own word limit may only tighten the protocols'
            protocol = p.build()
            for d in debaters:
                check_spec_word_limit(d.spec, d.where_of("max_words"), protocol.limits, p.name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def load_tournament(path: str | Path) -> TournamentConfig:
    path = Path(path)
    return parse_tournament(read_yaml(path, f"{path}: no such file"), str(path))
