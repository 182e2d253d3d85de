"""Submissions: checked probabilities and explanations, judgments (whole or round by
round), the reveal after the final submit, and feedback."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from debate.agents.base import AgentIdentity
from debate.store import judging as writes
from debate.store.db import Store
from debate.store.experiments import agent_id
from debate.store.judgments import insert_feedback
from debate.store.models import Assignment, Campaign, Debate, Feedback, Judgment, as_utc, utcnow
from debate.store.models import Question as QuestionRow
from debate.users import UserInfo
from debate.vocabulary import AssignmentStatus, CampaignMode, JudgmentKind
from judges.queue.campaigns import CampaignInfo, _campaign_info, no_campaign
from judges.queue.claiming import _owned_assignment, judged_rounds
from judges.queue.common import (
    LIKERT_KEYS,
    MAX_COMMENT,
    MAX_EXPLANATION,
    MAX_PERCENT,
    MIN_PERCENT,
    QueueError,
)
from judges.queue.writer import writing


@dataclass(frozen=True)
class Reveal:
    correct_answer: str
    your_probability: float  # percent on the correct answer


@dataclass(frozen=True)
class SubmitResult:
    judgment_id: int
    final: bool
    after_round: int | None
    reveal: Reveal | None = None
    next_round: int | None = None


def check_probabilities(percents: Sequence[Any], n_answers: int) -> list[float]:
    if len(percents) != n_answers:
        raise QueueError(f"probabilities: expected {n_answers} values, got {len(percents)}")
    values: list[float] = []
    for i, p in enumerate(percents):
        try:
            v = float(p)
        except (TypeError, ValueError):
            raise QueueError(f"probabilities: answer {i + 1}: {p!r} is not a number") from None
        if not math.isfinite(v) or not MIN_PERCENT <= v <= MAX_PERCENT:
            raise QueueError(
                f"probabilities: answer {i + 1}: {v:g}% is outside {MIN_PERCENT:g}-{MAX_PERCENT:g}%"
            )
        values.append(v)
    if abs(sum(values) - 100.0) > 1e-6:
        raise QueueError(f"probabilities: they sum to {sum(values):g}%, not 100%")
    return values


def check_explanation(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise QueueError("explanation: required; say briefly why you chose these probabilities")
    if len(text) > MAX_EXPLANATION:
        raise QueueError(
            f"explanation: {len(text)} characters is over the limit of {MAX_EXPLANATION}"
        )
    return text.strip()


# How long after a judge's last action (claim or stepped submit) an assignment claimed
# before its campaign was closed may still be submitted.
ASSIGNMENT_LEASE = timedelta(hours=1)


def _check_may_submit(campaign: CampaignInfo, user: UserInfo, a: Assignment,
                      last: datetime | None, now: datetime) -> None:
    """An open campaign takes every submit of its open assignments. A closed one takes
    only those claimed before it closed, within the lease; the rest are refused, as for
    a missing campaign."""
    if not campaign.allows(user):
        raise QueueError(no_campaign(campaign.id))
    if campaign.active:
        return
    claimed = as_utc(a.created_at)
    active_since = as_utc(last) if last is not None else claimed
    closed = campaign.closed_at or claimed
    if claimed > closed or now > active_since + ASSIGNMENT_LEASE:
        raise QueueError(f"campaign: campaign {campaign.id} is closed and this debate's "
                         "claim has lapsed; nothing was recorded")


def human_judge_agent(session: Session, user: UserInfo) -> int:
    return agent_id(session, AgentIdentity(name=f"human:{user.name}", kind="human",
                                           user_id=user.id))


def submit_judgment(
    store: Store,
    user: UserInfo,
    assignment_id: Any,
    debate_id: Any,
    round_seen: Any,
    percents: Sequence[Any],
    explanation: Any,
) -> SubmitResult:
    """Store the judge's probabilities (display order, in percent) for what they were shown.

    Everything is checked before anything is written; a refusal raises QueueError.
    """
    text = check_explanation(explanation)
    with writing(store) as session:
        a = _owned_assignment(session, user, assignment_id, debate_id, lock=True)
        if a.status != AssignmentStatus.OPEN:
            raise QueueError("assignment: already submitted; press Next debate")
        try:
            seen = int(round_seen)
        except (TypeError, ValueError):
            raise QueueError("round: missing; reload the page") from None
        if seen != a.rounds_shown:
            raise QueueError(
                f"round: you are judging after round {a.rounds_shown}, not {seen}; reload the page"
            )
        debate = session.get(Debate, a.debate_id)
        campaign = session.get(Campaign, a.campaign_id)
        assert debate is not None and campaign is not None
        last = session.scalar(
            select(func.max(Judgment.created_at)).where(Judgment.assignment_id == a.id)
        )
        now = utcnow()
        _check_may_submit(_campaign_info(campaign, ""), user, a, last, now)
        order = list(debate.answer_order)
        values = check_probabilities(percents, len(order))
        probs: list[float] = [0.0] * len(order)
        for pos, original in enumerate(order):
            probs[original] = round(values[pos] / 100.0, 6)
        total = judged_rounds(debate.protocol_spec)
        stepped = campaign.mode == CampaignMode.STEPPED and total > 0
        final = not stepped or a.rounds_shown >= total
        started = as_utc(last) if last is not None else as_utc(a.created_at)
        judgment = writes.record_submission(
            session,
            a,
            final,
            now,
            debate_id=a.debate_id,
            judge_agent_id=human_judge_agent(session, user),
            user_id=user.id,
            assignment_id=a.id,
            kind=JudgmentKind.FINAL if final else JudgmentKind.STEPPED,
            after_round=a.rounds_shown if stepped else None,
            probabilities=probs,
            shown_order=order,
            explanation=text,
            time_taken_ms=max(0.0, (now - started).total_seconds() * 1000.0),
            meta={"campaign_id": campaign.id, "mode": campaign.mode, "source": "web"},
            created_at=now,
        )
        reveal = None
        if final and campaign.reveal_truth:
            question = session.get(QuestionRow, debate.question_id)
            assert question is not None
            correct = question.correct_index
            reveal = Reveal(str(question.answers[correct]), probs[correct] * 100.0)
        return SubmitResult(
            judgment.id,
            final,
            judgment.after_round,
            reveal,
            None if final else a.rounds_shown,
        )


def record_feedback(
    store: Store, user: UserInfo, judgment_id: Any, scores: dict[str, Any], comment: str = ""
) -> int:
    """Likert answers (1-5) on clarity, use of evidence and confidence, after a judgment."""
    answers: dict[str, Any] = {}
    for key in LIKERT_KEYS:
        v = scores.get(key)
        try:
            iv = int(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise QueueError(f"feedback: {key}: choose a value from 1 to 5") from None
        if not 1 <= iv <= 5 or str(v).strip() not in (str(iv), f"{iv}.0"):
            raise QueueError(f"feedback: {key}: choose a value from 1 to 5")
        answers[key] = iv
    comment = comment or ""
    if len(comment) > MAX_COMMENT:
        raise QueueError(f"feedback: comment: over the limit of {MAX_COMMENT} characters")
    if comment.strip():
        answers["comment"] = comment.strip()
    try:
        jid = int(judgment_id)
    except (TypeError, ValueError):
        raise QueueError("feedback: submit a judgment first") from None
    with writing(store) as session:
        j = session.get(Judgment, jid)
        if j is None or j.user_id != user.id or j.kind != JudgmentKind.FINAL:
            raise QueueError("feedback: this judgment is not yours")
        if session.scalar(select(Feedback.id).where(Feedback.judgment_id == jid)) is not None:
            raise QueueError("feedback: already given for this judgment")
        return insert_feedback(
            session,
            debate_id=j.debate_id,
            judgment_id=jid,
            user_id=user.id,
            respondent=user.name,
            answers=answers,
        )
