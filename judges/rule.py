"""A simulated, rule-based judge whose behaviour is known exactly (tests, demo, benchmarks).

It reads what any judge sees (the question, which answer each speaker argues, and which
of their quotes were verified against the hidden source; never the correct answer):

- A speaker's evidence for the answer it argues is its best verified quote that names
  that answer: weight 2 if the quote contains one of `strong_cues` (official evidence,
  e.g. "records show"), else 1. Unverified quotes count for nothing, so a debater cannot
  invent decisive evidence.
- The answer with more evidence gets probability `confidence`.
- With equal evidence (none on either side, say) the judge falls back on its prior: an
  answer named by the question's hint (`hint_pattern`) gets `prior_confidence`; else 1/2.

So in a debate the honest side wins whenever it finds the decisive evidence, while a
lone consultant who shows any evidence is believed: judge accuracy rises with debater
strength in debate and falls in consultancy, with the slopes' signs known in advance
(`debate.datasets.planted`, `debate.agents.planted`).

    {type: rule, name: rule-judge, strong_cues: ["records show"], confidence: 0.9,
     prior_confidence: 0.65, hint_pattern: "Most readers guess (.+?)\\.\\s*$"}
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from debate.agents.base import AgentIdentity
from debate.errors import UserError
from debate.quotes import normalize
from debate.store.db import Store
from debate.store.experiments import agent_id
from debate.store.judgments import insert_judgments
from debate.store.models import Debate, Experiment, Judgment, Quote, Seat, Turn
from debate.store.models import Question as QuestionRow
from debate.validation import validate_mapping
from debate.vocabulary import DebateStatus, JudgmentKind, TurnStatus

CHUNK = 2000


class RuleJudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["rule"] = "rule"
    name: str = "rule-judge"
    strong_cues: list[str] = Field(default_factory=lambda: ["records show"])
    confidence: float = Field(default=0.9, gt=0.5, le=1.0)
    prior_confidence: float = Field(default=0.65, ge=0.5, le=1.0)
    hint_pattern: str | None = r"Most readers guess (.+?)\.\s*$"

    @field_validator("hint_pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return v

    @property
    def display_name(self) -> str:
        return self.name


def is_rule_judge(data: Any) -> bool:
    return isinstance(data, dict) and data.get("type") == "rule"


def parse_rule_judge(data: Any, source: str = "judge") -> RuleJudgeConfig:
    return validate_mapping(RuleJudgeConfig, data, source, "a mapping of rule judge settings")


@dataclass
class SeenDebate:
    """What the rule judge reads of one debate: no ground truth."""

    id: int
    question: str
    answers: list[str]
    answer_order: list[int]
    argued: dict[str, int]  # speaker role -> answer index (question order)
    verified_quotes: list[tuple[str, str]]  # (speaker role, quote text)


class RuleJudge:
    def __init__(self, config: RuleJudgeConfig):
        self.config = config
        self._cues = [normalize(c) for c in config.strong_cues if normalize(c)]
        self._hint = re.compile(config.hint_pattern) if config.hint_pattern else None

    @property
    def identity(self) -> AgentIdentity:
        c = self.config
        return AgentIdentity(name=c.name, kind="rule-judge",
                             settings=c.model_dump(mode="json", exclude={"name"}))

    def evidence(self, debate: SeenDebate) -> list[int]:
        """Per answer (question order): the weight of the best verified quote for it."""
        scores = [0] * len(debate.answers)
        names = [normalize(a) for a in debate.answers]
        for role, text in debate.verified_quotes:
            answer = debate.argued.get(role)
            if answer is None or not names[answer]:
                continue
            quote = f" {normalize(text)} "
            if f" {names[answer]} " not in quote:
                continue
            weight = 2 if any(f" {cue} " in quote for cue in self._cues) else 1
            scores[answer] = max(scores[answer], weight)
        return scores

    def probabilities(self, debate: SeenDebate) -> tuple[list[float], str]:
        n = len(debate.answers)
        scores = self.evidence(debate)
        best = max(scores)
        if scores.count(best) == 1:
            winner = scores.index(best)
            rest = (1 - self.config.confidence) / (n - 1)
            return ([self.config.confidence if i == winner else rest for i in range(n)],
                    f"evidence {scores}: answer {winner + 1} is better supported")
        match = self._hint.search(debate.question) if self._hint else None
        hinted = [i for i, a in enumerate(debate.answers)
                  if match and normalize(a) == normalize(match.group(1))]
        if len(hinted) == 1:
            rest = (1 - self.config.prior_confidence) / (n - 1)
            return ([self.config.prior_confidence if i == hinted[0] else rest for i in range(n)],
                    f"evidence {scores} is even: following the question's hint")
        return [1.0 / n] * n, f"evidence {scores} is even and there is no hint"


def _unjudged(store: Store, experiment_ids: list[int], judge_id: int) -> list[int]:
    with store.session() as s:
        done = set(s.scalars(
            select(Judgment.debate_id).join(Debate, Judgment.debate_id == Debate.id).where(
                Debate.experiment_id.in_(experiment_ids), Judgment.judge_agent_id == judge_id,
                Judgment.kind == JudgmentKind.FINAL)))
        ids = s.scalars(select(Debate.id).where(
            Debate.experiment_id.in_(experiment_ids), Debate.status == DebateStatus.DONE,
        ).order_by(Debate.id)).all()
    return [i for i in ids if i not in done]


def _seen(store: Store, ids: list[int]) -> list[SeenDebate]:
    with store.session() as s:
        rows = s.execute(
            select(Debate.id, Debate.answer_order, QuestionRow.text, QuestionRow.answers)
            .join(QuestionRow, Debate.question_id == QuestionRow.id).where(Debate.id.in_(ids))
        ).all()
        argued: dict[int, dict[str, int]] = defaultdict(dict)
        for did, role, answer in s.execute(
                select(Seat.debate_id, Seat.role, Seat.answer_index).where(
                    Seat.debate_id.in_(ids), Seat.answer_index.is_not(None))):
            argued[did][role] = answer
        quotes: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for did, role, text in s.execute(
                select(Turn.debate_id, Turn.role, Quote.text).join(Quote, Quote.turn_id == Turn.id)
                .where(Turn.debate_id.in_(ids), Quote.verified.is_(True), Turn.status != TurnStatus.FAILED)):
            quotes[did].append((role, text))
    return [SeenDebate(did, question, list(answers), list(order), argued[did], quotes[did])
            for did, order, question, answers in rows]


def judge_experiments_by_rule(store: Store, experiment_ids: list[int],
                              config: RuleJudgeConfig | dict[str, Any]) -> dict[str, Any]:
    """Judge every finished, not yet judged debate of the experiments; resumable (each
    chunk of debates is written in one transaction)."""
    if isinstance(config, dict):
        config = parse_rule_judge(config)
    judge = RuleJudge(config)
    started = time.perf_counter()
    with store.write_session() as session:
        judge_id = agent_id(session, judge.identity)
    todo = _unjudged(store, experiment_ids, judge_id) if experiment_ids else []
    written = 0
    for i in range(0, len(todo), CHUNK):
        rows = []
        for debate in _seen(store, todo[i: i + CHUNK]):
            probs, why = judge.probabilities(debate)
            rows.append({"debate_id": debate.id, "judge_agent_id": judge_id, "kind": JudgmentKind.FINAL,
                         "after_round": None, "probabilities": probs,
                         "shown_order": debate.answer_order, "explanation": why,
                         "time_taken_ms": 0.0, "meta": {}})
        with store.session() as s:
            insert_judgments(s, rows)
        written += len(rows)
    return {"judge": config.display_name, "judge_agent_id": judge_id,
            "judgments_written": written, "seconds": round(time.perf_counter() - started, 3)}


def judge_experiment_by_rule(store: Store, experiment_name: str,
                             config: RuleJudgeConfig | dict[str, Any]) -> dict[str, Any]:
    with store.session() as s:
        exp_id = s.scalar(select(Experiment.id).where(Experiment.name == experiment_name))
    if exp_id is None:
        raise UserError(f"--experiment: no experiment named {experiment_name!r}")
    return judge_experiments_by_rule(store, [exp_id], config)
