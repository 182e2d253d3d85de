"""Campaigns: creating, listing, loading, opening and closing them, and who may judge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from debate.store import judging as writes
from debate.store.db import Store
from debate.store.models import Campaign, Experiment, User, as_utc, utcnow
from debate.users import UserInfo
from debate.vocabulary import JUDGING_ROLES, CampaignMode
from judges.queue.common import MODES, QueueError


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    experiment_id: int
    experiment: str
    judgments_per_debate: int
    mode: str
    reveal_truth: bool
    judges: tuple[str, ...] | None
    active: bool
    allow_repeats: bool = False
    closed_at: datetime | None = None

    def allows(self, user: UserInfo) -> bool:
        if user.role not in JUDGING_ROLES:
            return False
        return self.judges is None or user.name in self.judges


def _campaign_info(c: Campaign, experiment: str) -> CampaignInfo:
    return CampaignInfo(
        c.id,
        c.name,
        c.experiment_id,
        experiment,
        c.judgments_per_debate,
        c.mode,
        bool(c.reveal_truth),
        tuple(c.judges) if c.judges is not None else None,
        bool(c.active),
        bool(c.allow_repeats),
        as_utc(c.closed_at) if c.closed_at is not None else None,
    )


def create_campaign(
    store: Store,
    *,
    name: str,
    experiment: str,
    judges: Sequence[str] | None = None,
    judgments_per_debate: int = 1,
    mode: str = CampaignMode.WHOLE,
    reveal_truth: bool = True,
    allow_repeats: bool = False,
) -> CampaignInfo:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise QueueError("name: give a campaign name of 1-200 characters")
    if mode not in MODES:
        raise QueueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    if not isinstance(judgments_per_debate, int) or not 1 <= judgments_per_debate <= 100:
        raise QueueError("judgments_per_debate: must be an integer from 1 to 100")
    judge_list = sorted({j.strip() for j in judges if j.strip()}) if judges else None
    with store.session() as session:
        exp = session.scalar(select(Experiment).where(Experiment.name == experiment))
        if exp is None:
            raise QueueError(f"experiment: no experiment called {experiment!r}")
        if session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
            raise QueueError(f"name: a campaign called {name!r} already exists")
        if judge_list:
            found = dict(
                session.execute(
                    select(User.name, User.role).where(User.name.in_(judge_list))
                ).all()
            )
            for j in judge_list:
                if j not in found:
                    raise QueueError(f"judges: no user called {j!r}")
                if found[j] not in JUDGING_ROLES:
                    raise QueueError(f"judges: {j!r} is a {found[j]}, not a judge")
        row = writes.insert_campaign(
            session,
            name=name,
            experiment_id=exp.id,
            judgments_per_debate=judgments_per_debate,
            mode=mode,
            reveal_truth=reveal_truth,
            judges=judge_list,
            allow_repeats=allow_repeats,
        )
        return _campaign_info(row, exp.name)


def list_campaigns(store: Store, *, active_only: bool = False) -> list[CampaignInfo]:
    query = select(Campaign, Experiment.name).join(
        Experiment, Campaign.experiment_id == Experiment.id
    )
    if active_only:
        query = query.where(Campaign.active.is_(True))
    with store.session() as session:
        rows = session.execute(query.order_by(Campaign.id)).all()
    return [_campaign_info(c, e) for c, e in rows]


def _load_campaign(session: Session, campaign_id: int) -> CampaignInfo:
    row = session.execute(
        select(Campaign, Experiment.name)
        .join(Experiment, Campaign.experiment_id == Experiment.id)
        .where(Campaign.id == campaign_id)
    ).first()
    if row is None:
        raise QueueError(no_campaign(campaign_id))
    return _campaign_info(*row)


def no_campaign(campaign_id: object) -> str:
    """The one answer for a campaign that is missing, closed or not open to this judge:
    a judge learns nothing about campaigns that are not theirs, not even a name."""
    return f"campaign: no campaign with id {campaign_id} is open to you"


def get_campaign(store: Store, campaign_id: int) -> CampaignInfo:
    with store.session() as session:
        return _load_campaign(session, campaign_id)


def campaigns_for(store: Store, user: UserInfo) -> list[CampaignInfo]:
    return [c for c in list_campaigns(store, active_only=True) if c.allows(user)]


def set_campaign_active(store: Store, campaign_id: int, active: bool) -> None:
    """Close or reopen a campaign. Closing stops new claims at once; an assignment claimed
    before the close may still be submitted within its lease (ASSIGNMENT_LEASE)."""
    with store.session() as session:
        n = writes.set_campaign_active(session, campaign_id, active, utcnow())
    if not n:
        raise QueueError(f"campaign: no campaign with id {campaign_id}")
