"""Creating experiments with their questions, documents, agents, debates and seats.

`store_experiment` writes a run's experiment whole; the row writers below
(`insert_experiment`, `insert_question(s)`, `insert_debate(s)`, `insert_debate_rows`,
`insert_seats`, `delete_debate`) are also what the NYU importer and the pixel store
compose in their own transactions."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from debate.agents.base import AgentIdentity
from debate.errors import ConfigError
from debate.protocols import JUDGE, DebatePlan, Protocol, plan_debates
from debate.questions import Question
from debate.store.db import Store
from debate.store.models import Agent, Debate, Document, Experiment, Seat, utcnow
from debate.store.models import Question as QuestionRow
from debate.vocabulary import DebateStatus


@dataclass(frozen=True)
class SeatAgents:
    """Agent ids per seat kind: the honest and deceptive debaters (the same id for
    self-play and open protocols) and the interactive judge."""

    honest: int | None
    deceptive: int | None
    judge: int | None = None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def agent_id(session: Session, identity: AgentIdentity) -> int:
    """The agents row for this identity, created on first use."""
    fp = identity.fingerprint
    found = session.scalar(select(Agent.id).where(Agent.fingerprint == fp))
    if found is not None:
        return found
    row = Agent(
        fingerprint=fp,
        name=identity.name,
        kind=identity.kind,
        model_id=identity.model_id,
        backend=identity.backend,
        settings=identity.settings,
        user_id=identity.user_id,
    )
    session.add(row)
    session.flush()
    return row.id


def document_ids(session: Session, texts: Iterable[tuple[str, str | None]]) -> dict[str, int]:
    """Store each (text, title) once; returns sha256 -> document id."""
    wanted: dict[str, tuple[str, str | None]] = {}
    for text, title in texts:
        wanted.setdefault(sha256_text(text), (text, title))
    if not wanted:
        return {}
    ids: dict[str, int] = {}
    keys = list(wanted)
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        ids.update(session.execute(select(Document.sha256, Document.id).where(
            Document.sha256.in_(chunk))).all())
    missing = [
        {"sha256": k, "text": wanted[k][0], "title": wanted[k][1]} for k in keys if k not in ids
    ]
    if missing:
        rows = session.execute(
            insert(Document).returning(Document.sha256, Document.id, sort_by_parameter_order=True),
            missing,
        )
        ids.update(rows.all())
    return ids


def find_experiment(session: Session, name: str) -> Experiment | None:
    return session.scalar(select(Experiment).where(Experiment.name == name))


def insert_experiment(
    session: Session,
    *,
    name: str,
    protocol: str,
    config: dict[str, Any],
    config_hash: str,
    seed: int,
    source: str,
    config_dir: str | None = None,
) -> int:
    """A new experiments row; returns its id (IntegrityError when the name is taken)."""
    exp = Experiment(name=name, protocol=protocol, config=config, config_hash=config_hash,
                     seed=seed, source=source, config_dir=config_dir)
    session.add(exp)
    session.flush()
    return exp.id


def insert_question(
    session: Session,
    *,
    experiment_id: int,
    external_id: str,
    dataset: str,
    text: str,
    answers: list[str],
    correct_index: int,
    document_id: int | None,
    meta: dict[str, Any],
) -> int:
    """One questions row whose document is already stored; returns its id."""
    row = QuestionRow(experiment_id=experiment_id, external_id=external_id, dataset=dataset,
                      text=text, answers=answers, correct_index=correct_index,
                      document_id=document_id, meta=meta)
    session.add(row)
    session.flush()
    return row.id


def insert_debate(session: Session, **fields: Any) -> int:
    """One debates row (Debate attributes as keywords); returns its id."""
    row = Debate(**fields)
    session.add(row)
    session.flush()
    return row.id


def insert_debate_rows(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Many debates rows (dicts of Debate attributes) in one statement; their ids in order."""
    if not rows:
        return []
    return list(session.execute(
        insert(Debate).returning(Debate.id, sort_by_parameter_order=True), rows
    ).scalars())


def insert_seats(session: Session, rows: list[dict[str, Any]]) -> None:
    """Seats rows: dicts of debate_id, role, agent_id, answer_index."""
    if rows:
        session.execute(insert(Seat), rows)


def delete_debate(session: Session, debate_id: int) -> None:
    """A debate and, by cascade, its seats, turns, quotes, judgments and feedback."""
    session.execute(delete(Debate).where(Debate.id == debate_id))


def insert_questions(
    session: Session, experiment_id: int, questions: list[Question]
) -> list[int]:
    docs = document_ids(session, ((q.source, q.source_title) for q in questions if q.source))
    rows = [
        {
            "experiment_id": experiment_id,
            "external_id": q.id,
            "dataset": q.dataset,
            "text": q.question,
            "answers": list(q.answers),
            "correct_index": q.correct_index,
            "document_id": docs[sha256_text(q.source)] if q.source else None,
            "meta": q.metadata,
        }
        for q in questions
    ]
    if not rows:
        return []
    result = session.execute(
        insert(QuestionRow).returning(QuestionRow.id, sort_by_parameter_order=True), rows
    )
    return list(result.scalars())


@dataclass(frozen=True)
class StoredExperiment:
    id: int
    created: bool
    agent_ids: dict[str, int]  # seat kind (honest, deceptive, judge) -> agents.id


def experiment_folder(store: Store, experiment_id: int) -> Path | None:
    """The folder of the config file the experiment was run from (relative paths in its
    stored config are read from there); None if unknown (imported, or older rows)."""
    with store.session() as session:
        folder = session.scalar(select(Experiment.config_dir)
                                .where(Experiment.id == experiment_id))
    return Path(folder) if folder else None


def store_experiment(
    store: Store,
    *,
    name: str,
    config: dict[str, Any],
    config_hash: str,
    protocol: Protocol,
    seed: int,
    questions: list[Question],
    both_orders: bool,
    agents: SeatAgents | None = None,
    identities: dict[str, AgentIdentity] | None = None,
    source: str = "run",
    attempts: int = 3,
    config_dir: Path | None = None,
) -> StoredExperiment:
    """Store the experiment, its questions and one debate per plan, in one transaction.

    An experiment of the same name and config is reused (the run resumes); one with a
    different config is refused. `identities` (seat kind -> agent identity) get their
    agents rows in the same transaction, so a refused run writes nothing.

    Safe when several workers start the same experiment at once: the loser of the race
    for the unique name (or a shared document or agent row) rolls back and finds the
    winner's experiment.
    """
    for attempt in range(attempts):
        try:
            return _store_experiment_once(
                store, name, config, config_hash, protocol, seed, questions, both_orders,
                agents, identities or {}, source, config_dir,
            )
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _store_experiment_once(
    store: Store,
    name: str,
    config: dict[str, Any],
    config_hash: str,
    protocol: Protocol,
    seed: int,
    questions: list[Question],
    both_orders: bool,
    agents: SeatAgents | None,
    identities: dict[str, AgentIdentity],
    source: str,
    config_dir: Path | None = None,
) -> StoredExperiment:
    folder = str(config_dir.resolve()) if config_dir is not None else None
    with store.write_session() as session:
        existing = find_experiment(session, name)
        if existing is not None and existing.config_hash != config_hash:
            raise ConfigError(
                f"name: experiment {name!r} already exists with a different config; "
                "give the new run another name"
            )
        ids = {seat: agent_id(session, identity) for seat, identity in identities.items()}
        if existing is not None:
            if folder is not None and existing.config_dir != folder:
                existing.config_dir = folder  # the config was moved: read paths from there
            return StoredExperiment(existing.id, False, ids)
        if agents is None:
            agents = SeatAgents(ids.get("honest"), ids.get("deceptive"), ids.get("judge"))
        exp_id = insert_experiment(session, name=name, protocol=protocol.name, config=config,
                                   config_hash=config_hash, seed=seed, source=source,
                                   config_dir=folder)
        qids = insert_questions(session, exp_id, questions)
        insert_debates(session, exp_id, protocol, seed, questions, qids, both_orders, agents)
        return StoredExperiment(exp_id, True, ids)


def insert_debates(
    session: Session,
    experiment_id: int,
    protocol: Protocol,
    seed: int,
    questions: list[Question],
    question_ids: list[int],
    both_orders: bool,
    agents: SeatAgents,
) -> int:
    rng = random.Random(seed)
    spec = protocol.to_dict()
    has_turns = bool(protocol.schedule())  # naive and expert judges: nothing to say
    now = utcnow()
    debate_rows: list[dict[str, Any]] = []
    plans: list[DebatePlan] = []
    for q, qid in zip(questions, question_ids):
        for plan in plan_debates(protocol, len(q.answers), q.correct_index, rng, both_orders):
            plans.append(plan)
            debate_rows.append(
                {
                    "experiment_id": experiment_id,
                    "question_id": qid,
                    "protocol": protocol.name,
                    "protocol_spec": spec,
                    "variant": plan.label,
                    "answer_order": list(plan.answer_order),
                    "seed": rng.randrange(2**31),
                    "status": DebateStatus.PENDING if has_turns else DebateStatus.DONE,
                    "finished_at": None if has_turns else now,
                    "meta": {},
                }
            )
            debate_rows[-1]["_correct"] = q.correct_index
    corrects = [row.pop("_correct") for row in debate_rows]
    if not debate_rows:
        return 0
    ids = session.execute(
        insert(Debate).returning(Debate.id, sort_by_parameter_order=True), debate_rows
    ).scalars().all()
    seat_rows: list[dict[str, Any]] = []
    for did, plan, correct in zip(ids, plans, corrects):
        for role, answer in plan.seats.items():
            if answer is None:
                agent = agents.honest  # open protocols: one agent, side chosen later
            else:
                agent = agents.honest if answer == correct else agents.deceptive
            seat_rows.append(
                {"debate_id": did, "role": role, "agent_id": agent, "answer_index": answer}
            )
        if protocol.interactive:
            seat_rows.append(
                {"debate_id": did, "role": JUDGE, "agent_id": agents.judge, "answer_index": None}
            )
    if seat_rows:
        session.execute(insert(Seat), seat_rows)
    return len(ids)
