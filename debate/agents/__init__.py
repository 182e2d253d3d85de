"""Debaters: the batched interface, and the agents that implement it."""

from debate.agents.base import (
    AgentIdentity,
    Debater,
    TranscriptTurn,
    TurnRequest,
    TurnResult,
)
from debate.agents.registry import AGENT_TYPES, build_agent

__all__ = [
    "AGENT_TYPES",
    "AgentIdentity",
    "Debater",
    "TranscriptTurn",
    "TurnRequest",
    "TurnResult",
    "build_agent",
]
