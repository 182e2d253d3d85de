"""Shared by the judging queue: its limits, its error, the clock, assignment records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from debate.errors import UserError
from debate.store.models import Assignment, as_utc
from debate.vocabulary import CampaignMode

MODES = tuple(m.value for m in CampaignMode)  # plain strings: click and gradio choices
MIN_PERCENT = 1.0
MAX_PERCENT = 99.0
MAX_EXPLANATION = 5000
MAX_COMMENT = 2000
LIKERT_KEYS = ("clarity", "evidence", "confidence")


class QueueError(UserError):
    """A refused judging action; the message is shown to the person."""


@dataclass(frozen=True)
class AssignmentInfo:
    id: int
    campaign_id: int
    debate_id: int
    question_id: int
    user_id: int
    status: str
    rounds_shown: int
    created_at: datetime


def _assignment_info(a: Assignment) -> AssignmentInfo:
    return AssignmentInfo(
        a.id, a.campaign_id, a.debate_id, a.question_id, a.user_id, a.status, a.rounds_shown,
        as_utc(a.created_at),
    )
