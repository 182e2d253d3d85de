"""Exporting the store as files: one row per entity, stable ids, full provenance.

`export_store` writes, into one directory:

    experiments.EXT  id, experiment, protocol, seed, config, config_hash, ...
    documents.EXT    the hidden source texts the exported debates use (id, title, text)
    debates.EXT      id, experiment, protocol, question, answers, correct_index,
                     answer_order, seats (role, answer argued, honest, agent provenance)...
    turns.EXT        id, debate_id, experiment, protocol, round, role, text (raw, as the
                     debater wrote it, for audit), rendered_text (as a reader sees it:
                     verified quotes in the source's own characters), agent
                     name/kind/model id/settings, tokens, latency, ...
    quotes.EXT       id, turn_id, debate_id, experiment, protocol, round, role, verified,
                     source span, fuzzy score
    judgments.EXT    id, debate_id, experiment, protocol, judge provenance, probabilities
                     (question's own answer order), p_correct, explanation, ...
    activations.EXT  index of the captured hidden states: id, turn_id, debate_id, layer,
                     position, dtype, shape, key (the array's name in activations.npz)
    activations.npz  the vectors, one array per (turn, layer, position), named
                     turn_<turn id>__layer_<layer>__<position> (numpy.load reads it; only
                     written when there are vectors)
    probes.EXT       the trained probes: name, method, labels, layer, model, parameters,
                     training data and cross-validated metrics
    probe_scores.EXT id, probe, turn_id, debate_id, experiment, round, role, score
    manifest.json    what was exported, from where, when, and how many rows

EXT is jsonl (nested values stay nested), csv or parquet (nested values as JSON text).
Ids are the store's primary keys, so they are stable across exports of one database.
Answer indices (seats, correct_index, probabilities) are in the question's own answer
order; `answer_order` says how the judge saw them.

The directory appears whole or not at all: files are written into a temporary sibling
directory that is renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from debate import __version__
from debate.errors import UserError
from debate.quotes import QuoteMark, quote_segments, segments_plain
from debate.store.db import Store
from debate.store.models import (
    Activation,
    Agent,
    Debate,
    Document,
    Experiment,
    Judgment,
    Probe,
    ProbeScore,
    Quote,
    Seat,
    Turn,
    as_utc,
    utcnow,
)
from debate.store.models import Question as QuestionRow
from debate.store.runs import chunks
from debate.store.vectors import decode_vector

FORMATS = ("jsonl", "csv", "parquet")

COLUMNS: dict[str, list[str]] = {
    "experiments": [
        "id", "experiment", "protocol", "source", "seed", "config_hash", "config", "created_at",
    ],
    "documents": ["id", "sha256", "title", "text"],
    "debates": [
        "id", "debate_id", "experiment", "experiment_id", "protocol", "protocol_spec",
        "variant", "question_id", "question_row_id", "dataset", "question", "answers",
        "correct_index", "answer_order", "correct_position", "document_id", "source_title",
        "question_metadata", "seats", "status", "steps_done", "seed", "error", "metadata",
        "created_at", "finished_at",
    ],
    "turns": [
        "id", "debate_id", "experiment", "protocol", "question_id", "step", "round", "role",
        "kind", "status", "text", "rendered_text", "answer_index", "honest", "agent_id", "agent_name",
        "agent_kind", "agent_model_id", "agent_backend", "agent_settings", "user_id",
        "prompt_tokens", "completion_tokens", "latency_ms", "shown_sha256", "shown",
        "template_version", "candidates", "metadata", "created_at",
    ],
    "quotes": [
        "id", "turn_id", "debate_id", "experiment", "protocol", "round", "role", "position",
        "text", "verified", "source_start", "source_end", "fuzzy_score",
    ],
    "judgments": [
        "id", "debate_id", "experiment", "protocol", "question_id", "kind", "after_round",
        "judge_agent_id", "judge_name", "judge_kind", "judge_model_id", "judge_backend",
        "judge_settings", "user_id", "assignment_id", "probabilities", "correct_index",
        "p_correct", "shown_order", "explanation", "time_taken_ms", "metadata", "created_at",
    ],
    "activations": [
        "id", "turn_id", "debate_id", "experiment", "round", "role", "layer", "position",
        "dtype", "shape", "key",
    ],
    "probes": [
        "id", "probe", "method", "labels", "layer", "position", "model_id", "dim", "params",
        "training", "metrics", "created_at",
    ],
    "probe_scores": [
        "id", "probe_id", "probe", "turn_id", "debate_id", "experiment", "protocol", "round",
        "role", "score",
    ],
}
TABLES = tuple(COLUMNS)


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    format: str
    rows: dict[str, int]
    files: tuple[Path, ...]


@dataclass
class _Context:
    """What every table's rows refer to, loaded once."""

    experiments: dict[int, Experiment]
    agents: dict[int, Agent]
    debate_ids: list[int]
    # per debate: experiment name, protocol, question external id, correct index, seats
    debate_info: dict[int, tuple[str, str, str, int, dict[str, int | None]]]


def _agent_fields(agent: Agent | None, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}_name": agent.name if agent else None,
        f"{prefix}_kind": agent.kind if agent else None,
        f"{prefix}_model_id": agent.model_id if agent else None,
        f"{prefix}_backend": agent.backend if agent else None,
        f"{prefix}_settings": agent.settings if agent else None,
    }


def _load_context(session: Session, experiment: str | None, url: str) -> _Context:
    query = select(Experiment).order_by(Experiment.id)
    if experiment is not None:
        query = query.where(Experiment.name == experiment)
    experiments = {e.id: e for e in session.scalars(query)}
    if experiment is not None and not experiments:
        raise UserError(f"--experiment: no experiment named {experiment!r} in {url}; "
                        "see `debate list`")
    agents = {a.id: a for a in session.scalars(select(Agent))}
    debate_ids: list[int] = []
    info: dict[int, tuple[str, str, str, int, dict[str, int | None]]] = {}
    exp_ids = list(experiments)
    for chunk in chunks(exp_ids):
        for did, exp_id, protocol, qid, correct in session.execute(
            select(Debate.id, Debate.experiment_id, Debate.protocol, QuestionRow.external_id,
                   QuestionRow.correct_index)
            .join(QuestionRow, Debate.question_id == QuestionRow.id)
            .where(Debate.experiment_id.in_(chunk))
            .order_by(Debate.id)
        ):
            debate_ids.append(did)
            info[did] = (experiments[exp_id].name, protocol, qid, correct, {})
    for chunk in chunks(debate_ids):
        for did, role, answer in session.execute(
            select(Seat.debate_id, Seat.role, Seat.answer_index).where(Seat.debate_id.in_(chunk))
        ):
            info[did][4][role] = answer
    debate_ids.sort()
    return _Context(experiments, agents, debate_ids, info)


def _experiment_rows(ctx: _Context) -> Iterator[dict[str, Any]]:
    for e in ctx.experiments.values():
        yield {
            "id": e.id, "experiment": e.name, "protocol": e.protocol, "source": e.source,
            "seed": e.seed, "config_hash": e.config_hash, "config": e.config,
            "created_at": as_utc(e.created_at),
        }


def _document_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    doc_ids: set[int] = set()
    for chunk in chunks(ctx.debate_ids):
        doc_ids.update(
            d for d in session.scalars(
                select(QuestionRow.document_id)
                .join(Debate, Debate.question_id == QuestionRow.id)
                .where(Debate.id.in_(chunk))
            ) if d is not None
        )
    for chunk in chunks(sorted(doc_ids)):
        for doc in session.scalars(select(Document).where(Document.id.in_(chunk))
                                   .order_by(Document.id)):
            yield {"id": doc.id, "sha256": doc.sha256, "title": doc.title, "text": doc.text}


def _debate_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    for chunk in chunks(ctx.debate_ids):
        seats: dict[int, list[dict[str, Any]]] = {}
        for s in session.scalars(
            select(Seat).where(Seat.debate_id.in_(chunk)).order_by(Seat.debate_id, Seat.role)
        ):
            seats.setdefault(s.debate_id, []).append(
                {"role": s.role, "answer_index": s.answer_index, "agent_id": s.agent_id,
                 **_agent_fields(ctx.agents.get(s.agent_id) if s.agent_id else None, "agent")}
            )
        for d, q, title in session.execute(
            select(Debate, QuestionRow, Document.title)
            .join(QuestionRow, Debate.question_id == QuestionRow.id)
            .outerjoin(Document, QuestionRow.document_id == Document.id)
            .where(Debate.id.in_(chunk))
            .order_by(Debate.id)
        ):
            order = [int(i) for i in d.answer_order]
            debate_seats = seats.get(d.id, [])
            for seat in debate_seats:
                answer = seat["answer_index"]
                seat["honest"] = None if answer is None else answer == q.correct_index
            yield {
                "id": d.id, "debate_id": d.id,
                "experiment": ctx.experiments[d.experiment_id].name,
                "experiment_id": d.experiment_id, "protocol": d.protocol,
                "protocol_spec": d.protocol_spec, "variant": d.variant,
                "question_id": q.external_id, "question_row_id": q.id, "dataset": q.dataset,
                "question": q.text, "answers": list(q.answers),
                "correct_index": q.correct_index, "answer_order": order,
                "correct_position": order.index(q.correct_index)
                if q.correct_index in order else None,
                "document_id": q.document_id, "source_title": title,
                "question_metadata": q.meta, "seats": debate_seats, "status": d.status,
                "steps_done": d.steps_done, "seed": d.seed, "error": d.error,
                "metadata": d.meta, "created_at": as_utc(d.created_at),
                "finished_at": as_utc(d.finished_at),
            }


def _rendered_texts(session: Session, chunk: list[int]) -> dict[int, str]:
    """Each turn's text as a reader sees it: quotes marked ⟦✓ “…”⟧ / ⟦✗ “…”⟧, a verified
    quote in the source's own characters (its stored span), never the debater's."""
    sources = dict(session.execute(
        select(Debate.id, Document.text)
        .join(QuestionRow, Debate.question_id == QuestionRow.id)
        .outerjoin(Document, QuestionRow.document_id == Document.id)
        .where(Debate.id.in_(chunk))
    ).all())
    marks: dict[int, dict[int, QuoteMark]] = {}
    for tid, pos, verified, start, end in session.execute(
        select(Quote.turn_id, Quote.position, Quote.verified, Quote.source_start,
               Quote.source_end)
        .join(Turn, Quote.turn_id == Turn.id).where(Turn.debate_id.in_(chunk))
    ):
        marks.setdefault(tid, {})[pos] = QuoteMark(bool(verified), start, end)
    out = {}
    for tid, did, text in session.execute(
        select(Turn.id, Turn.debate_id, Turn.text).where(Turn.debate_id.in_(chunk))
    ):
        by_pos = marks.get(tid, {})
        ordered = [by_pos.get(p, QuoteMark(False, None, None))
                   for p in range(max(by_pos) + 1)] if by_pos else []
        out[tid] = segments_plain(quote_segments(text, ordered, sources.get(did)),
                                  terminal=False)
    return out


def _turn_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    for chunk in chunks(ctx.debate_ids):
        rendered = _rendered_texts(session, chunk)
        for t in session.scalars(
            select(Turn).where(Turn.debate_id.in_(chunk)).order_by(Turn.id)
        ):
            experiment, protocol, qid, correct, seats = ctx.debate_info[t.debate_id]
            answer = seats.get(t.role)
            agent = ctx.agents.get(t.agent_id) if t.agent_id else None
            yield {
                "id": t.id, "debate_id": t.debate_id, "experiment": experiment,
                "protocol": protocol, "question_id": qid, "step": t.step, "round": t.round,
                "role": t.role, "kind": t.kind, "status": t.status, "text": t.text,
                "rendered_text": rendered.get(t.id, ""),
                "answer_index": answer,
                "honest": None if answer is None or t.kind != "speech" else answer == correct,
                "agent_id": t.agent_id, **_agent_fields(agent, "agent"), "user_id": t.user_id,
                "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                "latency_ms": t.latency_ms, "shown_sha256": t.shown_sha256, "shown": t.shown,
                "template_version": t.template_version, "candidates": t.candidates,
                "metadata": t.meta, "created_at": as_utc(t.created_at),
            }


def _quote_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    for chunk in chunks(ctx.debate_ids):
        for q, debate_id, rnd, role in session.execute(
            select(Quote, Turn.debate_id, Turn.round, Turn.role)
            .join(Turn, Quote.turn_id == Turn.id)
            .where(Turn.debate_id.in_(chunk))
            .order_by(Quote.id)
        ):
            experiment, protocol, *_ = ctx.debate_info[debate_id]
            yield {
                "id": q.id, "turn_id": q.turn_id, "debate_id": debate_id,
                "experiment": experiment, "protocol": protocol, "round": rnd, "role": role,
                "position": q.position, "text": q.text, "verified": q.verified,
                "source_start": q.source_start, "source_end": q.source_end,
                "fuzzy_score": q.fuzzy_score,
            }


def _judgment_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    for chunk in chunks(ctx.debate_ids):
        for j in session.scalars(
            select(Judgment).where(Judgment.debate_id.in_(chunk)).order_by(Judgment.id)
        ):
            experiment, protocol, qid, correct, _ = ctx.debate_info[j.debate_id]
            probs = j.probabilities
            p_correct = (
                float(probs[correct]) if isinstance(probs, list) and correct < len(probs)
                else None
            )
            judge = ctx.agents.get(j.judge_agent_id) if j.judge_agent_id else None
            yield {
                "id": j.id, "debate_id": j.debate_id, "experiment": experiment,
                "protocol": protocol, "question_id": qid, "kind": j.kind,
                "after_round": j.after_round, "judge_agent_id": j.judge_agent_id,
                **_agent_fields(judge, "judge"), "user_id": j.user_id,
                "assignment_id": j.assignment_id, "probabilities": probs,
                "correct_index": correct, "p_correct": p_correct, "shown_order": j.shown_order,
                "explanation": j.explanation, "time_taken_ms": j.time_taken_ms,
                "metadata": j.meta, "created_at": as_utc(j.created_at),
            }


def activation_key(turn_id: int, layer: int, position: str) -> str:
    return f"turn_{turn_id}__layer_{layer}__{position}"


def _activation_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    for chunk in chunks(ctx.debate_ids):
        for aid, tid, layer, position, dtype, shape, did, rnd, role in session.execute(
            select(Activation.id, Activation.turn_id, Activation.layer, Activation.position,
                   Activation.dtype, Activation.shape, Turn.debate_id, Turn.round, Turn.role)
            .join(Turn, Activation.turn_id == Turn.id)
            .where(Turn.debate_id.in_(chunk))
            .order_by(Activation.id)
        ):
            yield {"id": aid, "turn_id": tid, "debate_id": did,
                   "experiment": ctx.debate_info[did][0], "round": rnd, "role": role,
                   "layer": layer, "position": position, "dtype": dtype, "shape": shape,
                   "key": activation_key(tid, layer, position)}


def _write_npz(path: Path, session: Session, ctx: _Context) -> int:
    """The vectors as a .npz archive, streamed (one array in memory at a time)."""
    n = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for chunk in chunks(ctx.debate_ids):
            for tid, layer, position, dtype, shape, data in session.execute(
                select(Activation.turn_id, Activation.layer, Activation.position,
                       Activation.dtype, Activation.shape, Activation.data)
                .join(Turn, Activation.turn_id == Turn.id)
                .where(Turn.debate_id.in_(chunk))
                .order_by(Activation.id)
            ):
                with zf.open(activation_key(tid, layer, position) + ".npy", "w",
                             force_zip64=True) as fh:
                    np.lib.format.write_array(fh, decode_vector(data, shape, dtype))
                n += 1
    return n


def _probe_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    ids: set[int] = set()
    for chunk in chunks(ctx.debate_ids):
        ids.update(session.scalars(
            select(ProbeScore.probe_id).distinct().join(Turn, ProbeScore.turn_id == Turn.id)
            .where(Turn.debate_id.in_(chunk))))
    for p in session.scalars(select(Probe).where(Probe.id.in_(sorted(ids))).order_by(Probe.id)):
        yield {"id": p.id, "probe": p.name, "method": p.method, "labels": p.labels,
               "layer": p.layer, "position": p.position, "model_id": p.model_id, "dim": p.dim,
               "params": p.params, "training": p.training, "metrics": p.metrics,
               "created_at": as_utc(p.created_at)}


def _probe_score_rows(session: Session, ctx: _Context) -> Iterator[dict[str, Any]]:
    for chunk in chunks(ctx.debate_ids):
        for sid, pid, name, tid, did, rnd, role, value in session.execute(
            select(ProbeScore.id, ProbeScore.probe_id, Probe.name, ProbeScore.turn_id,
                   Turn.debate_id, Turn.round, Turn.role, ProbeScore.score)
            .join(Probe, Probe.id == ProbeScore.probe_id)
            .join(Turn, ProbeScore.turn_id == Turn.id)
            .where(Turn.debate_id.in_(chunk))
            .order_by(ProbeScore.id)
        ):
            experiment, protocol, *_ = ctx.debate_info[did]
            yield {"id": sid, "probe_id": pid, "probe": name, "turn_id": tid, "debate_id": did,
                   "experiment": experiment, "protocol": protocol, "round": rnd, "role": role,
                   "score": value}


# ---------------------------------------------------------------- writers


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            fh.write("\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    return n


def _frame(table: str, rows: Iterable[dict[str, Any]]):
    import pandas as pd

    records = list(rows)
    columns = COLUMNS[table]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for col in columns:
        # nested values (lists, objects) become JSON text: flat files hold flat cells
        if any(isinstance(v, (dict, list)) for v in frame[col]):
            frame[col] = [
                None if v is None else json.dumps(v, ensure_ascii=False, default=_json_default)
                for v in frame[col]
            ]
    return frame.convert_dtypes(), len(records)


def _write_csv(path: Path, table: str, rows: Iterable[dict[str, Any]]) -> int:
    frame, n = _frame(table, rows)
    frame.to_csv(path, index=False)
    return n


def _write_parquet(path: Path, table: str, rows: Iterable[dict[str, Any]]) -> int:
    frame, n = _frame(table, rows)
    frame.to_parquet(path, index=False)
    return n


# ---------------------------------------------------------------- the export


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out: {out_dir} is a file, not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise UserError(
            f"--out: {out_dir} exists and is not empty; choose a new directory or pass "
            "--overwrite to replace it"
        )


def _move_into_place(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:  # appeared while we were writing
            raise UserError(f"--out: {out_dir} was filled by someone else meanwhile")
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        # rename(2) replaces an empty directory in one step
        os.rename(tmp, out_dir)


def export_store(
    store: Store,
    out_dir: str | Path,
    fmt: str = "jsonl",
    *,
    experiment: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write the store's experiments (or one, by name) into `out_dir` as `fmt` files."""
    if fmt not in FORMATS:
        raise UserError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir).expanduser().resolve()
    _check_target(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    rows: dict[str, int] = {}
    try:
        with store.session() as session:
            ctx = _load_context(session, experiment, store.url)
            sources = {
                "experiments": _experiment_rows(ctx),
                "documents": _document_rows(session, ctx),
                "debates": _debate_rows(session, ctx),
                "turns": _turn_rows(session, ctx),
                "quotes": _quote_rows(session, ctx),
                "judgments": _judgment_rows(session, ctx),
                "activations": _activation_rows(session, ctx),
                "probes": _probe_rows(session, ctx),
                "probe_scores": _probe_score_rows(session, ctx),
            }
            for table, table_rows in sources.items():
                path = tmp / f"{table}.{fmt}"
                if fmt == "jsonl":
                    rows[table] = _write_jsonl(path, table_rows)
                elif fmt == "csv":
                    rows[table] = _write_csv(path, table, table_rows)
                else:
                    rows[table] = _write_parquet(path, table, table_rows)
            vectors = _write_npz(tmp / "activations.npz", session, ctx) if rows["activations"] else 0
        manifest = {
            "format": fmt,
            "exported_at": utcnow().isoformat(),
            "database": store.url,
            "experiment": experiment,
            "debate_version": __version__,
            "tables": {t: {"file": f"{t}.{fmt}", "rows": n} for t, n in rows.items()},
            "arrays": {"activations": {"file": "activations.npz", "arrays": vectors}}
            if vectors else {},
            "notes": "ids are the database's primary keys; answer indices are in each "
                     "question's own answer order (answer_order: as shown to the judge)",
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
        _move_into_place(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = tuple(out_dir / f"{t}.{fmt}" for t in rows) + (out_dir / "manifest.json",)
    if vectors:
        files += (out_dir / "activations.npz",)
    return ExportResult(out_dir, fmt, rows, files)
