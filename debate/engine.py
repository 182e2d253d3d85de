"""The engine: advances many debates at once, one batched call per agent per step.

Each loop gathers the next pending slots of every claimed debate, groups them by agent,
calls each agent once with the whole batch, verifies quotes, and writes the step's turns
in one transaction. A killed run loses at most the step in flight; on restart the stored
turns say where each debate stands.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from debate.agents.base import Debater, TranscriptTurn, TurnRequest, TurnResult
from debate.protocols import JUDGE, Slot, opposite_seat_answer
from debate.quotes import quoted_word_count, source_index, truncate_words, verify_quotes
from debate.store.db import Store
from debate.store.runs import (
    DebateState,
    DebateUpdate,
    StoredTurn,
    TurnWrite,
    claim_debates,
    load_states,
    release_debates,
    write_step,
)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class RunStats:
    turns: int = 0
    debates_done: int = 0
    debates_failed: int = 0
    debates_waiting: int = 0
    steps: int = 0
    seconds: float = 0.0
    lost_leases: int = 0

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


@dataclass
class EngineOptions:
    worker: str = field(default_factory=default_worker_id)
    claim_size: int = 100_000  # debates leased at once; workers take smaller chunks
    lease_seconds: float = 300.0
    stop_after_steps: int | None = None  # for tests: stop early, as if killed


ProgressHook = Callable[[RunStats, int], None]


def step_index(state: DebateState) -> int | None:
    """Index of the first schedule step with a missing turn; None when all are done."""
    done = {(t.round, t.role) for t in state.turns}
    for i, step in enumerate(state.protocol.schedule()):
        if any((slot.round, slot.role) not in done for slot in step):
            return i
    return None


def pending_slots(state: DebateState, index: int) -> list[Slot]:
    done = {(t.round, t.role) for t in state.turns}
    step = state.protocol.schedule()[index]
    return [s for s in step if (s.round, s.role) not in done]


def visible_transcript(state: DebateState, index: int) -> tuple[TranscriptTurn, ...]:
    """Turns from earlier steps: turns within one step do not see each other."""
    return tuple(
        TranscriptTurn(t.role, t.round, t.kind, t.text) for t in state.turns if t.step < index
    )


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
        limits=state.protocol.limits,
        seed=state.seed + 7919 * index,
    )


def request_sha256(request: TurnRequest) -> str:
    """A digest of everything the speaker was shown, for agents that do not report it."""
    h = hashlib.sha256()
    for part in (request.question, *request.answers, str(request.my_answer), request.role,
                 str(request.round), request.kind, request.source or ""):
        h.update(part.encode())
        h.update(b"\x00")
    for t in request.transcript:
        h.update(f"{t.role}|{t.round}|{t.kind}|".encode())
        h.update(t.text.encode())
        h.update(b"\x00")
    return h.hexdigest()


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


class Engine:
    def __init__(
        self,
        store: Store,
        agents: dict[int, Debater],
        options: EngineOptions | None = None,
        progress: ProgressHook | None = None,
    ):
        self.store = store
        self.agents = agents
        self.options = options or EngineOptions()
        self.progress = progress
        self.stats = RunStats()

    def run(self, experiment_id: int) -> RunStats:
        """Run until no claimable debate is left in the experiment."""
        start = time.perf_counter()
        opts = self.options
        try:
            while True:
                ids = claim_debates(
                    self.store, experiment_id, opts.worker, opts.claim_size, opts.lease_seconds
                )
                if not ids:
                    break
                states = load_states(self.store, ids)
                try:
                    stopped = self._advance(states, start)
                finally:
                    release_debates(self.store, opts.worker, ids)
                if stopped:
                    break
        finally:
            self.stats.seconds = time.perf_counter() - start
        return self.stats

    def _advance(self, states: list[DebateState], start: float) -> bool:
        active = [s for s in states if step_index(s) is not None]
        for s in states:
            if step_index(s) is None:
                # complete but not marked done (e.g. killed between write and status)
                write_step(self.store, self.options.worker, [],
                           [DebateUpdate(s.id, len(s.protocol.schedule()), "done")],
                           self.options.lease_seconds)
                self.stats.debates_done += 1
        while active:
            if (
                self.options.stop_after_steps is not None
                and self.stats.steps >= self.options.stop_after_steps
            ):
                return True
            active = self._one_step(active)
            self.stats.steps += 1
            self.stats.seconds = time.perf_counter() - start
            if self.progress:
                self.progress(self.stats, len(active))
        return False

    def _one_step(self, active: list[DebateState]) -> list[DebateState]:
        by_agent: dict[int | None, list[tuple[DebateState, Slot, int, TurnRequest]]] = (
            defaultdict(list)
        )
        for state in active:
            index = step_index(state)
            assert index is not None
            for slot in pending_slots(state, index):
                seat = state.seats.get(slot.role)
                agent_id = seat.agent_id if seat else None
                by_agent[agent_id].append((state, slot, index, build_request(state, slot, index)))

        writes: list[TurnWrite] = []
        new_turns: dict[int, list[StoredTurn]] = defaultdict(list)
        failed: dict[int, str] = {}
        waiting: set[int] = set()
        choices: dict[int, dict[str, int]] = {}
        for agent_id, items in by_agent.items():
            agent = self.agents.get(agent_id) if agent_id is not None else None
            if agent is None:
                for state, slot, _, _ in items:
                    failed[state.id] = f"no agent loaded for seat {slot.role} (agent id {agent_id})"
                continue
            t0 = time.perf_counter()
            results = agent.respond([it[3] for it in items])
            if len(results) != len(items):
                raise RuntimeError(
                    f"agent {agent.identity.name} returned {len(results)} results "
                    f"for {len(items)} requests"
                )
            latency = (time.perf_counter() - t0) * 1000 / max(len(items), 1)
            for (state, slot, index, req), result in zip(items, results):
                if result.status == "waiting":
                    waiting.add(state.id)
                    continue
                write = self._turn_write(state, slot, index, agent_id, req, result, latency)
                if slot.kind == "choice" and result.status != "failed":
                    pick = parse_choice(result, req.answers)
                    if pick is None:
                        pick = state.seed % 2
                        write.meta["choice_unparsed"] = True
                    chosen = state.answer_order[pick]
                    write.meta["choice"] = chosen
                    choices[state.id] = opposite_seat_answer(
                        {r: s.answer_index for r, s in state.seats.items() if r != JUDGE},
                        slot.role,
                        chosen,
                    )
                writes.append(write)
                if result.status == "failed":
                    failed[state.id] = result.error or "turn failed"
                new_turns[state.id].append(
                    StoredTurn(index, slot.round, slot.role, slot.kind, write.text, write.status)
                )

        updates: list[DebateUpdate] = []
        still_active: list[DebateState] = []
        for state in active:
            if state.id in failed:
                updates.append(
                    DebateUpdate(state.id, len(_steps_done(state)), "failed", failed[state.id])
                )
                self.stats.debates_failed += 1
                continue
            state.turns.extend(new_turns.get(state.id, []))
            for role, answer in choices.get(state.id, {}).items():
                state.seats[role].answer_index = answer
            nxt = step_index(state)
            if state.id in waiting:
                status = "waiting_human"
                self.stats.debates_waiting += 1
            elif nxt is None:
                status = "done"
                self.stats.debates_done += 1
            else:
                status = "running"
                still_active.append(state)
            updates.append(
                DebateUpdate(state.id, nxt if nxt is not None else len(state.protocol.schedule()),
                             status, None, choices.get(state.id, {}))
            )
        lost = write_step(
            self.store, self.options.worker, writes, updates, self.options.lease_seconds
        )
        self.stats.turns += sum(1 for w in writes if w.debate_id not in lost)
        self.stats.lost_leases += len(lost)
        return [s for s in still_active if s.id not in lost]

    def _turn_write(
        self,
        state: DebateState,
        slot: Slot,
        index: int,
        agent_id: int,
        request: TurnRequest,
        result: TurnResult,
        latency_ms: float,
    ) -> TurnWrite:
        text = result.text if result.text is not None else ""
        status = result.status
        meta = dict(result.meta)
        limits = state.protocol.limits
        if slot.kind == "speech" and status != "failed":
            text, cut = truncate_words(text, limits.max_words)
            if cut:
                status = "truncated"
                meta["raw_text"] = result.text
            if limits.max_quoted_words is not None:
                quoted = quoted_word_count(text)
                if quoted > limits.max_quoted_words:
                    meta["over_quote_limit"] = quoted
        if result.error:
            meta["error"] = result.error
        quotes = []
        if slot.kind in ("speech", "choice") and status != "failed":
            src = source_index(state.source) if state.source else None
            for pos, check in enumerate(verify_quotes(text, src)):
                quotes.append(
                    {
                        "position": pos,
                        "text": check.text,
                        "verified": check.verified,
                        "source_start": check.start,
                        "source_end": check.end,
                        "fuzzy_score": check.fuzzy,
                    }
                )
        shown_sha256 = result.shown_sha256 or request_sha256(request)
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
            shown_sha256=shown_sha256,
            template_version=result.template_version,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=latency_ms,
            candidates=result.candidates,
            meta=meta,
            quotes=quotes,
        )


def _steps_done(state: DebateState) -> list[int]:
    index = step_index(state)
    n = len(state.protocol.schedule())
    return list(range(n if index is None else index))
