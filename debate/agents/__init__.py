"""Debaters: the batched interface, and the agents that implement it."""

from debate.agents.base import (
    AgentIdentity,
    Debater,
    TranscriptTurn,
    TurnRequest,
    TurnResult,
)
from debate.agents.registry import build_agent, register_agent_type

__all__ = [
    "AgentIdentity",
    "Debater",
    "TranscriptTurn",
    "TurnRequest",
    "TurnResult",
    "build_agent",
    "register_agent_type",
]
