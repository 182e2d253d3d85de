"""What probes read from the store: one row per debater turn with its captured vector.

`load_turns(store, experiments, layer, position)` gives the feature matrix X (float32, one
row per turn that has a vector at that layer and position) and a frame of the same rows:

    turn_id, debate_id, experiment, protocol, family, round, step, role, kind, agent,
    model_id, question_id (row), question_key (content), document_id, group (the
    cross-validation group: the source document, else the question's content),
    deceptive (1: the speaker argues the false answer), answer_slot (the position, as shown
    to the judge, of the answer the speaker argues), correct_index, answer_order

Only turns of seats that argue an answer are kept (speeches and choices, not a judge's
questions); `deceptive` is known from the seat's answer and the question's correct index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import select

from debate.errors import UserError
from debate.store.db import Store
from debate.store.models import Activation, Agent, Debate, Experiment, Seat, Turn
from debate.store.models import Question as QuestionRow
from debate.store.vectors import decode_vector
from debate.vocabulary import TurnStatus

TURN_COLUMNS = [
    "turn_id", "debate_id", "experiment", "protocol", "family", "round", "step", "role",
    "kind", "agent", "model_id", "question_id", "question_key", "document_id", "group",
    "deceptive", "answer_slot", "correct_index",
]


@dataclass
class TurnFeatures:
    X: np.ndarray
    turns: pd.DataFrame

    @property
    def y(self) -> np.ndarray:
        return self.turns["deceptive"].to_numpy(dtype=int)

    @property
    def groups(self) -> np.ndarray:
        return self.turns["group"].to_numpy()


def question_key(text: str, answers: list[str]) -> str:
    """A question's identity is its content, not its row (the same across experiments)."""
    blob = "\x1f".join([text, *sorted(answers)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def experiment_ids(store: Store, names: list[str]) -> dict[str, int]:
    with store.session() as session:
        rows = dict(session.execute(
            select(Experiment.name, Experiment.id).where(Experiment.name.in_(names))).all())
    missing = [n for n in names if n not in rows]
    if missing:
        raise UserError(f"--experiment: no experiment named {missing[0]!r}")
    return rows


def available_layers(store: Store, experiments: list[str]) -> list[tuple[int, str]]:
    """(layer, position) pairs captured in these experiments."""
    ids = list(experiment_ids(store, experiments).values())
    with store.session() as session:
        rows = session.execute(
            select(Activation.layer, Activation.position).distinct()
            .join(Turn, Turn.id == Activation.turn_id)
            .join(Debate, Debate.id == Turn.debate_id)
            .where(Debate.experiment_id.in_(ids))
        ).all()
    return sorted((int(layer), str(pos)) for layer, pos in rows)


def load_turns(store: Store, experiments: list[str], layer: int | None = None,
               position: str | None = None) -> TurnFeatures:
    """Turns of these experiments with their vectors at (layer, position); with layer None,
    the turns alone (X has no columns)."""
    ids = list(experiment_ids(store, experiments).values())
    with store.session() as session:
        rows = session.execute(
            select(Turn.id, Turn.debate_id, Experiment.name, Debate.protocol,
                   Debate.protocol_spec, Turn.round, Turn.step, Turn.role, Turn.kind,
                   Agent.name, Agent.model_id, QuestionRow.id, QuestionRow.text,
                   QuestionRow.answers, QuestionRow.document_id, QuestionRow.correct_index,
                   Debate.answer_order, Seat.answer_index)
            .join(Debate, Debate.id == Turn.debate_id)
            .join(Experiment, Experiment.id == Debate.experiment_id)
            .join(QuestionRow, QuestionRow.id == Debate.question_id)
            .join(Seat, (Seat.debate_id == Turn.debate_id) & (Seat.role == Turn.role))
            .outerjoin(Agent, Agent.id == Turn.agent_id)
            .where(Debate.experiment_id.in_(ids), Turn.kind.in_(("speech", "choice")),
                   Turn.status != TurnStatus.FAILED, Seat.answer_index.is_not(None))
            .order_by(Turn.id)
        ).all()
        vectors: dict[int, np.ndarray] = {}
        if layer is not None:
            for tid, data, shape, dtype in session.execute(
                select(Activation.turn_id, Activation.data, Activation.shape, Activation.dtype)
                .join(Turn, Turn.id == Activation.turn_id)
                .join(Debate, Debate.id == Turn.debate_id)
                .where(Debate.experiment_id.in_(ids), Activation.layer == layer,
                       Activation.position == position)
            ):
                vectors[tid] = decode_vector(data, shape, dtype)
    records = []
    for (tid, did, exp, protocol, spec, rnd, step, role, kind, agent, model_id, qid, qtext,
         answers, doc, correct, order, seat_answer) in rows:
        if layer is not None and tid not in vectors:
            continue
        key = question_key(qtext, list(answers))
        records.append({
            "turn_id": tid, "debate_id": did, "experiment": exp, "protocol": protocol,
            "family": (spec or {}).get("family", protocol), "round": rnd, "step": step,
            "role": role, "kind": kind, "agent": agent, "model_id": model_id,
            "question_id": qid, "question_key": key, "document_id": doc,
            "group": f"doc:{doc}" if doc is not None else f"q:{key}",
            "deceptive": int(seat_answer != correct),
            "answer_slot": list(order).index(seat_answer) if seat_answer in order else -1,
            "correct_index": correct,
        })
    turns = pd.DataFrame(records, columns=TURN_COLUMNS)
    if layer is None:
        return TurnFeatures(np.zeros((len(turns), 0), dtype=np.float32), turns)
    if turns.empty:
        return TurnFeatures(np.zeros((0, 0), dtype=np.float32), turns)
    X = np.stack([vectors[t].astype(np.float32).ravel() for t in turns["turn_id"]])
    return TurnFeatures(X, turns)
