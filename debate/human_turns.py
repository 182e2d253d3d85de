"""The human-turn service: a person speaks in a human seat through the web app.

A debate whose next turn belongs to a human seat (agent type "human", see
`debate.agents.human`) waits with status waiting_human. This module says which of those
turns a person may take (`waiting_turns`), what they are shown to write it
(`turn_context`, the same request a model debater gets, built by `debate.steps`), and
stores their turn (`submit_human_turn`): it checks the text against the seat's limits
(the protocol's, tightened by the agent's own `max_words` if it has one), writes it with
its user and its verified quotes through the store (`store.turns.write_waiting_turn`,
which also leases the debate to this process), and lets the engine go on with that
debate (`resume_debate`) until the next person's turn or the end.

The other seats' agents are built from the experiment's stored config and kept in a
bounded cache (`AgentCache`): the least recently used experiment's agents are closed
when the cache is full, and `release_agents()` closes them all (the web app does it when
it stops). The lease a person's debate is advanced under is `HumanTurnSettings`'
`lease_seconds`, like `debate run --lease-seconds` (env DEBATE_LEASE_SECONDS).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from debate.agents.base import Debater, TurnRequest
from debate.agents.registry import BuildContext
from debate.config import ExperimentConfig
from debate.engine import Engine, EngineOptions
from debate.errors import ConfigError, UserError
from debate.protocols import Limits, Slot
from debate.quotes import count_words, quoted_word_count
from debate.run import build_seat_agents
from debate.steps import (
    build_request,
    choice_seat_answers,
    pending_slots,
    quote_rows,
    request_sha256,
    step_index,
)
from debate.store.db import Store
from debate.store.experiments import agent_id
from debate.store.models import Agent, Debate, Experiment, Turn
from debate.store.runs import DebateState, load_states, release_debates
from debate.store.turns import (
    TurnRefused,
    TurnWrite,
    debate_status,
    return_to_pending,
    write_waiting_turn,
)
from debate.store.workers import default_worker_id
from debate.vocabulary import DebateStatus, TurnStatus

MAX_TURN_CHARS = 20_000


@dataclass(frozen=True)
class HumanTurnSettings:
    """How the web app advances a debate after a person's turn.

    lease_seconds: the lease the debate is advanced under (another worker may take it
    over after this if the web process dies mid-way); agent_cache_size: how many
    experiments' agents are kept built at once."""

    lease_seconds: float = 300.0
    agent_cache_size: int = 4

    def __post_init__(self) -> None:
        if not self.lease_seconds > 0:
            raise ConfigError(f"lease_seconds: must be positive, got {self.lease_seconds}")
        if self.agent_cache_size < 1:
            raise ConfigError(f"agent_cache_size: must be at least 1, got "
                              f"{self.agent_cache_size}")

    @classmethod
    def from_env(cls) -> HumanTurnSettings:
        """DEBATE_LEASE_SECONDS (as for `debate run`) and DEBATE_HUMAN_AGENT_CACHE."""
        values: dict[str, Any] = {}
        for env, name, kind in (("DEBATE_LEASE_SECONDS", "lease_seconds", float),
                                ("DEBATE_HUMAN_AGENT_CACHE", "agent_cache_size", int)):
            raw = os.environ.get(env)
            if raw is None or not raw.strip():
                continue
            try:
                values[name] = kind(raw)
            except ValueError:
                raise ConfigError(f"{env}: not a number: {raw!r}") from None
        return cls(**values)


class HumanTurnError(UserError):
    """A refused human turn; the message is shown to the person."""


# ---------------------------------------------------------------- what a person may answer


@dataclass(frozen=True)
class PendingTurn:
    debate_id: int
    experiment: str
    role: str
    round: int
    kind: str
    question: str


@dataclass(frozen=True)
class TurnContext:
    """What the person sees to write a turn (the same fields a model debater gets)."""

    pending: PendingTurn
    request: TurnRequest
    my_answer_text: str | None


def _step_of(state: DebateState) -> tuple[int, list[Slot]] | None:
    index = step_index(state)
    if index is None:
        return None
    return index, pending_slots(state, index)


def _human_agents(store: Store, agent_ids: set[int]) -> dict[int, str | None]:
    """agent id -> the user name allowed in the seat (None: any debater) for human agents."""
    if not agent_ids:
        return {}
    with store.session() as session:
        rows = session.execute(
            select(Agent.id, Agent.settings).where(Agent.id.in_(agent_ids), Agent.kind == "human")
        ).all()
    return {aid: (settings or {}).get("user") for aid, settings in rows}


def _may_take(user_name: str, user_id: int, allowed: dict[int, str | None],
              state: DebateState, role: str, turn_users: dict[str, set[int]]) -> bool:
    """A named seat is its user's; an open seat is taken by the first debater to speak in
    it, who must neither hold another seat of the debate by name nor have spoken in one."""
    seat_user = allowed[state.seats[role].agent_id]  # type: ignore[index]
    if seat_user is not None:
        return seat_user == user_name
    if turn_users.get(role):  # an open seat stays with whoever spoke in it first
        return user_id in turn_users[role]
    for other, seat in state.seats.items():
        if other == role:
            continue
        if seat.agent_id in allowed and allowed[seat.agent_id] == user_name:
            return False
        if user_id in turn_users.get(other, set()):
            return False
    return True


def _turn_users(store: Store, debate_ids: list[int]) -> dict[int, dict[str, set[int]]]:
    out: dict[int, dict[str, set[int]]] = {}
    if not debate_ids:
        return out
    with store.session() as session:
        for did, role, uid in session.execute(
            select(Turn.debate_id, Turn.role, Turn.user_id).where(
                Turn.debate_id.in_(debate_ids), Turn.user_id.is_not(None)
            )
        ):
            out.setdefault(did, {}).setdefault(role, set()).add(uid)
    return out


def waiting_turns(store: Store, user_name: str, user_id: int, limit: int = 200) -> list[PendingTurn]:
    """Turns waiting for this person, oldest debate first."""
    with store.session() as session:
        rows = session.execute(
            select(Debate.id, Experiment.name)
            .join(Experiment, Debate.experiment_id == Experiment.id)
            .where(Debate.status == DebateStatus.WAITING_HUMAN)
            .order_by(Debate.id)
            .limit(limit)
        ).all()
    names = dict(rows)
    states = load_states(store, [r[0] for r in rows])
    humans = _human_agents(
        store, {s.agent_id for st in states for s in st.seats.values() if s.agent_id is not None}
    )
    users = _turn_users(store, [s.id for s in states])
    out: list[PendingTurn] = []
    for state in states:
        step = _step_of(state)
        if step is None:
            continue
        for slot in step[1]:
            seat = state.seats.get(slot.role)
            if seat is None or seat.agent_id not in humans:
                continue
            if _may_take(user_name, user_id, humans, state, slot.role,
                         users.get(state.id, {})):
                out.append(PendingTurn(state.id, names[state.id], slot.role, slot.round,
                                       slot.kind, state.question))
    return out


def turn_context(store: Store, user_name: str, user_id: int, debate_id: int) -> TurnContext:
    for pending in waiting_turns(store, user_name, user_id):
        if pending.debate_id == debate_id:
            break
    else:
        raise HumanTurnError(f"debate {debate_id}: no turn of yours is waiting here")
    state = load_states(store, [debate_id])[0]
    step = _step_of(state)
    assert step is not None
    index, slots = step
    slot = next(s for s in slots if s.role == pending.role)
    request = build_request(state, slot, index)
    mine = request.answers[request.my_answer] if request.my_answer is not None else None
    return TurnContext(pending, request, mine)


def check_turn_text(text: Any, kind: str, limits: Limits) -> str:
    if not isinstance(text, str) or not text.strip():
        raise HumanTurnError("text: write your turn first")
    if len(text) > MAX_TURN_CHARS:
        raise HumanTurnError(f"text: {len(text)} characters is over the limit of {MAX_TURN_CHARS}")
    words = count_words(text)
    if kind == "speech" and words < limits.min_words:
        raise HumanTurnError(f"text: {words} words; the protocol asks for at least "
                             f"{limits.min_words}")
    if words > limits.max_words:
        raise HumanTurnError(f"text: {words} words is over the limit of {limits.max_words}")
    if limits.max_quoted_words is not None:
        quoted = quoted_word_count(text)
        if quoted > limits.max_quoted_words:
            raise HumanTurnError(
                f"text: {quoted} quoted words is over the limit of {limits.max_quoted_words}"
            )
    return text.strip()


def submit_human_turn(
    store: Store,
    user_name: str,
    user_id: int,
    debate_id: Any,
    role: Any,
    round_: Any,
    text: Any,
    choice: Any = None,
    agents: dict[int, Debater] | None = None,
    settings: HumanTurnSettings | None = None,
) -> str:
    """Store the person's turn and advance the debate; returns the debate's new status.

    `choice` (open protocols' choice turn): the display position (0 or 1) argued for.
    `agents` (agent id -> Debater) are the other seats' agents; built from the
    experiment's stored config (and cached) when not given.
    """
    settings = settings or HumanTurnSettings()
    try:
        did, rnd = int(debate_id), int(round_)
    except (TypeError, ValueError):
        raise HumanTurnError("debate: choose a waiting turn first") from None
    ctx = turn_context(store, user_name, user_id, did)
    pending, request = ctx.pending, ctx.request
    if pending.role != role or pending.round != rnd:
        raise HumanTurnError(
            f"debate {did}: the waiting turn is {pending.role} round {pending.round}; reload"
        )
    if pending.kind == "pixel":
        raise HumanTurnError("pixel-debate turns cannot be played in the web Debate tab")
    body = check_turn_text(text, pending.kind, request.limits)
    state = load_states(store, [did])[0]
    meta: dict[str, Any] = {"source": "web"}
    seat_answers: dict[str, int] = {}
    if pending.kind == "choice":
        try:
            pos = int(choice)
        except (TypeError, ValueError):
            raise HumanTurnError("choice: pick the answer you will argue for") from None
        if pos not in (0, 1):
            raise HumanTurnError("choice: pick the answer you will argue for")
        chosen = state.answer_order[pos]
        meta["choice"] = chosen
        seat_answers = choice_seat_answers(state, pending.role, chosen)
    index = step_index(state)
    assert index is not None
    turn = TurnWrite(
        debate_id=did,
        step=index,
        round=rnd,
        role=pending.role,
        kind=pending.kind,
        agent_id=state.seats[pending.role].agent_id,
        user_id=user_id,
        text=body,
        status=TurnStatus.OK,
        shown_sha256=request_sha256(request),
        meta=meta,
        quotes=quote_rows(body, state.source) if pending.kind in ("speech", "choice") else [],
    )
    worker = "web:" + default_worker_id()
    try:
        experiment_id = write_waiting_turn(store, turn, seat_answers, worker,
                                           settings.lease_seconds)
    except TurnRefused as exc:
        raise HumanTurnError(str(exc)) from None
    return resume_debate(store, did, experiment_id, worker, agents, settings)


# ---------------------------------------------------------------- the other seats' agents


class AgentCache:
    """Experiments' agents (agent id -> Debater), built from their stored configs, at most
    `size` experiments at once: the least recently used one's agents are closed to make
    room, and `clear()` closes them all. Thread-safe (Gradio serves requests in threads)."""

    def __init__(
        self,
        size: int,
        build: Callable[[Store, int], tuple[dict[int, Debater], list[Debater]]] | None = None,
    ):
        """`build(store, experiment_id)` -> (agent id -> Debater, the instances to close);
        by default from the experiment's stored config."""
        self.size = size
        self._build = build or _build_agents
        self._built: OrderedDict[tuple[str, int], tuple[dict[int, Debater], list[Debater]]] = (
            OrderedDict())
        self._lock = threading.Lock()

    def get(self, store: Store, experiment_id: int) -> dict[int, Debater]:
        key = (store.url, experiment_id)
        with self._lock:
            if key in self._built:
                self._built.move_to_end(key)
                return self._built[key][0]
            agents, instances = self._build(store, experiment_id)
            self._built[key] = (agents, instances)
            while len(self._built) > self.size:
                _, (_, old) = self._built.popitem(last=False)
                _close(old)
            return agents

    def __len__(self) -> int:
        return len(self._built)

    def clear(self) -> None:
        with self._lock:
            while self._built:
                _, (_, old) = self._built.popitem(last=False)
                _close(old)


def _close(instances: list[Debater]) -> None:
    for agent in instances:
        agent.close()


def _build_agents(store: Store, experiment_id: int) -> tuple[dict[int, Debater], list[Debater]]:
    with store.session() as session:
        exp = session.get(Experiment, experiment_id)
        if exp is None:
            raise HumanTurnError(f"experiment {experiment_id}: not found")
        config = dict(exp.config)
        # relative paths (a script, a local model, templates) are read from the folder of
        # the config file, wherever the web app was started
        folder = Path(exp.config_dir) if exp.config_dir else Path.cwd()
    cfg = ExperimentConfig.model_validate(config)
    context = BuildContext(config_dir=folder, db_url=store.url, seed=cfg.seed)
    built, instances = build_seat_agents(cfg, context)
    with store.session() as session:
        agents = {agent_id(session, a.identity): a for a in built.values()}
    return agents, instances


_AGENTS = AgentCache(HumanTurnSettings().agent_cache_size)


def experiment_agents(
    store: Store, experiment_id: int, settings: HumanTurnSettings | None = None
) -> dict[int, Debater]:
    """The experiment's agents, from the process's bounded cache."""
    if settings is not None:
        _AGENTS.size = settings.agent_cache_size
    return _AGENTS.get(store, experiment_id)


def release_agents() -> None:
    """Close every cached experiment's agents (models, connections, threads)."""
    _AGENTS.clear()


def resume_debate(
    store: Store,
    debate_id: int,
    experiment_id: int,
    worker: str,
    agents: dict[int, Debater] | None = None,
    settings: HumanTurnSettings | None = None,
) -> str:
    """Advance one debate whose lease `worker` holds, until it waits, ends or fails."""
    settings = settings or HumanTurnSettings()
    try:
        if agents is None:
            agents = experiment_agents(store, experiment_id, settings)
        options = EngineOptions(worker=worker, lease_seconds=settings.lease_seconds)
        Engine(store, agents, options).advance_leased([debate_id])
    except Exception:
        # Leave the debate for `debate run` to resume; the stored turn stays.
        return_to_pending(store, debate_id, worker)
        raise
    finally:
        release_debates(store, worker, [debate_id])
    return debate_status(store, debate_id)
