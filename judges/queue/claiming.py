"""Claiming: the judge's open assignment or an atomic claim of the next debate.

On PostgreSQL the judge's user row is locked first (one "next" per judge at a time)
and candidate debates are taken with SELECT ... FOR UPDATE SKIP LOCKED; the
assignment count is re-read after the lock is held, so two judges never both take a
debate's last slot. On SQLite the whole transaction runs under BEGIN IMMEDIATE. The
locks are taken by the reads here; the assignment row is written by
store.judging.insert_assignment in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from debate.protocols import Protocol
from debate.store import judging as writes
from debate.store.db import Store
from debate.store.models import Assignment, Debate, Judgment, Turn, User, utcnow
from debate.store.models import Question as QuestionRow
from debate.store.views import judged_rounds as store_judged_rounds
from debate.users import UserInfo
from debate.vocabulary import AssignmentStatus, CampaignMode, DebateStatus
from judges.queue.campaigns import CampaignInfo, _load_campaign, no_campaign
from judges.queue.common import AssignmentInfo, QueueError, _assignment_info
from judges.queue.progress import Progress, _progress
from judges.queue.view import JudgeView, _view_rows, _with_pixels
from judges.queue.writer import writing


def judged_rounds(protocol_spec: dict[str, Any]) -> int:
    """Rounds a judge steps through: 0 for protocols without rounds or image debates."""
    return store_judged_rounds(Protocol.from_dict(protocol_spec))


def open_assignment(store: Store, user_id: int, campaign_id: int) -> AssignmentInfo | None:
    with store.session() as session:
        row = session.scalar(
            select(Assignment)
            .where(
                Assignment.user_id == user_id,
                Assignment.campaign_id == campaign_id,
                Assignment.status == AssignmentStatus.OPEN,
            )
            .order_by(Assignment.id)
            .limit(1)
        )
        return _assignment_info(row) if row else None


def seen_question_keys(user_id: int, campaign: CampaignInfo):
    """The content keys of the questions this person has seen, as a subquery: assigned
    (submitted or not, revealed or not) in any campaign, judged anywhere, or argued as a
    debater, in any experiment or import. A campaign that allows repeats counts only
    its own assignments."""
    assigned = (
        select(QuestionRow.content_key)
        .join(Assignment, Assignment.question_id == QuestionRow.id)
        .where(Assignment.user_id == user_id)
    )
    if campaign.allow_repeats:
        return assigned.where(Assignment.campaign_id == campaign.id)
    judged = (
        select(QuestionRow.content_key)
        .join(Debate, Debate.question_id == QuestionRow.id)
        .join(Judgment, Judgment.debate_id == Debate.id)
        .where(Judgment.user_id == user_id)
    )
    debated = (
        select(QuestionRow.content_key)
        .join(Debate, Debate.question_id == QuestionRow.id)
        .join(Turn, Turn.debate_id == Debate.id)
        .where(Turn.user_id == user_id)
    )
    return union(assigned, judged, debated)


def _candidate_query(campaign: CampaignInfo, user_id: int, skip: set[int], postgres: bool):
    taken = (
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.campaign_id == campaign.id, Assignment.debate_id == Debate.id)
        .scalar_subquery()
    )
    seen = seen_question_keys(user_id, campaign)
    query = (
        select(Debate.id, Debate.question_id, Debate.protocol_spec)
        .join(QuestionRow, QuestionRow.id == Debate.question_id)
        .where(
            Debate.experiment_id == campaign.experiment_id,
            Debate.status == DebateStatus.DONE,
            taken < campaign.judgments_per_debate,
            QuestionRow.content_key.not_in(seen),
        )
        .order_by(Debate.id)
        .limit(1)
    )
    if skip:
        query = query.where(Debate.id.not_in(sorted(skip)))
    if postgres:
        query = query.with_for_update(of=Debate, skip_locked=True)
    return query


def _check_open(campaign: CampaignInfo, user: UserInfo) -> None:
    """A campaign that is closed or not open to this judge is answered as a missing one."""
    if not campaign.active or not campaign.allows(user):
        raise QueueError(no_campaign(campaign.id))


def _open_or_claim(
    session: Session, campaign: CampaignInfo, user: UserInfo, postgres: bool
) -> AssignmentInfo | None:
    if postgres:
        # One "next" per judge at a time: two tabs cannot claim two debates.
        session.execute(select(User.id).where(User.id == user.id).with_for_update())
    existing = session.scalar(
        select(Assignment)
        .where(
            Assignment.user_id == user.id,
            Assignment.campaign_id == campaign.id,
            Assignment.status == AssignmentStatus.OPEN,
        )
        .order_by(Assignment.id)
        .limit(1)
    )
    if existing is not None:
        return _assignment_info(existing)
    return _claim(session, campaign, user, postgres)


def next_assignment(
    store: Store, user: UserInfo, campaign: int | CampaignInfo
) -> AssignmentInfo | None:
    """The judge's open assignment in the campaign, else a newly claimed one; None when
    the campaign has nothing left for this judge."""
    return next_with_view(store, user, campaign, with_view=False)[0]


def next_with_view(
    store: Store, user: UserInfo, campaign: int | CampaignInfo, with_view: bool = True
) -> tuple[AssignmentInfo | None, JudgeView | None, Progress | None]:
    """next_assignment, plus what the judge sees and their progress, in as few round
    trips as possible: on PostgreSQL all in the claiming transaction; on SQLite the reads
    follow in one read transaction, so the process's write lock is held only to claim."""
    campaign_id = campaign.id if isinstance(campaign, CampaignInfo) else int(campaign)
    postgres = store.dialect == "postgresql"
    for _attempt in range(5):
        try:
            with writing(store) as session:
                info = _load_campaign(session, campaign_id)
                _check_open(info, user)
                a = _open_or_claim(session, info, user, postgres)
                if not with_view:
                    return a, None, None
                if postgres:
                    view = _view_rows(session, a) if a is not None else None
                    prog = _progress(session, store, user, info)
            if not postgres:
                with store.session() as session:
                    view = _view_rows(session, a) if a is not None else None
                    prog = _progress(session, store, user, info)
            return a, (_with_pixels(store, view) if view is not None else None), prog
        except IntegrityError:
            continue  # lost a race on the unique (campaign, debate, user) key; try again
    raise QueueError("the judging queue is busy; try again")


def _claim(
    session: Session, campaign: CampaignInfo, user: UserInfo, postgres: bool
) -> AssignmentInfo | None:
    skip: set[int] = set()
    while True:
        row = session.execute(_candidate_query(campaign, user.id, skip, postgres)).first()
        if row is None:
            return None
        debate_id, question_id, spec = row
        if postgres:
            # The row lock is ours now; count again in a fresh snapshot, because a judge
            # who held the lock a moment ago may have just taken the last slot.
            taken = session.scalar(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.campaign_id == campaign.id, Assignment.debate_id == debate_id)
            )
            if taken >= campaign.judgments_per_debate:
                skip.add(debate_id)
                continue
        rounds = judged_rounds(spec)
        first_shown = 1 if campaign.mode == CampaignMode.STEPPED and rounds > 0 else rounds
        row_a = writes.insert_assignment(
            session,
            campaign_id=campaign.id,
            debate_id=debate_id,
            question_id=question_id,
            user_id=user.id,
            rounds_shown=first_shown,
            created_at=utcnow(),
        )
        return _assignment_info(row_a)


def _owned_assignment(
    session: Session, user: UserInfo, assignment_id: Any, debate_id: Any, lock: bool
) -> Assignment:
    try:
        aid, did = int(assignment_id), int(debate_id)
    except (TypeError, ValueError):
        raise QueueError("assignment: no debate is open; press Next debate") from None
    query = select(Assignment).where(Assignment.id == aid)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None or row.user_id != user.id or row.debate_id != did:
        raise QueueError("assignment: this debate is not assigned to you")
    return row
