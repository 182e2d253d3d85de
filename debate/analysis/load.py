"""Read what the analysis needs from the store into pandas frames, in a few set-based queries.

JSON columns are fetched as text and decoded in one `json.loads` call per column (not per
row), so 100,000s of rows load in well under a second. Probabilities are turned into
question-order arrays once; everything after this module is vectorised pandas/numpy.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, Text, case, cast, func, literal, select

from debate.errors import UserError
from debate.store.db import Store
from debate.store.models import Agent, Debate, Experiment, Judgment, Quote, Seat, Turn, User
from debate.store.models import Question as QuestionRow
from debate.vocabulary import JudgmentKind

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


def _column(values: tuple) -> np.ndarray:
    """A fetched column as int64 or float64 (None -> NaN) when numeric, else objects."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        try:
            array = np.array(values)  # all ints -> int64; ints and floats -> float64
            return array if array.dtype != object else np.array(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            pass
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _read(store: Store, query: Select) -> pd.DataFrame:
    # Hundreds of thousands of row tuples would set off the cyclic garbage collector again
    # and again while they are built; none of them can form a cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with store.engine.connect() as conn:
            result = conn.execute(query)
            names = list(result.keys())
            # Plain DBAPI tuples (every JSON column is cast to text in SQL, so no result
            # processing is skipped that matters), turned into typed numpy columns.
            rows = result.cursor.fetchall() if result.cursor is not None else []
        columns = list(zip(*rows)) if rows else [() for _ in names]
        del rows
        return pd.DataFrame({name: _column(col) for name, col in zip(names, columns)})
    finally:
        if collecting:
            gc.enable()


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


def _of_debates(query: Select, debate_id, ids: list[int] | None) -> Select:
    """Rows whose debate belongs to the experiments (no join when every experiment is read)."""
    if ids is None:
        return query
    return query.where(debate_id.in_(select(Debate.id).where(Debate.experiment_id.in_(ids))))


KIND_CODES = {JudgmentKind.FINAL: 0, JudgmentKind.STEPPED: 1, JudgmentKind.OFFLINE: 2}
BUILTIN_FIELDS = ("protocol", "judge", "experiment", "family", "judge_type", "judging", "dataset",
                  "debater", "honest_debater", "deceptive_debater",
                  "status", "scope")
NONE_LABEL = "(none)"


def _label(value: Any) -> str:
    if value is None:
        return NONE_LABEL
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _metadata_keys(store: Store, ids: list[int] | None) -> list[str]:
    """Metadata keys seen on a sample of debates and questions (for error messages)."""
    sample = _read(store, _in_experiments(
        select(cast(Debate.meta, Text).label("d"), cast(QuestionRow.meta, Text).label("q"))
        .join(QuestionRow, QuestionRow.id == Debate.question_id).limit(500), ids))
    keys: set[str] = set()
    for column in ("d", "q"):
        for item in decode_json_column(sample[column]):
            if isinstance(item, dict):
                keys.update(item)
    return sorted(keys)


def load(store: Store, experiments: list[str] | None, fields: list[str] = ()) -> Loaded:
    """Rows for the analysis; `fields` are metadata keys to fetch (debate's, else question's)."""
    ids = _experiment_ids(store, experiments)
    meta_fields = [f for f in dict.fromkeys(fields) if f not in BUILTIN_FIELDS]
    meta_columns = []
    for i, field in enumerate(meta_fields):
        meta_columns.append(_json_field_text(store, Debate.meta, field).label(f"_d{i}"))
        meta_columns.append(_json_field_text(store, QuestionRow.meta, field).label(f"_q{i}"))
    debates = _read(store, _in_experiments(
        select(
            Debate.id.label("debate_id"),
            Debate.experiment_id,
            Debate.question_id,
            Debate.protocol,
            Debate.status,
            Debate.answer_order[0].as_integer().label("first_answer"),
            QuestionRow.correct_index,
            QuestionRow.document_id,
            QuestionRow.dataset,
            *meta_columns,
        ).join(QuestionRow, QuestionRow.id == Debate.question_id),
        ids,
    ))
    for i, field in enumerate(meta_fields):
        from_debate = decode_json_column(debates.pop(f"_d{i}"))
        from_question = decode_json_column(debates.pop(f"_q{i}"))
        values = [d if d is not None else q for d, q in zip(from_debate, from_question)]
        if len(debates) and all(v is None for v in values):
            known = _metadata_keys(store, ids)
            raise UserError(
                f"--by/--where: unknown field {field!r}; known: {', '.join(BUILTIN_FIELDS)}"
                + (f", or metadata: {', '.join(known)}" if known else ""))
        debates[field] = pd.Categorical([_label(v) for v in values])
    names = _read(store, select(Experiment.id, Experiment.name))
    debates["experiment"] = pd.Categorical(debates["experiment_id"].map(dict(zip(names["id"], names["name"]))))
    debates["first_answer"] = debates["first_answer"].fillna(-1).astype(np.int64)
    debates["family"] = pd.Categorical(debates["protocol"].map(_families(store, ids)))
    for column in ("protocol", "status", "dataset"):
        debates[column] = pd.Categorical(debates[column].fillna(NONE_LABEL))
    # Bootstrap clusters: the source document (id > 0), else the question itself (-id).
    doc = pd.to_numeric(debates["document_id"]).to_numpy(dtype=float)
    question = debates["question_id"].to_numpy(dtype=np.int64)
    debates["cluster"] = np.where(np.isnan(doc), -question, np.nan_to_num(doc)).astype(np.int64)

    seats = _read(store, _of_debates(
        select(Seat.debate_id, Seat.role, Seat.agent_id, Seat.answer_index), Seat.debate_id, ids))

    kind_code = case(*((Judgment.kind == k, v) for k, v in KIND_CODES.items()), else_=-1)
    columns = [Judgment.id.label("judgment_id"), Judgment.debate_id, Judgment.judge_agent_id,
               Judgment.user_id, kind_code.label("kind_code"), Judgment.after_round]
    if _max_answers(store, ids) <= 2:
        # Both probabilities straight from SQL as floats: no JSON text to decode.
        judgments = _read(store, _of_debates(select(
            *columns, Judgment.probabilities[0].as_float().label("p0"),
            Judgment.probabilities[1].as_float().label("p1"),
        ), Judgment.debate_id, ids))
        probs = judgments[["p0", "p1"]].to_numpy(dtype=float, na_value=np.nan)
        judgments = judgments.drop(columns=["p0", "p1"])
    else:
        judgments = _read(store, _of_debates(select(
            *columns, cast(Judgment.probabilities, Text).label("probabilities"),
        ), Judgment.debate_id, ids))
        probs = probability_matrix(decode_json_column(judgments.pop("probabilities")))
    kinds = np.array([*KIND_CODES, "other"], dtype=object)
    judgments["kind"] = pd.Categorical(kinds[judgments.pop("kind_code").to_numpy(dtype=np.int64)])

    speech_chars = _read(store, _of_debates(
        select(Turn.debate_id, Turn.role, func.sum(func.length(Turn.text)).label("chars"))
        .where(Turn.kind == "speech")
        .group_by(Turn.debate_id, Turn.role), Turn.debate_id, ids))

    quotes = _quote_counts(store, ids)

    agents = _agents(store)
    return Loaded(debates, seats, judgments, probs, speech_chars, quotes, agents)


def _json_field_text(store: Store, column, field: str):
    """A metadata field's value as JSON text (NULL when absent), booleans kept as true/false.

    SQLite's json_extract turns true into 1, so there the `->` operator (SQLite >= 3.38) is
    used; PostgreSQL's json `->` already returns JSON.
    """
    if store.dialect == "sqlite":
        path = "$." + json.dumps(field)
        return column.op("->", return_type=Text)(literal(path, Text))
    return cast(column[field], Text)


def _max_answers(store: Store, ids: list[int] | None) -> int:
    query = select(func.max(func.json_array_length(QuestionRow.answers)))
    if ids is not None:
        query = query.where(QuestionRow.experiment_id.in_(ids))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def _quote_counts(store: Store, ids: list[int] | None) -> pd.DataFrame:
    return _read(store, _of_debates(
        select(
            Turn.debate_id,
            Turn.role,
            func.count(Quote.id).label("quotes"),
            func.sum(case((Quote.verified, 1), else_=0)).label("verified"),
            func.sum(Quote.fuzzy_score).label("fuzzy_sum"),
        )
        .join(Turn, Turn.id == Quote.turn_id)
        .group_by(Turn.debate_id, Turn.role), Turn.debate_id, ids))


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


def agent_labels(store: Store) -> pd.DataFrame:
    """Agents (and people, with negative ids) with the labels the analysis shows."""
    return _agents(store)


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
