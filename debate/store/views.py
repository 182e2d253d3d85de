"""Reading what a judge may be shown of debates: `DebateFacts` for debate.view.

One read for the web queue, `debate show` and the model judges. The correct answer, the
agents and the judgments are not read at all, so nothing downstream can leak them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from debate.protocols import Protocol
from debate.quotes import QuoteMark
from debate.store.models import Debate, Document, Quote, Seat, Turn
from debate.store.models import Question as QuestionRow
from debate.view import DebateFacts, FactTurn
from debate.vocabulary import TurnStatus

CHUNK = 500


def judged_rounds(protocol: Protocol) -> int:
    """Rounds a judge steps through: 0 for protocols without rounds and image debates."""
    return 0 if protocol.family == "pixel" else protocol.rounds


def load_facts(session: Session, debate_ids: Sequence[int]) -> dict[int, DebateFacts]:
    """DebateFacts of each debate that exists (failed turns included, marked failed)."""
    out: dict[int, DebateFacts] = {}
    for i in range(0, len(debate_ids), CHUNK):
        out.update(_load_chunk(session, list(debate_ids[i : i + CHUNK])))
    return out


def _load_chunk(session: Session, ids: list[int]) -> dict[int, DebateFacts]:
    rows = session.execute(
        select(Debate.id, Debate.protocol, Debate.protocol_spec, Debate.answer_order,
               Debate.status, QuestionRow.text, QuestionRow.answers, Document.text,
               Document.title)
        .join(QuestionRow, QuestionRow.id == Debate.question_id)
        .outerjoin(Document, Document.id == QuestionRow.document_id)
        .where(Debate.id.in_(ids))
    ).all()
    seats: dict[int, list[tuple[str, int | None]]] = {}
    for did, role, ans in session.execute(
        select(Seat.debate_id, Seat.role, Seat.answer_index).where(Seat.debate_id.in_(ids))
    ):
        seats.setdefault(did, []).append((role, ans))
    marks: dict[int, dict[int, QuoteMark]] = {}
    for tid, pos, verified, start, end in session.execute(
        select(Quote.turn_id, Quote.position, Quote.verified, Quote.source_start,
               Quote.source_end)
        .join(Turn, Turn.id == Quote.turn_id)
        .where(Turn.debate_id.in_(ids))
    ):
        marks.setdefault(tid, {})[pos] = QuoteMark(bool(verified), start, end)
    turns: dict[int, list[FactTurn]] = {}
    for tid, did, role, rnd, kind, text, status in session.execute(
        select(Turn.id, Turn.debate_id, Turn.role, Turn.round, Turn.kind, Turn.text,
               Turn.status)
        .where(Turn.debate_id.in_(ids))
        .order_by(Turn.debate_id, Turn.step, Turn.id)
    ):
        by_pos = marks.get(tid, {})
        # marks by position; a missing position is an unverified quote
        ordered = tuple(by_pos.get(p, QuoteMark(False, None, None))
                        for p in range(max(by_pos) + 1)) if by_pos else ()
        turns.setdefault(did, []).append(
            FactTurn(role, rnd, kind, text, ordered, status == TurnStatus.FAILED))
    out = {}
    for did, name, spec, order, status, qtext, answers, source, title in rows:
        proto = Protocol.from_dict(spec)
        out[did] = DebateFacts(
            debate_id=did,
            protocol=name,
            family=proto.family,
            rounds=judged_rounds(proto),
            judge_sees_source=proto.judge_sees_source,
            question=qtext,
            answers=tuple(str(a) for a in answers),
            answer_order=tuple(int(i) for i in order),
            seats=tuple(seats.get(did, ())),
            turns=tuple(turns.get(did, ())),
            source=source,
            source_title=title,
            status=status,
        )
    return out
