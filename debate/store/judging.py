"""Writes of the human judging queue: campaigns, assignments and submitted judgments.

`judges/queue/` keeps the rules (who may judge what, the checks on a submission) and
composes the transactions (its `writing` lock; on PostgreSQL the row locks it takes
with its reads: SELECT ... FOR UPDATE on the judge's user row, the candidate debate and
the assignment); these functions write the rows inside them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from debate.store.models import Assignment, Campaign, Judgment
from debate.vocabulary import AssignmentStatus


def insert_campaign(
    session: Session,
    *,
    name: str,
    experiment_id: int,
    judgments_per_debate: int,
    mode: str,
    reveal_truth: bool,
    judges: list[str] | None,
    allow_repeats: bool,
) -> Campaign:
    """A new, active campaign; returns its row (flushed: the id is set)."""
    row = Campaign(
        name=name,
        experiment_id=experiment_id,
        judgments_per_debate=judgments_per_debate,
        mode=mode,
        reveal_truth=reveal_truth,
        judges=judges,
        active=True,
        allow_repeats=allow_repeats,
    )
    session.add(row)
    session.flush()
    return row


def set_campaign_active(session: Session, campaign_id: int, active: bool,
                        now: datetime) -> int:
    """Open or close a campaign (closed_at = now when closing); returns rows changed."""
    return session.execute(
        update(Campaign).where(Campaign.id == campaign_id)
        .values(active=active, closed_at=None if active else now)
    ).rowcount or 0


def insert_assignment(
    session: Session,
    *,
    campaign_id: int,
    debate_id: int,
    question_id: int,
    user_id: int,
    rounds_shown: int,
    created_at: datetime,
) -> Assignment:
    """A claimed debate, open for the judge; returns its row (flushed: the id is set, and
    the unique (campaign, debate, user) key is checked: IntegrityError on a lost race)."""
    row = Assignment(
        campaign_id=campaign_id,
        debate_id=debate_id,
        question_id=question_id,
        user_id=user_id,
        status=AssignmentStatus.OPEN,
        rounds_shown=rounds_shown,
        created_at=created_at,
    )
    session.add(row)
    session.flush()
    return row


def record_submission(session: Session, assignment: Assignment, final: bool, now: datetime,
                      **judgment: Any) -> Judgment:
    """The judge's judgment (Judgment attributes as keywords) and its assignment moved on
    in one flush: submitted at `now` when `final`, else one more round shown. Returns the
    judgment row (flushed: the id is set)."""
    row = Judgment(**judgment)
    session.add(row)
    if final:
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.submitted_at = now
    else:
        assignment.rounds_shown += 1
    session.flush()
    return row
