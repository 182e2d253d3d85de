"""The engine: advances many debates at once, one batched call per agent per step.

Each loop gathers the next pending slots of every claimed debate, groups them by agent,
calls each agent once with the whole batch, verifies quotes, and writes the step's turns
in one transaction. A killed run loses at most the step in flight; on restart the stored
turns say where each debate stands.

While agents work, a heartbeat thread keeps this worker's leases alive, so a step longer
than the lease does not let another worker take over debates that are still being run.
An agent that raises fails the debates of its batch (the error is stored with them and
nothing of the step is half-written for them); a rerun retries failed debates.

When the database goes away (a restart, a failover, a dropped connection, a session the
server ended), `run` waits for it with backoff for `db_retry_seconds` and carries on from
what is stored: the step in flight is redone (its transaction was rolled back, or was
committed, and the stored turns say which). Past the window, or on a fault waiting cannot
fix (disk full, read-only, locked), it raises a one-line DatabaseError and leaves its
leases to expire.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from sqlalchemy.exc import DBAPIError

from debate.agents.base import Debater, TurnRequest, TurnResult
from debate.protocols import Slot
from debate.quotes import SourceIndex
from debate.steps import (
    build_request,
    choice_seat_answers,
    parse_choice,
    pending_slots,
    quote_rows,
    step_index,
    turn_write,
)
from debate.store.db import Store
from debate.store.faults import DEFAULT_RETRY_SECONDS, Reconnect, classify
from debate.store.runs import (
    DebateState,
    DebateUpdate,
    StoredTurn,
    active_counts,
    claim_debates,
    load_states,
    release_debates,
    renew_leases,
    write_step,
)
from debate.store.turns import TurnWrite
from debate.store.workers import default_worker_id
from debate.vocabulary import DebateStatus, TurnStatus

log = logging.getLogger(__name__)
_QUOTE_TAG = re.compile(r"<\s*/?\s*quote\s*>", re.IGNORECASE)


@dataclass
class RunStats:
    turns: int = 0  # turns made (failed turns are stored too, but counted apart)
    turns_failed: int = 0
    debates_done: int = 0
    debates_failed: int = 0
    debates_failed_for_good: int = 0  # failed for a reason a rerun cannot fix
    debates_waiting: int = 0
    steps: int = 0
    seconds: float = 0.0
    lost_leases: int = 0
    waited_seconds: float = 0.0
    outages: int = 0  # database outages ridden out (each redid the step in flight)
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
    # How long to keep reconnecting when the database goes away before giving up
    # (DatabaseUnavailable); 0 gives up at the first lost connection.
    db_retry_seconds: float = DEFAULT_RETRY_SECONDS
    # Gets one line when an outage starts and one when it ends (default: logged).
    notify: Callable[[str], None] | None = None
    # Quote-check indexes kept across steps and engines, by source text (a tournament's
    # games share one question set); None: each step indexes its sources and drops them.
    source_indexes: dict[str, SourceIndex] | None = None


ProgressHook = Callable[[RunStats, int], None]


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
                trouble = classify(exc)
                if trouble is not None and trouble.transient:
                    # An outage: the main loop reports it when it next touches the database.
                    log.debug("lease renewal failed (will retry): %s", trouble.cause)
                else:
                    log.warning("lease renewal failed (will retry): %s",
                                trouble.cause if trouble else exc)


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
        self.reconnect: Reconnect | None = None  # set by run()

    def run(self, experiment_id: int) -> RunStats:
        """Run until no unfinished debate is left in the experiment (or, without
        wait_for_others, none that this worker can claim).

        When the database goes away, waits for it (see store.faults.Reconnect) and
        carries on from what is stored: the step in flight is redone, never half-written.
        Raises DatabaseUnavailable when it stays away past `db_retry_seconds`, and
        DatabaseFault when it refuses the work (disk full, read-only, locked); the
        worker's leases are then left to expire."""
        start = time.perf_counter()
        opts = self.options
        poll = opts.poll_seconds or min(opts.lease_seconds / 4, 2.0)
        # A transaction may hold its rows half a lease at most: a worker frozen inside
        # one loses its locks before its lease expires, so others can take over.
        self.store.limit_transactions(opts.lease_seconds / 2)
        reconnect = Reconnect(self.store, opts.db_retry_seconds, opts.notify)
        self.reconnect = reconnect
        try:
            while True:
                try:
                    stopped = self._claim_and_advance(experiment_id, poll, start)
                except DBAPIError as exc:
                    reconnect.wait(exc)  # raises when waiting cannot help
                    self.stats.outages = reconnect.outages
                    continue
                if stopped:
                    break
        finally:
            self.stats.seconds = time.perf_counter() - start
        return self.stats

    def _claim_and_advance(self, experiment_id: int, poll: float, start: float) -> bool:
        """One round of the run loop; True when the run should end (no work left, or
        stopped early). Database errors propagate (the caller reconnects); the leases
        then stay with this worker, which claims them again once reconnected."""
        opts = self.options
        ids = claim_debates(
            self.store, experiment_id, opts.worker, opts.claim_size, opts.lease_seconds
        )
        if not ids:
            counts = active_counts(self.store, experiment_id, opts.worker)
            # Only a finished unit of work ends an outage: claims that succeed while
            # every step write fails do not keep a worker retrying forever.
            self.reconnect.succeeded()
            if counts.active == 0 or not opts.wait_for_others:
                return True
            # Other workers hold the rest: they finish it, or their leases expire.
            time.sleep(poll)
            self.stats.waited_seconds += poll
            return False
        states = load_states(self.store, ids)
        try:
            with LeaseHeartbeat(self, ids):
                stopped = self._advance(states, start)
        except DBAPIError:
            raise
        except BaseException:  # an agent bug, Ctrl-C: hand the debates back at once
            try:
                release_debates(self.store, opts.worker, ids)
            except DBAPIError as exc:
                trouble = classify(exc)
                log.warning("could not release leases (they expire): %s",
                            trouble.cause if trouble else exc)
            raise
        release_debates(self.store, opts.worker, ids)
        return stopped

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
        complete = [DebateUpdate(s.id, len(s.schedule), DebateStatus.DONE) for s in states
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
            lost = write_step(
                self.store, self.options.worker, writes, updates, self.options.lease_seconds
            )
        if self.reconnect is not None:
            self.reconnect.succeeded()
        return lost

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
        for_good: set[int] = set()  # debates failed for a reason no rerun fixes
        waiting: set[int] = set()
        choices: dict[int, dict[str, int]] = {}
        for agent_id, items in by_agent.items():
            results = self._call_agent(agent_id, items, failed)
            if results is None:
                continue
            results, latency = results
            for item, result in zip(items, results):
                state, slot = item.state, item.slot
                if result.status == TurnStatus.WAITING:
                    waiting.add(state.id)
                    continue
                item.write = turn_write(
                    self.options.worker, state, slot, item.index, agent_id, item.request, result, latency
                )
                if slot.kind == "choice" and result.status != TurnStatus.FAILED:
                    choices[state.id] = self._choice(state, slot, item, result)
                if result.status == TurnStatus.FAILED:
                    failed[state.id] = result.error or "turn failed"
                    if result.meta.get("retryable") is False:
                        for_good.add(state.id)
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
                updates.append(
                    DebateUpdate(state.id, index or 0, DebateStatus.FAILED, failed[state.id]))
                continue
            state.turns.extend(new_turns.get(state.id, ()))
            for role, answer in choices.get(state.id, {}).items():
                state.seats[role].answer_index = answer
            nxt = step_index(state)
            if state.id in waiting:
                status = DebateStatus.WAITING_HUMAN
            elif nxt is None:
                status = DebateStatus.DONE
            else:
                status = DebateStatus.RUNNING
                still_active.append(state)
            updates.append(
                DebateUpdate(state.id, len(state.schedule) if nxt is None else nxt, status, None,
                             choices.get(state.id, {}))
            )
        writes = [item.write for item in made if item.write is not None]
        lost = self._write(writes, updates)
        kept = [w for w in writes if w.debate_id not in lost]
        self.stats.turns_failed += sum(1 for w in kept if w.status == TurnStatus.FAILED)
        self.stats.turns += sum(1 for w in kept if w.status != TurnStatus.FAILED)
        self.stats.lost_leases += len(lost)
        for u in updates:
            if u.debate_id not in lost:
                if u.status == DebateStatus.DONE:
                    self.stats.debates_done += 1
                elif u.status == DebateStatus.FAILED:
                    self.stats.debates_failed += 1
                    self.stats.debates_failed_for_good += u.debate_id in for_good
                elif u.status == DebateStatus.WAITING_HUMAN:
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
        return choice_seat_answers(state, slot.role, chosen)

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
                and w.status != TurnStatus.FAILED
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
