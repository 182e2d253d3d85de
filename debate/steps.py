"""Applying a protocol to a debate: protocol state in, requests and turn rows out.

Pure functions, no I/O: which schedule step a debate is at and which of its slots are
still to speak (`step_index`, `pending_slots`), what each speaker is shown
(`build_request`, with `request_sha256` as its digest), how an open protocol's choice
turn is read and what it means for the seats (`parse_choice`, `choice_seat_answers`),
and how an agent's result becomes the row the store writes (`turn_write`, `quote_rows`). The engine, the human-turn service and the benchmarks share
them, so a turn is built the same way whoever speaks.
"""

from __future__ import annotations

import hashlib
import re

from debate.agents.base import TranscriptTurn, TurnRequest, TurnResult
from debate.protocols import JUDGE, Limits, Slot, opposite_seat_answer
from debate.quotes import SourceIndex, truncate_words, verify_quotes
from debate.store.runs import DebateState, protocol_schedule
from debate.store.turns import TurnWrite
from debate.vocabulary import TurnStatus


def step_index(state: DebateState) -> int | None:
    """Index of the first schedule step with a missing turn; None when all are done."""
    schedule = protocol_schedule(state.protocol)
    if not state.turns:
        return 0 if schedule else None
    done = {(t.round, t.role) for t in state.turns}
    for i, step in enumerate(schedule):
        for slot in step:
            if (slot.round, slot.role) not in done:
                return i
    return None


def pending_slots(state: DebateState, index: int) -> list[Slot]:
    step = protocol_schedule(state.protocol)[index]
    if not state.turns:
        return list(step)
    done = {(t.round, t.role) for t in state.turns}
    return [s for s in step if (s.round, s.role) not in done]


def visible_transcript(state: DebateState, index: int) -> tuple[TranscriptTurn, ...]:
    """Turns from earlier steps: turns within one step do not see each other."""
    return tuple(
        TranscriptTurn(t.role, t.round, t.kind, t.text) for t in state.turns if t.step < index
    )


def seat_limits(state: DebateState, role: str) -> Limits:
    """The protocol's limits, tightened by the seat's agent's own word limit if it has one."""
    seat = state.seats.get(role)
    return state.protocol.limits.tightened(seat.max_words if seat is not None else None)


def build_request(state: DebateState, slot: Slot, index: int) -> TurnRequest:
    shown_answers = tuple(state.answers[i] for i in state.answer_order)
    seat = state.seats.get(slot.role)
    my_answer = None
    if slot.kind == "speech" and seat is not None and seat.answer_index is not None:
        my_answer = state.answer_order.index(seat.answer_index)
    sees = state.protocol.sees_source(slot.role)
    return TurnRequest(
        debate_id=state.id,
        question_id=state.question_id,
        question=state.question,
        answers=shown_answers,
        my_answer=my_answer,
        role=slot.role,
        round=slot.round,
        rounds=state.protocol.rounds,
        kind=slot.kind,
        protocol=state.protocol.name,
        transcript=visible_transcript(state, index),
        source=state.source if sees else None,
        source_title=state.source_title if sees else None,
        limits=seat_limits(state, slot.role),
        seed=state.seed + 7919 * index,
    )


def request_sha256(request: TurnRequest) -> str:
    """A digest of everything the speaker was shown, for agents that do not report it."""
    parts = [request.question, *request.answers, str(request.my_answer), request.role,
             str(request.round), request.kind, request.source or ""]
    for t in request.transcript:
        parts.append(f"{t.role}|{t.round}|{t.kind}|{t.text}")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def parse_choice(result: TurnResult, shown_answers: tuple[str, ...]) -> int | None:
    """The display position an open-protocol agent chose, or None if it is unclear."""
    if isinstance(result.meta.get("choice"), int) and 0 <= result.meta["choice"] < 2:
        return result.meta["choice"]
    text = result.text.strip().lower()
    hits = [i for i, a in enumerate(shown_answers) if a.strip().lower() in text]
    if len(hits) == 1:
        return hits[0]
    m = re.search(r"\b(?:answer|choose|choice|side)\s*[:\-]?\s*\(?([ab12])\)?\b", text)
    if m:
        return {"a": 0, "1": 0, "b": 1, "2": 1}[m.group(1)]
    return None


def choice_seat_answers(state: DebateState, chooser: str, chosen: int) -> dict[str, int]:
    """Seat answers after an open protocol's choice turn: the chooser argues `chosen` (an
    index into the question's answers), every other debater seat the other answer."""
    return opposite_seat_answer(
        {r: s.answer_index for r, s in state.seats.items() if r != JUDGE}, chooser, chosen
    )


def quote_rows(text: str, source: str | SourceIndex | None) -> list[dict]:
    """The quotes table's rows (without turn_id) for the quotes of one turn."""
    return [
        {
            "position": pos,
            "text": check.text,
            "verified": check.verified,
            "source_start": check.start,
            "source_end": check.end,
            "fuzzy_score": check.fuzzy,
        }
        for pos, check in enumerate(verify_quotes(text, source))
    ]


def turn_write(
    worker: str,
    state: DebateState,
    slot: Slot,
    index: int,
    agent_id: int,
    request: TurnRequest,
    result: TurnResult,
    latency_ms: float,
) -> TurnWrite:
    """The turns row (a TurnWrite, quotes still to verify) for an agent's result: a speech
    over the seat's word limit is cut to it and marked truncated (the raw text kept)."""
    text = result.text if result.text is not None else ""
    status = result.status
    meta = dict(result.meta)
    meta["worker"] = worker
    if slot.kind == "speech" and status != TurnStatus.FAILED:
        # the seat's limits, as its agent was told them in the request
        text, cut = truncate_words(text, request.limits.max_words)
        if cut:
            status = TurnStatus.TRUNCATED
            meta["raw_text"] = result.text
    if result.error:
        meta["error"] = result.error
    return TurnWrite(
        debate_id=state.id,
        step=index,
        round=slot.round,
        role=slot.role,
        kind=slot.kind,
        agent_id=agent_id,
        user_id=result.user_id,
        text=text,
        status=status,
        shown=result.shown,
        shown_sha256=result.shown_sha256 or request_sha256(request),
        template_version=result.template_version,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        latency_ms=latency_ms,
        candidates=result.candidates,
        meta=meta,
        quotes=[],
        activations=result.activations if status != TurnStatus.FAILED else None,
    )
