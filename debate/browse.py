"""Reads behind the web app's tabs (Browse and Results are admins only; the Debate tab's
transcript): named queries, so the web handlers send no SQL of their own.

`debate_detail` returns everything about one debate, ground truth included (which answer
is correct, who argued which side): only admin views may show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from debate.quotes import QuoteMark
from debate.store.db import Store
from debate.store.models import Agent, Debate, Experiment, Judgment, Quote, Seat, Turn, User
from debate.store.models import Question as QuestionRow
from debate.store.views import load_facts

MAX_ROWS = 500
DEBATE_COLUMNS = ["id", "experiment", "protocol", "variant", "status", "steps", "judgments"]


def experiment_names(store: Store) -> list[str]:
    """The experiments in the store, by name."""
    with store.session() as session:
        return list(session.scalars(select(Experiment.name).order_by(Experiment.name)))


def experiment_folder_by_name(store: Store, name: str) -> Path | None:
    """The folder of the config file experiment `name` was run from (None if unknown)."""
    with store.session() as session:
        folder = session.scalar(select(Experiment.config_dir).where(Experiment.name == name))
    return Path(folder) if folder else None


def filter_options(store: Store) -> tuple[list[str], list[str]]:
    """The experiment names and the protocols in the store, sorted."""
    with store.session() as session:
        protos = list(session.scalars(select(Debate.protocol).distinct().order_by(Debate.protocol)))
    return experiment_names(store), protos


def find_debates(store: Store, experiment: str | None, protocol: str | None,
                 status: str | None, limit: int = MAX_ROWS) -> list[tuple[Any, ...]]:
    """The first `limit` debates matching the filters, as rows of DEBATE_COLUMNS."""
    judged = (select(Judgment.debate_id, func.count().label("n"))
              .group_by(Judgment.debate_id).subquery())
    query = (
        select(Debate.id, Experiment.name, Debate.protocol, Debate.variant, Debate.status,
               Debate.steps_done, func.coalesce(judged.c.n, 0))
        .join(Experiment, Debate.experiment_id == Experiment.id)
        .outerjoin(judged, judged.c.debate_id == Debate.id)
        .order_by(Debate.id)
        .limit(limit)
    )
    if experiment:
        query = query.where(Experiment.name == experiment)
    if protocol:
        query = query.where(Debate.protocol == protocol)
    if status:
        query = query.where(Debate.status == status)
    with store.session() as session:
        return [tuple(r) for r in session.execute(query).all()]


@dataclass(frozen=True)
class DebateDetail:
    """One debate as stored: seats (role, answer index, agent name, kind, model id), turns
    (id, round, role, kind, text, status, user name), quotes (turn id, position, text,
    verified, fuzzy score, source start, source end) and judgments (kind, after round,
    probabilities, explanation, time taken ms, user name, judge agent name)."""

    id: int
    experiment: str | None
    protocol: str
    variant: str
    status: str
    answer_order: list[int]
    question: str
    answers: list[str]
    correct: int
    source: str | None
    seats: list[tuple[Any, ...]]
    turns: list[tuple[Any, ...]]
    quotes: list[tuple[Any, ...]]
    judgments: list[tuple[Any, ...]]


def debate_detail(store: Store, debate_id: int) -> DebateDetail | None:
    """Everything stored about one debate (None if there is none with this id)."""
    with store.session() as session:
        d = session.get(Debate, debate_id)
        if d is None:
            return None
        q = session.get(QuestionRow, d.question_id)
        assert q is not None
        exp = session.get(Experiment, d.experiment_id)
        seats = session.execute(
            select(Seat.role, Seat.answer_index, Agent.name, Agent.kind, Agent.model_id)
            .outerjoin(Agent, Seat.agent_id == Agent.id)
            .where(Seat.debate_id == d.id).order_by(Seat.role)
        ).all()
        turns = session.execute(
            select(Turn.id, Turn.round, Turn.role, Turn.kind, Turn.text, Turn.status,
                   User.name)
            .outerjoin(User, Turn.user_id == User.id)
            .where(Turn.debate_id == d.id).order_by(Turn.step, Turn.id)
        ).all()
        quotes = session.execute(
            select(Quote.turn_id, Quote.position, Quote.text, Quote.verified, Quote.fuzzy_score,
                   Quote.source_start, Quote.source_end)
            .join(Turn, Quote.turn_id == Turn.id).where(Turn.debate_id == d.id)
            .order_by(Quote.turn_id, Quote.position)
        ).all()
        judgments = session.execute(
            select(Judgment.kind, Judgment.after_round, Judgment.probabilities,
                   Judgment.explanation, Judgment.time_taken_ms, User.name, Agent.name)
            .outerjoin(User, Judgment.user_id == User.id)
            .outerjoin(Agent, Judgment.judge_agent_id == Agent.id)
            .where(Judgment.debate_id == d.id).order_by(Judgment.id)
        ).all()
        return DebateDetail(
            id=d.id, experiment=exp.name if exp else None, protocol=d.protocol,
            variant=d.variant, status=d.status, answer_order=list(d.answer_order),
            question=q.text, answers=list(q.answers), correct=q.correct_index,
            source=q.document.text if q.document is not None else None,
            seats=[tuple(r) for r in seats], turns=[tuple(r) for r in turns],
            quotes=[tuple(r) for r in quotes], judgments=[tuple(r) for r in judgments],
        )


def stored_marks(store: Store, debate_id: int) -> dict[tuple[str, int, str],
                                                      tuple[QuoteMark, ...]]:
    """The stored quote marks of each stored turn of the debate, by (role, round, kind):
    the transcript shows verified quotes from their stored spans of the source."""
    with store.session() as session:
        facts = load_facts(session, [debate_id]).get(debate_id)
    if facts is None:
        return {}
    return {(t.role, t.round, t.kind): t.marks or () for t in facts.turns if not t.failed}
