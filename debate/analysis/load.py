"""Read what the analysis needs from the store into pandas frames, in a few set-based queries.

JSON columns are fetched as text and decoded in one `json.loads` call per column (not per
row), so 100,000s of rows load in well under a second. Probabilities are turned into
question-order arrays once; everything after this module is vectorised pandas/numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, Text, case, cast, func, select

from debate.errors import UserError
from debate.store.db import Store
from debate.store.models import Agent, Debate, Experiment, Judgment, Quote, Seat, Turn, User
from debate.store.models import Question as QuestionRow

HONEST = "honest"
DECEPTIVE = "deceptive"


def decode_json_column(values: pd.Series) -> list[Any]:
    """Decode a column of JSON texts (None allowed) with one json.loads call."""
    if len(values) == 0:
        return []
    texts = values.where(values.notna(), "null").astype(str)
    return json.loads("[" + ",".join(texts.tolist()) + "]")


def probability_matrix(lists: list[Any]) -> np.ndarray:
    """Rows of probabilities (ragged or None) as a float matrix padded with NaN."""
    if not lists:
        return np.zeros((0, 2))
    frame = pd.DataFrame([x if isinstance(x, list) else [] for x in lists])
    if frame.shape[1] == 0:
        return np.full((len(lists), 2), np.nan)
    return frame.to_numpy(dtype=float, na_value=np.nan)


@dataclass
class Loaded:
    debates: pd.DataFrame  # one row per debate, with question fields and metadata dicts
    seats: pd.DataFrame  # debate_id, role, agent_id, answer_index
    judgments: pd.DataFrame  # one row per judgment with p_correct etc.
    probabilities: np.ndarray  # judgments x answers, question order
    speech_chars: pd.DataFrame  # debate_id, role, chars
    quotes: pd.DataFrame  # debate_id, role, quotes, verified, fuzzy_sum
    agents: pd.DataFrame  # id, name, kind, label


def _read(store: Store, query: Select) -> pd.DataFrame:
    with store.engine.connect() as conn:
        result = conn.execute(query)
        names = list(result.keys())
        # Plain DBAPI tuples (every JSON column is cast to text in SQL, so no result
        # processing is skipped that matters); from_records builds columns at C speed.
        rows = result.cursor.fetchall() if result.cursor is not None else []
    return pd.DataFrame.from_records(rows, columns=names, coerce_float=False)


def _experiment_ids(store: Store, names: list[str] | None) -> list[int] | None:
    if names is None:
        return None
    found = _read(store, select(Experiment.id, Experiment.name).where(Experiment.name.in_(names)))
    missing = sorted(set(names) - set(found["name"]))
    if missing:
        known = _read(store, select(Experiment.name).order_by(Experiment.name))["name"].tolist()
        raise UserError(
            f"--experiment: no experiment named {', '.join(map(repr, missing))}; "
            f"known: {', '.join(known) or '(none)'}"
        )
    return found["id"].tolist()


def _in_experiments(query: Select, ids: list[int] | None) -> Select:
    return query if ids is None else query.where(Debate.experiment_id.in_(ids))


def load(store: Store, experiments: list[str] | None) -> Loaded:
    ids = _experiment_ids(store, experiments)
    debates = _read(store, _in_experiments(
        select(
            Debate.id.label("debate_id"),
            Experiment.name.label("experiment"),
            Debate.question_id,
            Debate.protocol,
            Debate.variant,
            Debate.status,
            cast(Debate.answer_order, Text).label("answer_order"),
            cast(Debate.meta, Text).label("debate_meta"),
            QuestionRow.correct_index,
            QuestionRow.document_id,
            QuestionRow.dataset,
            cast(QuestionRow.meta, Text).label("question_meta"),
        )
        .join(Experiment, Experiment.id == Debate.experiment_id)
        .join(QuestionRow, QuestionRow.id == Debate.question_id),
        ids,
    ))
    orders = decode_json_column(debates["answer_order"])
    debates["first_answer"] = np.array(
        [o[0] if isinstance(o, list) and o else -1 for o in orders], dtype=np.int64
    ) if len(debates) else np.zeros(0, dtype=np.int64)
    debates["debate_meta"] = [m if isinstance(m, dict) else {} for m in decode_json_column(debates["debate_meta"])]
    debates["question_meta"] = [m if isinstance(m, dict) else {} for m in decode_json_column(debates["question_meta"])]
    debates = debates.drop(columns=["answer_order"])
    debates["family"] = debates["protocol"].map(_families(store, ids))
    # Bootstrap clusters: the source document, else the question itself.
    doc = debates["document_id"].astype("Int64")
    debates["cluster"] = np.where(doc.isna(), "q" + debates["question_id"].astype(str),
                                  "d" + doc.astype(str))

    seats = _read(store, _in_experiments(
        select(Seat.debate_id, Seat.role, Seat.agent_id, Seat.answer_index)
        .join(Debate, Debate.id == Seat.debate_id), ids))

    judgments = _read(store, _in_experiments(
        select(
            Judgment.id.label("judgment_id"),
            Judgment.debate_id,
            Judgment.judge_agent_id,
            Judgment.user_id,
            Judgment.kind,
            Judgment.after_round,
            cast(Judgment.probabilities, Text).label("probabilities"),
        ).join(Debate, Debate.id == Judgment.debate_id), ids))
    probs = probability_matrix(decode_json_column(judgments["probabilities"]))
    judgments = judgments.drop(columns=["probabilities"])

    speech_chars = _read(store, _in_experiments(
        select(Turn.debate_id, Turn.role, func.sum(func.length(Turn.text)).label("chars"))
        .join(Debate, Debate.id == Turn.debate_id)
        .where(Turn.kind == "speech")
        .group_by(Turn.debate_id, Turn.role), ids))

    quotes = _quote_counts(store, ids)

    agents = _agents(store)
    return Loaded(debates, seats, judgments, probs, speech_chars, quotes, agents)


def _quote_counts(store: Store, ids: list[int] | None) -> pd.DataFrame:
    return _read(store, _in_experiments(
        select(
            Turn.debate_id,
            Turn.role,
            func.count(Quote.id).label("quotes"),
            func.sum(case((Quote.verified, 1), else_=0)).label("verified"),
            func.sum(Quote.fuzzy_score).label("fuzzy_sum"),
        )
        .join(Turn, Turn.id == Quote.turn_id)
        .join(Debate, Debate.id == Turn.debate_id)
        .group_by(Turn.debate_id, Turn.role), ids))


def _families(store: Store, ids: list[int] | None) -> dict[str, str]:
    """Protocol name -> family, read from one stored spec per protocol name."""
    firsts = _read(store, _in_experiments(
        select(Debate.protocol, func.min(Debate.id).label("id")).group_by(Debate.protocol), ids))
    if firsts.empty:
        return {}
    specs = _read(store, select(Debate.protocol, cast(Debate.protocol_spec, Text).label("spec"))
                  .where(Debate.id.in_(firsts["id"].tolist())))
    out: dict[str, str] = {}
    for name, spec in zip(specs["protocol"], decode_json_column(specs["spec"])):
        family = spec.get("family") if isinstance(spec, dict) else None
        out[name] = family or _family_from_name(name)
    return out


def _family_from_name(name: str) -> str:
    for family in ("consultancy", "naive", "expert", "pixel", "debate"):
        if family in name:
            return family
    return "debate"


def _agents(store: Store) -> pd.DataFrame:
    agents = _read(store, select(Agent.id, Agent.name, Agent.kind, Agent.model_id))
    users = _read(store, select(User.id, User.name))
    agents["judge_type"] = np.where(agents["kind"] == "human", "human", "model")
    # Agents sharing a display name (same model, other settings) are told apart by id.
    dup = agents["name"].duplicated(keep=False)
    agents["label"] = np.where(dup, agents["name"] + " #" + agents["id"].astype(str), agents["name"])
    users_frame = pd.DataFrame({
        "id": -users["id"].astype(np.int64) if len(users) else pd.Series([], dtype=np.int64),
        "name": users["name"], "kind": "human", "model_id": None, "judge_type": "human",
        "label": users["name"],
    })
    return pd.concat([agents, users_frame], ignore_index=True)
