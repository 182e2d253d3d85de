"""The engine: advances many debates at once, one batched call per agent per step.

Each loop gathers the next pending slots of every claimed debate, groups them by agent,
calls each agent once with the whole batch, verifies quotes, and writes the step's turns
in one transaction. A killed run loses at most the step in flight; on restart the stored
turns say where each debate stands.

While agents work, a heartbeat thread keeps this worker's leases alive, so a step longer
than the lease does not let another worker take over debates that are still being run.
An agent that raises fails the debates of its batch (the error is stored with them and
nothing of the step is half-written for them); a rerun retries failed debates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from debate.agents.base import Debater, TranscriptTurn, TurnRequest, TurnResult
from debate.protocols import JUDGE, Limits, Slot, opposite_seat_answer
from debate.quotes import SourceIndex, truncate_words, verify_quotes
from debate.store.db import Store
from debate.store.runs import (
    DebateState,
    DebateUpdate,
    StoredTurn,
    TurnWrite,
    active_counts,
    claim_debates,
    load_states,
    protocol_schedule,
    release_debates,
    renew_leases,
    write_step,
)

log = logging.getLogger(__name__)
_QUOTE_TAG = re.compile(r"<\s*/?\s*quote\s*>", re.IGNORECASE)


def default_worker_id() -> str:
    """host:pid:tag. The host and pid let a rerun on this host see that a killed run's
    leases are dead at once (see store.runs.dead_local_owners)."""
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
    waited_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # the first few agent errors

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


@dataclass
class EngineOptions:
    worker: str = field(default_factory=default_worker_id)
    claim_size: int = 100_000  # debates leased at once; workers take smaller chunks
    lease_seconds: float = 300.0
    stop_after_steps: int | None = None  # for tests: stop early, as if killed
    # While other workers hold the experiment's last debates: wait for them to finish
    # or for their leases to expire (True), or stop (False).
    wait_for_others: bool = True
    poll_seconds: float | None = None  # default: a quarter of the lease, at most 2 s
    # Quote-check indexes kept across steps and engines, by source text (a tournament's
    # games share one question set); None: each step indexes its sources and drops them.
    source_indexes: dict[str, SourceIndex] | None = None


ProgressHook = Callable[[RunStats, int], None]


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


@dataclass
class _Pending:
    """One turn of the current step: its debate, slot, request and (once made) write."""

    state: DebateState
    slot: Slot
    index: int
    request: TurnRequest
    write: TurnWrite | None = None


class LeaseHeartbeat:
    """Renews the worker's leases on `ids` every third of the lease, in a thread."""

    def __init__(self, engine: Engine, ids: list[int]):
        self.engine = engine
        self.ids = ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        opts = self.engine.options
        interval = max(opts.lease_seconds / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                with self.engine.db_lock:
                    renew_leases(self.engine.store, opts.worker, self.ids, opts.lease_seconds)
            except Exception as exc:  # noqa: BLE001 - retried; every write checks the leases
                log.warning("lease renewal failed (will retry): %s", exc)


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
        # Step writes and lease renewals of this worker never run at once (on PostgreSQL
        # they would lock the same rows in different orders).
        self.db_lock = threading.Lock()

    def run(self, experiment_id: int) -> RunStats:
        """Run until no unfinished debate is left in the experiment (or, without
        wait_for_others, none that this worker can claim)."""
        start = time.perf_counter()
        opts = self.options
        poll = opts.poll_seconds or min(opts.lease_seconds / 4, 2.0)
        try:
            while True:
                ids = claim_debates(
                    self.store, experiment_id, opts.worker, opts.claim_size, opts.lease_seconds
                )
                if not ids:
                    counts = active_counts(self.store, experiment_id, opts.worker)
                    if counts.active == 0 or not opts.wait_for_others:
                        break
                    # Other workers hold the rest: they finish it, or their leases expire.
                    time.sleep(poll)
                    self.stats.waited_seconds += poll
                    continue
                states = load_states(self.store, ids)
                try:
                    with LeaseHeartbeat(self, ids):
                        stopped = self._advance(states, start)
                finally:
                    release_debates(self.store, opts.worker, ids)
                if stopped:
                    break
        finally:
            self.stats.seconds = time.perf_counter() - start
        return self.stats

    def advance_leased(self, debate_ids: list[int]) -> RunStats:
        """Advance debates whose leases this worker already holds (the web app does this
        for one debate after a person's turn) until each waits, ends or fails."""
        start = time.perf_counter()
        with LeaseHeartbeat(self, debate_ids):
            self._advance(load_states(self.store, debate_ids), start)
        self.stats.seconds = time.perf_counter() - start
        return self.stats

    def _advance(self, states: list[DebateState], start: float) -> bool:
        """Run `states` (leased by this worker) to their end; True if stopped early."""
        active = [s for s in states if step_index(s) is not None]
        # Complete but not marked done (a person's last turn, stored by the web app).
        complete = [DebateUpdate(s.id, len(s.schedule), "done") for s in states
                    if step_index(s) is None]
        if complete:
            lost = self._write([], complete)
            self.stats.debates_done += len(complete) - len(lost)
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

    def _write(self, writes: list[TurnWrite], updates: list[DebateUpdate]) -> set[int]:
        with self.db_lock:
            return write_step(
                self.store, self.options.worker, writes, updates, self.options.lease_seconds
            )

    def _one_step(self, active: list[DebateState]) -> list[DebateState]:
        by_agent: dict[int | None, list[_Pending]] = defaultdict(list)
        for state in active:
            index = step_index(state)
            assert index is not None
            for slot in pending_slots(state, index):
                seat = state.seats.get(slot.role)
                agent_id = seat.agent_id if seat else None
                by_agent[agent_id].append(
                    _Pending(state, slot, index, build_request(state, slot, index))
                )

        made: list[_Pending] = []
        failed: dict[int, str] = {}
        waiting: set[int] = set()
        choices: dict[int, dict[str, int]] = {}
        for agent_id, items in by_agent.items():
            results = self._call_agent(agent_id, items, failed)
            if results is None:
                continue
            results, latency = results
            for item, result in zip(items, results):
                state, slot = item.state, item.slot
                if result.status == "waiting":
                    waiting.add(state.id)
                    continue
                item.write = self._turn_write(
                    state, slot, item.index, agent_id, item.request, result, latency
                )
                if slot.kind == "choice" and result.status != "failed":
                    choices[state.id] = self._choice(state, slot, item, result)
                if result.status == "failed":
                    failed[state.id] = result.error or "turn failed"
                made.append(item)
        self._verify_quotes(made)

        updates: list[DebateUpdate] = []
        still_active: list[DebateState] = []
        new_turns: dict[int, list[StoredTurn]] = defaultdict(list)
        for item in made:
            w = item.write
            assert w is not None
            new_turns[w.debate_id].append(
                StoredTurn(w.step, w.round, w.role, w.kind, w.text, w.status)
            )
        for state in active:
            if state.id in failed:
                index = step_index(state)
                updates.append(DebateUpdate(state.id, index or 0, "failed", failed[state.id]))
                continue
            state.turns.extend(new_turns.get(state.id, ()))
            for role, answer in choices.get(state.id, {}).items():
                state.seats[role].answer_index = answer
            nxt = step_index(state)
            if state.id in waiting:
                status = "waiting_human"
            elif nxt is None:
                status = "done"
            else:
                status = "running"
                still_active.append(state)
            updates.append(
                DebateUpdate(state.id, len(state.schedule) if nxt is None else nxt, status, None,
                             choices.get(state.id, {}))
            )
        writes = [item.write for item in made if item.write is not None]
        lost = self._write(writes, updates)
        self.stats.turns += sum(1 for w in writes if w.debate_id not in lost)
        self.stats.lost_leases += len(lost)
        for u in updates:
            if u.debate_id not in lost:
                if u.status == "done":
                    self.stats.debates_done += 1
                elif u.status == "failed":
                    self.stats.debates_failed += 1
                elif u.status == "waiting_human":
                    self.stats.debates_waiting += 1
        return [s for s in still_active if s.id not in lost]

    def _call_agent(
        self, agent_id: int | None, items: list[_Pending], failed: dict[int, str]
    ) -> tuple[list[TurnResult], float] | None:
        """The agent's results for `items` and the latency per turn (ms); None after
        failing the items' debates (no agent, an exception, a wrong number of results)."""
        agent = self.agents.get(agent_id) if agent_id is not None else None
        error = None
        if agent is None:
            error = f"no agent loaded for agent id {agent_id}"
        else:
            t0 = time.perf_counter()
            try:
                results = agent.respond([it.request for it in items])
            except Exception as exc:  # noqa: BLE001 - stored with the debates, rerun retries
                error = f"agent {agent.identity.name!r} raised {type(exc).__name__}: {exc}"
            else:
                if len(results) == len(items):
                    latency = (time.perf_counter() - t0) * 1000 / max(len(items), 1)
                    return results, latency
                error = (f"agent {agent.identity.name!r} returned {len(results)} results for "
                         f"{len(items)} requests")
        if len(self.stats.errors) < 5:
            self.stats.errors.append(error)
        for it in items:
            failed[it.state.id] = error
        return None

    def _choice(
        self, state: DebateState, slot: Slot, item: _Pending, result: TurnResult
    ) -> dict[str, int]:
        """Seat answers after an open protocol's choice turn (and the choice in meta)."""
        assert item.write is not None
        pick = parse_choice(result, item.request.answers)
        if pick is None:
            pick = state.seed % 2
            item.write.meta["choice_unparsed"] = True
        chosen = state.answer_order[pick]
        item.write.meta["choice"] = chosen
        return opposite_seat_answer(
            {r: s.answer_index for r, s in state.seats.items() if r != JUDGE}, slot.role, chosen
        )

    def _verify_quotes(self, made: list[_Pending]) -> None:
        """Check every quote of the step against its debate's source.

        Grouped by source text so that each source is indexed once per step and only
        one index is alive at a time (sources can be long; a run can have thousands)."""
        by_source: dict[str | None, list[_Pending]] = defaultdict(list)
        for item in made:
            w = item.write
            if (
                w is not None
                and w.kind in ("speech", "choice")
                and w.status != "failed"
                and _QUOTE_TAG.search(w.text)
            ):
                by_source[item.state.source].append(item)
        cache = self.options.source_indexes
        for source, items in by_source.items():
            index = None
            if source and cache is not None:
                index = cache.get(source)
                if index is None:
                    index = cache[source] = SourceIndex.build(source)
            elif source:
                index = SourceIndex.build(source)
            for item in items:
                w = item.write
                assert w is not None
                w.quotes = quote_rows(w.text, index)
                limit = item.request.limits.max_quoted_words
                if w.kind == "speech" and limit is not None:
                    quoted = sum(len(q["text"].split()) for q in w.quotes)
                    if quoted > limit:
                        w.meta["over_quote_limit"] = quoted
            del index

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
        meta["worker"] = self.options.worker
        if slot.kind == "speech" and status != "failed":
            # the seat's limits, as its agent was told them in the request
            text, cut = truncate_words(text, request.limits.max_words)
            if cut:
                status = "truncated"
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
        )
