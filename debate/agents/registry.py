"""Agent types by name. A config's agent entry is {"type": NAME, ...settings}.

`AGENT_TYPES` (a `debate.registry.Registry`) names each type's `AgentType` (its settings
model and factory) as "module:AGENT_TYPE"; a type's module is imported only when a config
asks for it, so torch is loaded only for a model. `build_agent` validates the settings
with that type's pydantic model and names the offending field on error.
One setting belongs to every type and is handled here: `max_words`, the agent's own word
limit, which may only tighten the protocol's (see `WordLimitedDebater`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from debate.agents.base import SEAT_MAX_WORDS, Debater, WordLimitedDebater
from debate.errors import ConfigError
from debate.protocols import Limits
from debate.registry import Registry
from debate.validation import describe_validation_error


@dataclass(frozen=True)
class BuildContext:
    """What an agent factory may need: where the config lives, the store URL, the seed."""

    config_dir: Path
    db_url: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class AgentType:
    name: str
    settings_model: type[BaseModel]
    factory: Callable[[Any, BuildContext], Debater]


AGENT_TYPES: Registry[AgentType] = Registry("agent type", {
    "human": "debate.agents.human:AGENT_TYPE",
    "model": "debate.agents.model:AGENT_TYPE",
    "planted": "debate.agents.planted:AGENT_TYPE",
    "scripted": "debate.agents.scripted:AGENT_TYPE",
})


def known_agent_types() -> list[str]:
    return AGENT_TYPES.names()


def agent_type(name: str, where: str) -> AgentType:
    return AGENT_TYPES.get(name, f"{where}.type")


def spec_max_words(cfg: dict[str, Any], where: str) -> int | None:
    """The agent spec's own word limit (`max_words`), or None when it has none."""
    value = cfg.get(SEAT_MAX_WORDS)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.{SEAT_MAX_WORDS}: expected a whole number of words >= 1, "
                          f"got {value!r}")
    return value


def check_spec_word_limit(cfg: dict[str, Any], where: str, limits: Limits,
                          protocol: str) -> None:
    """Refuse an agent word limit that would loosen the protocol's (or undercut its
    minimum): an agent's limit may only tighten the protocol's."""
    own = spec_max_words(cfg, where) if isinstance(cfg, dict) else None
    if own is None:
        return
    if own > limits.max_words:
        raise ConfigError(f"{where}.{SEAT_MAX_WORDS}: {own} is looser than the max_words "
                          f"{limits.max_words} of protocol {protocol!r} (an agent's word limit "
                          "may only tighten the protocol's)")
    if own < limits.min_words:
        raise ConfigError(f"{where}.{SEAT_MAX_WORDS}: {own} is below the min_words "
                          f"{limits.min_words} of protocol {protocol!r}")


def validate_agent_settings(cfg: dict[str, Any], where: str) -> tuple[AgentType, BaseModel]:
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'type'")
    if "type" not in cfg:
        raise ConfigError(f"{where}.type: missing; known: {', '.join(known_agent_types())}")
    atype = agent_type(str(cfg["type"]), where)
    spec_max_words(cfg, where)
    settings = {k: v for k, v in cfg.items() if k not in ("type", SEAT_MAX_WORDS)}
    try:
        return atype, atype.settings_model.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, where=where)) from None


def build_agent(cfg: dict[str, Any], where: str, context: BuildContext) -> Debater:
    atype, settings = validate_agent_settings(cfg, where)
    agent = atype.factory(settings, context)
    own = spec_max_words(cfg, where)
    return agent if own is None else WordLimitedDebater(agent, own)
