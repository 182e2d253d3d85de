"""The one blind view of a debate that a judge gets, person or model.

Pure: no I/O, no torch. `blind_view(facts, ...)` is the only place that decides what a
judge sees before submitting; the web app's judging queue, `debate show` and the model
judges' prompts (and a best-of-N debater's preference judge) all render its value. The
rule lives here, once:

- no ground truth: `DebateFacts` does not even carry the correct answer, so a view
  cannot hold it; answers appear in the order shown to this judge;
- no honest/deceptive label and no agent, model or user names: speakers are "Debater A",
  "Debater B", "Consultant", "Judge", and a claim is the display position argued;
- no other judge's verdict: judgments are not part of the facts;
- the source only when the protocol lets the judge read it (expert judge);
- a verified quote is the source's own characters (its stored span), never the
  debater's; a quote without a valid stored span is shown unverified;
- failed turns are not shown; the naive and expert judges see no transcript; judging
  after round r shows the turns up to round r, without the judge questions asked after
  round r (those come after that judgment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from debate.quotes import QuoteMark, ShownSegment, checked_segments, quote_segments
from debate.vocabulary import SPEAKER_LABELS, DebateStatus, SeatRole

NO_TRANSCRIPT_FAMILIES = ("naive", "expert")


@dataclass(frozen=True)
class FactTurn:
    """A stored turn: its raw text and the quotes table's marks for it (by position).
    marks=None means the turn is not stored yet: its quotes are verified now."""

    role: str
    round: int
    kind: str
    text: str
    marks: tuple[QuoteMark, ...] | None = ()
    failed: bool = False


@dataclass(frozen=True)
class DebateFacts:
    """What the store holds about a debate that a judge may be shown some of. Holds no
    correct answer, no agent names and no judgments, by construction."""

    debate_id: int
    protocol: str
    family: str
    rounds: int  # rounds a judge can step through (0: none)
    judge_sees_source: bool
    question: str
    answers: tuple[str, ...]  # the question's own order
    answer_order: tuple[int, ...]  # the order shown to judges
    seats: tuple[tuple[str, int | None], ...]  # (role, answer index in question order)
    turns: tuple[FactTurn, ...]
    source: str | None
    source_title: str | None = None
    status: str = DebateStatus.DONE


@dataclass(frozen=True)
class ViewTurn:
    role: str
    speaker: str  # "Debater A", "Consultant", ...
    round: int
    kind: str  # speech | question | choice
    segments: tuple[ShownSegment, ...]


@dataclass(frozen=True)
class BlindView:
    """Everything a judge is shown of one debate before submitting."""

    debate_id: int
    protocol: str
    family: str
    rounds: int
    rounds_shown: int
    status: str
    question: str
    answers: tuple[str, ...]  # display order
    claims: tuple[tuple[str, int | None], ...]  # (speaker, display position argued)
    turns: tuple[ViewTurn, ...]
    source: str | None  # only when the protocol lets the judge read it
    source_title: str | None


def _shown_turns(facts: DebateFacts, after_round: int | None) -> tuple[ViewTurn, ...]:
    if facts.family in NO_TRANSCRIPT_FAMILIES:
        return ()
    out = []
    for t in facts.turns:
        if t.failed:
            continue
        if after_round is not None and (
            t.round > after_round or (t.kind == "question" and t.round >= after_round)
        ):
            continue
        segments = (
            checked_segments(t.text, facts.source) if t.marks is None
            else quote_segments(t.text, t.marks, facts.source)
        )
        out.append(ViewTurn(t.role, SPEAKER_LABELS.get(t.role, t.role), t.round, t.kind,
                            segments))
    return tuple(out)


def blind_view(facts: DebateFacts, *, after_round: int | None = None,
               order: Sequence[int] | None = None) -> BlindView:
    """The judge's view: the whole transcript (after_round=None) or up to `after_round`,
    with the answers in `order` (default: the debate's shown order)."""
    shown = tuple(int(i) for i in (facts.answer_order if order is None else order))
    if sorted(shown) != list(range(len(facts.answers))):
        raise ValueError(f"order: {shown} is not an order of {len(facts.answers)} answers")
    claims = tuple(
        (SPEAKER_LABELS.get(role, role), shown.index(ans) if ans in shown else None)
        for role, ans in sorted(facts.seats, key=lambda s: s[0])
        if role != SeatRole.JUDGE
    )
    return BlindView(
        debate_id=facts.debate_id,
        protocol=facts.protocol,
        family=facts.family,
        rounds=facts.rounds,
        rounds_shown=facts.rounds if after_round is None else after_round,
        status=facts.status,
        question=facts.question,
        answers=tuple(str(facts.answers[i]) for i in shown),
        claims=claims,
        turns=_shown_turns(facts, after_round),
        source=facts.source if facts.judge_sees_source else None,
        source_title=facts.source_title if facts.judge_sees_source else None,
    )
