"""The human judging queue: campaigns, atomic "next debate", judgments, feedback, progress.

`next_assignment` hands a judge one debate of a campaign so that no debate gets more
assignments than the campaign's `judgments_per_debate` and no judge gets a question
they were already given (both answer orders of a question share its question id).
An open assignment is returned again until it is submitted, so a page refresh shows the
same debate.

Concurrency: on PostgreSQL the judge's user row is locked first (one "next" per judge at a
time) and candidate debates are taken with SELECT ... FOR UPDATE SKIP LOCKED; the
assignment count is re-read after the lock is held (a fresh READ COMMITTED snapshot), so
two judges never both take a debate's last slot. On SQLite the whole transaction runs
under BEGIN IMMEDIATE (store.write_session), which serialises writers.

Blinding holds across experiments: "a question the judge has seen" is keyed on the
question's content (questions.content_key: text, answers, source), and counts every
assignment in any campaign (revealed or not), every judgment the person made and every
debate they argued, unless the campaign allows repeats (then only its own assignments).

A closed campaign hands out nothing new; an assignment claimed before the close may be
submitted within ASSIGNMENT_LEASE of the judge's last action on it; everything else is
refused. A campaign that is missing, closed or not open to a judge gets one answer,
which names nothing (`no_campaign`).

Nothing here returns ground truth except `SubmitResult.reveal`, after the final submit
and only when the campaign allows it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from debate.agents.base import AgentIdentity
from debate.errors import UserError
from debate.protocols import Protocol
from debate.store.db import Store
from debate.store.experiments import agent_id
from debate.store.models import (
    Assignment,
    Campaign,
    Debate,
    Experiment,
    Feedback,
    Judgment,
    Turn,
    User,
)
from debate.store.models import Question as QuestionRow
from debate.store.views import judged_rounds as store_judged_rounds
from debate.store.views import load_facts
from debate.users import UserInfo
from debate.view import BlindView, ViewTurn, blind_view

MODES = ("whole", "stepped")
MIN_PERCENT = 1.0
MAX_PERCENT = 99.0
MAX_EXPLANATION = 5000
MAX_COMMENT = 2000
LIKERT_KEYS = ("clarity", "evidence", "confidence")
ROLE_LABELS = {"A": "Debater A", "B": "Debater B", "consultant": "Consultant", "judge": "Judge"}


class QueueError(UserError):
    """A refused judging action; the message is shown to the person."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- transactions

_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


@contextmanager
def writing(store: Store) -> Iterator[Session]:
    """store.write_session(), and on SQLite one writer per process at a time.

    SQLite's busy handler sleeps in growing steps (up to 100 ms) while another connection
    holds the write lock; threads of one web server queue on a Python lock instead and
    take BEGIN IMMEDIATE only when it is theirs, so a burst of judges costs no sleeps.
    Other processes still serialise through BEGIN IMMEDIATE.
    """
    if store.dialect != "sqlite":
        with store.write_session() as session:
            yield session
        return
    with _SQLITE_WRITERS_GUARD:
        lock = _SQLITE_WRITERS.setdefault(store.url, threading.Lock())
    with lock, store.write_session() as session:
        yield session


# ---------------------------------------------------------------- campaigns


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
        if user.role not in ("judge", "admin"):
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
        _aware(c.closed_at) if c.closed_at is not None else None,
    )


def create_campaign(
    store: Store,
    *,
    name: str,
    experiment: str,
    judges: Sequence[str] | None = None,
    judgments_per_debate: int = 1,
    mode: str = "whole",
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
                if found[j] not in ("judge", "admin"):
                    raise QueueError(f"judges: {j!r} is a {found[j]}, not a judge")
        row = Campaign(
            name=name,
            experiment_id=exp.id,
            judgments_per_debate=judgments_per_debate,
            mode=mode,
            reveal_truth=reveal_truth,
            judges=judge_list,
            active=True,
            allow_repeats=allow_repeats,
        )
        session.add(row)
        session.flush()
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
        n = session.execute(
            update(Campaign).where(Campaign.id == campaign_id)
            .values(active=active, closed_at=None if active else utcnow())
        ).rowcount
    if not n:
        raise QueueError(f"campaign: no campaign with id {campaign_id}")


# ---------------------------------------------------------------- assignments


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
        _aware(a.created_at),
    )


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
                Assignment.status == "open",
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
            Debate.status == "done",
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
            Assignment.status == "open",
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
        first_shown = 1 if campaign.mode == "stepped" and rounds > 0 else rounds
        row_a = Assignment(
            campaign_id=campaign.id,
            debate_id=debate_id,
            question_id=question_id,
            user_id=user.id,
            status="open",
            rounds_shown=first_shown,
            created_at=utcnow(),
        )
        session.add(row_a)
        session.flush()
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


# ---------------------------------------------------------------- what a judge sees


@dataclass(frozen=True)
class JudgeView:
    """Everything shown to a judge before submitting: the one blind view of the debate
    (debate.view: no correct answer, no honest/deceptive label, no agent names, no other
    judgments, verified quotes in the source's own characters) and the assignment's
    place in the campaign."""

    assignment_id: int
    campaign: str
    mode: str
    view: BlindView
    pixel_png: bytes | None = None
    submitted: bool = False

    @property
    def debate_id(self) -> int:
        return self.view.debate_id

    @property
    def answers(self) -> tuple[str, ...]:
        return self.view.answers

    @property
    def turns(self) -> tuple[ViewTurn, ...]:
        return self.view.turns

    @property
    def rounds_shown(self) -> int:
        return self.view.rounds_shown

    @property
    def total_rounds(self) -> int:
        return self.view.rounds


def judge_view(store: Store, assignment: AssignmentInfo) -> JudgeView:
    with store.session() as session:
        view = _view_rows(session, assignment)
    return _with_pixels(store, view)


def _view_rows(session: Session, assignment: AssignmentInfo) -> JudgeView:
    campaign_name, mode = session.execute(
        select(Campaign.name, Campaign.mode).where(Campaign.id == assignment.campaign_id)
    ).one()
    facts = load_facts(session, [assignment.debate_id])[assignment.debate_id]
    stepped = mode == "stepped" and facts.rounds > 0
    return JudgeView(
        assignment_id=assignment.id,
        campaign=campaign_name,
        mode=mode,
        view=blind_view(facts, after_round=assignment.rounds_shown if stepped else None),
        submitted=assignment.status == "submitted",
    )


def _with_pixels(store: Store, view: JudgeView) -> JudgeView:
    """Image debates: the revealed pixels and the two claimed digits, in display order."""
    if view.view.family != "pixel":
        return view
    try:
        from debate.pixels.view import pixel_debate_view
    except ImportError:
        raise QueueError(
            "image debates cannot be shown: the debate.pixels module is not installed"
        ) from None
    pix = pixel_debate_view(store, view.debate_id)
    shown = replace(view.view, answers=tuple(str(c) for c in pix.claims), turns=())
    return replace(view, pixel_png=pix.png, view=shown)


# ---------------------------------------------------------------- submitting


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
    claimed = _aware(a.created_at)
    active_since = _aware(last) if last is not None else claimed
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
        if a.status != "open":
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
        stepped = campaign.mode == "stepped" and total > 0
        final = not stepped or a.rounds_shown >= total
        started = _aware(last) if last is not None else _aware(a.created_at)
        judgment = Judgment(
            debate_id=a.debate_id,
            judge_agent_id=human_judge_agent(session, user),
            user_id=user.id,
            assignment_id=a.id,
            kind="final" if final else "stepped",
            after_round=a.rounds_shown if stepped else None,
            probabilities=probs,
            shown_order=order,
            explanation=text,
            time_taken_ms=max(0.0, (now - started).total_seconds() * 1000.0),
            meta={"campaign_id": campaign.id, "mode": campaign.mode, "source": "web"},
            created_at=now,
        )
        session.add(judgment)
        if final:
            a.status = "submitted"
            a.submitted_at = now
        else:
            a.rounds_shown += 1
        session.flush()
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
        if j is None or j.user_id != user.id or j.kind != "final":
            raise QueueError("feedback: this judgment is not yours")
        if session.scalar(select(Feedback.id).where(Feedback.judgment_id == jid)) is not None:
            raise QueueError("feedback: already given for this judgment")
        row = Feedback(
            debate_id=j.debate_id,
            judgment_id=jid,
            user_id=user.id,
            respondent=user.name,
            answers=answers,
        )
        session.add(row)
        session.flush()
        return row.id


# ---------------------------------------------------------------- progress


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
        Debate.experiment_id == campaign.experiment_id, Debate.status == "done"
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
        .where(Assignment.campaign_id == campaign.id, Assignment.status == "submitted")
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
        if status == "submitted":
            submitted += n
            judges[name] = judges.get(name, 0) + n
    return CampaignStatus(campaign, assigned, submitted,
                          debates * campaign.judgments_per_debate, judges)
