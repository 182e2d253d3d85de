"""The human debater: a seat taken by a person through the web app's Debate tab.

Config entry: {"type": "human", "name": "...", "user": "alice"}. With `user` only that
person may speak in the seat; without it any user with the debater (or admin) role may,
though one person never takes both seats of a debate.

The engine asks this agent for a turn like any other; it answers status="waiting", and
the engine marks the debate waiting_human. When the person submits in the web app,
`submit_human_turn` checks the turn against the seat's limits (the protocol's, tightened
by the agent's own `max_words` if it has one), stores it (with its
user and its quotes verified against the source), sets the debate running under a
lease of its own and lets the engine go on with that debate (`resume_debate`) until
the next person's turn or the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from debate.agents.base import AgentIdentity, Debater, TurnRequest, TurnResult
from debate.agents.registry import BuildContext, register_agent_type
from debate.errors import UserError
from debate.protocols import JUDGE, Limits, Slot, opposite_seat_answer
from debate.quotes import count_words, quoted_word_count, verify_quotes
from debate.store.db import Store
from debate.store.models import Agent, Debate, Experiment, Quote, Seat, Turn
from debate.store.runs import DebateState, load_states, release_debates, utcnow

MAX_TURN_CHARS = 20_000


class HumanSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="human", min_length=1, max_length=200)
    user: str | None = Field(default=None, min_length=1, max_length=100)


class HumanDebater(Debater):
    def __init__(self, settings: HumanSettings):
        self.settings = settings

    @property
    def identity(self) -> AgentIdentity:
        return AgentIdentity(
            name=self.settings.name, kind="human", settings={"user": self.settings.user}
        )

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        return [TurnResult(text="", status="waiting") for _ in requests]


def _build(settings: HumanSettings, context: BuildContext) -> HumanDebater:
    return HumanDebater(settings)


register_agent_type("human", HumanSettings, _build)


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
    from debate.engine import pending_slots, step_index

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
            .where(Debate.status == "waiting_human")
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
    from debate.engine import build_request

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
) -> str:
    """Store the person's turn and advance the debate; returns the debate's new status.

    `choice` (open protocols' choice turn): the display position (0 or 1) argued for.
    `agents` (agent id -> Debater) are the other seats' agents; built from the
    experiment's stored config when not given.
    """
    from debate.engine import default_worker_id, request_sha256

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
        seat_answers = opposite_seat_answer(
            {r: s.answer_index for r, s in state.seats.items() if r != JUDGE}, pending.role, chosen
        )
    checks = verify_quotes(body, state.source) if pending.kind in ("speech", "choice") else []
    worker = "web:" + default_worker_id()
    now = utcnow()
    seat = state.seats[pending.role]
    with store.write_session() as session:
        query = select(Debate).where(Debate.id == did)
        if store.dialect == "postgresql":
            query = query.with_for_update()
        debate = session.scalar(query)
        if debate is None or debate.status != "waiting_human":
            raise HumanTurnError(f"debate {did}: not waiting for a person any more; reload")
        taken = session.scalar(
            select(Turn.id).where(Turn.debate_id == did, Turn.round == rnd, Turn.role == role)
        )
        if taken is not None:
            raise HumanTurnError(f"debate {did}: this turn was already given; reload")
        from debate.engine import step_index

        index = step_index(state)
        assert index is not None
        turn = Turn(
            debate_id=did,
            step=index,
            round=rnd,
            role=pending.role,
            kind=pending.kind,
            agent_id=seat.agent_id,
            user_id=user_id,
            text=body,
            status="ok",
            shown_sha256=request_sha256(request),
            meta=meta,
            created_at=now,
        )
        session.add(turn)
        session.flush()
        for pos, check in enumerate(checks):
            session.add(Quote(turn_id=turn.id, position=pos, text=check.text,
                              verified=check.verified, source_start=check.start,
                              source_end=check.end, fuzzy_score=check.fuzzy))
        for r, answer in seat_answers.items():
            session.execute(update(Seat).where(Seat.debate_id == did, Seat.role == r)
                            .values(answer_index=answer))
        debate.status = "running"
        debate.lease_owner = worker
        debate.lease_expires_at = now + timedelta(seconds=300)
        experiment_id = debate.experiment_id
    return resume_debate(store, did, experiment_id, worker, agents)


_AGENT_CACHE: dict[tuple[str, int], dict[int, Debater]] = {}


def experiment_agents(store: Store, experiment_id: int) -> dict[int, Debater]:
    """The experiment's agents, built from its stored config (cached per process)."""
    key = (store.url, experiment_id)
    if key in _AGENT_CACHE:
        return _AGENT_CACHE[key]
    from debate.config import ExperimentConfig
    from debate.run import build_seat_agents
    from debate.store.experiments import agent_id

    with store.session() as session:
        exp = session.get(Experiment, experiment_id)
        if exp is None:
            raise HumanTurnError(f"experiment {experiment_id}: not found")
        config = dict(exp.config)
    cfg = ExperimentConfig.model_validate(config)
    context = BuildContext(config_dir=Path.cwd(), db_url=store.url, seed=cfg.seed)
    built, _instances = build_seat_agents(cfg, context)
    with store.session() as session:
        agents = {agent_id(session, a.identity): a for a in built.values()}
    _AGENT_CACHE[key] = agents
    return agents


def resume_debate(
    store: Store,
    debate_id: int,
    experiment_id: int,
    worker: str,
    agents: dict[int, Debater] | None = None,
) -> str:
    """Advance one debate whose lease `worker` holds, until it waits, ends or fails."""
    from debate.engine import Engine, EngineOptions

    try:
        if agents is None:
            agents = experiment_agents(store, experiment_id)
        Engine(store, agents, EngineOptions(worker=worker)).advance_leased([debate_id])
    except Exception:
        # Leave the debate for `debate run` to resume; the stored turn stays.
        with store.session() as session:
            session.execute(update(Debate).where(Debate.id == debate_id,
                                                 Debate.lease_owner == worker)
                            .values(status="pending"))
        raise
    finally:
        release_debates(store, worker, [debate_id])
    with store.session() as session:
        return session.scalar(select(Debate.status).where(Debate.id == debate_id)) or "unknown"
