"""A scripted debater of planted strength: how often it finds its best evidence is known.

With probability `strength` (drawn once per debate and side, from the agent's seed, the
debate and the answer argued, so a rerun says the same) the debater quotes, in every
round, the source sentence that best supports the answer it argues (the scripted
debater's `evidence_sentence`: the sentence sharing most words with that answer and the
question). Otherwise it asserts its answer without evidence. Tournaments of such
debaters, judged by a rule-based judge, have ratings and a strength curve whose shape is
known before the run (see `debate.datasets.planted` and `judges.rule`).
"""

from __future__ import annotations

import hashlib
import struct

from pydantic import BaseModel, ConfigDict, Field

from debate.agents.base import AgentIdentity, Debater, TurnRequest, TurnResult
from debate.agents.registry import AgentType, BuildContext
from debate.agents.scripted import DEFAULT_QUESTION, evidence_sentence

FOUND = 'The answer is "{answer}". The text says <quote>{evidence}</quote>, which settles it.'
NOT_FOUND = 'The answer is "{answer}". I am confident of it; "{other}" does not fit the story.'


class PlantedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "planted"
    strength: float = Field(ge=0.0, le=1.0)
    seed: int = 0


def planted_draw(seed: int, debate_seed: int, answer: str) -> float:
    """A uniform number in [0, 1) fixed by the agent's seed, the debate and the answer."""
    blob = f"{seed}\x1f{debate_seed}\x1f{answer}".encode()
    return struct.unpack(">Q", hashlib.sha256(blob).digest()[:8])[0] / 2.0**64


class PlantedDebater(Debater):
    def __init__(self, settings: PlantedSettings):
        self.settings = settings

    @property
    def identity(self) -> AgentIdentity:
        s = self.settings
        return AgentIdentity(name=s.name, kind="planted",
                             settings={"strength": s.strength, "seed": s.seed})

    def finds_evidence(self, request: TurnRequest) -> bool:
        mine = request.answers[request.my_answer] if request.my_answer is not None else ""
        key = request.seed * 1_000_003 + request.debate_id
        return planted_draw(self.settings.seed, key, mine) < self.settings.strength

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        return [self._one(r) for r in requests]

    def _one(self, r: TurnRequest) -> TurnResult:
        if r.kind == "choice":
            return TurnResult(text=f"I will argue for: {r.answers[0]}", meta={"choice": 0})
        if r.kind == "question":
            return TurnResult(text=DEFAULT_QUESTION)
        mine = r.answers[r.my_answer].rstrip(". ") if r.my_answer is not None else ""
        other = r.answers[1 - r.my_answer].rstrip(". ") if r.my_answer is not None else ""
        evidence = evidence_sentence(r.source, mine, r.question, 1) if self.finds_evidence(r) else ""
        template = FOUND if evidence else NOT_FOUND
        return TurnResult(text=template.format(answer=mine, other=other, evidence=evidence),
                          template_version="planted")


def _build(settings: PlantedSettings, context: BuildContext) -> PlantedDebater:
    return PlantedDebater(settings)


AGENT_TYPE = AgentType("planted", PlantedSettings, _build)
