"""The human debater: a seat taken by a person through the web app's Debate tab.

Config entry: {"type": "human", "name": "...", "user": "alice"}. With `user` only that
person may speak in the seat; without it any user with the debater (or admin) role may,
though one person never takes both seats of a debate.

The engine asks this agent for a turn like any other; it answers status="waiting", and
the engine marks the debate waiting_human. What a person may answer, and storing their
turn and advancing the debate, is the human-turn service: `debate.human_turns`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from debate.agents.base import AgentIdentity, Debater, TurnRequest, TurnResult
from debate.agents.registry import AgentType, BuildContext
from debate.vocabulary import TurnStatus


class HumanSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="human", min_length=1, max_length=200)
    user: str | None = Field(default=None, min_length=1, max_length=100)


class HumanDebater(Debater):
    def __init__(self, settings: HumanSettings):
        self.settings = settings

    @property
    def identity(self) -> AgentIdentity:
        return AgentIdentity(
            name=self.settings.name, kind="human", settings={"user": self.settings.user}
        )

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        return [TurnResult(text="", status=TurnStatus.WAITING) for _ in requests]


def _build(settings: HumanSettings, context: BuildContext) -> HumanDebater:
    return HumanDebater(settings)


AGENT_TYPE = AgentType("human", HumanSettings, _build)
