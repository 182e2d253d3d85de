"""Progress counts: a judge's own and the campaign's totals (cached briefly), and a
campaign's status for its admin."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from debate.store.db import Store
from debate.store.models import Assignment, Debate, User
from debate.users import UserInfo
from debate.vocabulary import AssignmentStatus, DebateStatus
from judges.queue.campaigns import CampaignInfo, _load_campaign, get_campaign


@dataclass
class Progress:
    mine: int
    mine_possible: int
    campaign_done: int
    campaign_total: int


# Debates finish rarely while people judge; counting 100k of them on every click is waste.
TOTALS_SECONDS = 60.0
_TOTALS: dict[tuple[str, int], tuple[float, int, int]] = {}


def _campaign_totals(
    store: Store, campaign: CampaignInfo, session: Session | None = None
) -> tuple[int, int]:
    """(distinct questions, judgeable debates); cached for a few seconds."""
    key = (store.url, campaign.id)
    hit = _TOTALS.get(key)
    if hit and time.monotonic() - hit[0] < TOTALS_SECONDS:
        return hit[1], hit[2]
    query = select(func.count(), func.count(func.distinct(Debate.question_id))).where(
        Debate.experiment_id == campaign.experiment_id, Debate.status == DebateStatus.DONE
    )
    if session is None:
        with store.session() as own:
            debates, questions = own.execute(query).one()
    else:
        debates, questions = session.execute(query).one()
    _TOTALS[key] = (time.monotonic(), questions, debates)
    return questions, debates


def _progress(session: Session, store: Store, user: UserInfo, campaign: CampaignInfo) -> Progress:
    questions, debates = _campaign_totals(store, campaign, session)
    mine, done = session.execute(
        select(func.count().filter(Assignment.user_id == user.id), func.count())
        .where(Assignment.campaign_id == campaign.id, Assignment.status == AssignmentStatus.SUBMITTED)
    ).one()
    return Progress(int(mine or 0), questions, int(done or 0),
                    debates * campaign.judgments_per_debate)


def progress(store: Store, user: UserInfo, campaign: int | CampaignInfo) -> Progress:
    with store.session() as session:
        if not isinstance(campaign, CampaignInfo):
            campaign = _load_campaign(session, campaign)
        return _progress(session, store, user, campaign)


@dataclass
class CampaignStatus:
    campaign: CampaignInfo
    assigned: int
    submitted: int
    total: int
    judges: dict[str, int] = field(default_factory=dict)


def campaign_status(store: Store, campaign_id: int) -> CampaignStatus:
    campaign = get_campaign(store, campaign_id)
    _questions, debates = _campaign_totals(store, campaign)
    with store.session() as session:
        rows = session.execute(
            select(User.name, Assignment.status, func.count())
            .join(User, Assignment.user_id == User.id)
            .where(Assignment.campaign_id == campaign.id)
            .group_by(User.name, Assignment.status)
        ).all()
    judges: dict[str, int] = {}
    assigned = submitted = 0
    for name, status, n in rows:
        assigned += n
        if status == AssignmentStatus.SUBMITTED:
            submitted += n
            judges[name] = judges.get(name, 0) + n
    return CampaignStatus(campaign, assigned, submitted,
                          debates * campaign.judgments_per_debate, judges)
