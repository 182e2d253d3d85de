"""What a judge sees: the blind view of a debate at the assignment's round (image
debates with their revealed pixels); never ground truth."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from debate.pixels.view import pixel_debate_view
from debate.store.db import Store
from debate.store.models import Campaign
from debate.store.views import load_facts
from debate.view import BlindView, ViewTurn, blind_view
from debate.vocabulary import AssignmentStatus, CampaignMode
from judges.queue.common import AssignmentInfo


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
    stepped = mode == CampaignMode.STEPPED and facts.rounds > 0
    return JudgeView(
        assignment_id=assignment.id,
        campaign=campaign_name,
        mode=mode,
        view=blind_view(facts, after_round=assignment.rounds_shown if stepped else None),
        submitted=assignment.status == AssignmentStatus.SUBMITTED,
    )


def _with_pixels(store: Store, view: JudgeView) -> JudgeView:
    """Image debates: the revealed pixels and the two claimed digits, in display order."""
    if view.view.family != "pixel":
        return view
    pix = pixel_debate_view(store, view.debate_id)
    shown = replace(view.view, answers=tuple(str(c) for c in pix.claims), turns=())
    return replace(view, pixel_png=pix.png, view=shown)
