"""Probes and their scores in the store: save, list, find, and write scores per turn.

Probe scores say which side a probe thinks deceives: they are ground truth in disguise and
are read only by the analysis, the exports and the admin's Browse view (never by a judge's
view or a model judge's prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from debate.errors import UserError
from debate.store.db import Store
from debate.store.models import Probe, ProbeScore

CHUNK = 1000


@dataclass(frozen=True)
class ProbeRecord:
    id: int
    name: str
    method: str
    labels: str
    layer: int
    position: str
    model_id: str | None
    dim: int
    params: dict[str, Any]
    training: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    scored_turns: int = 0


def _record(p: Probe, scored: int = 0) -> ProbeRecord:
    return ProbeRecord(p.id, p.name, p.method, p.labels, p.layer, p.position, p.model_id, p.dim,
                       p.params, p.training, p.metrics, p.created_at, scored)


def save_probe(store: Store, *, name: str, method: str, labels: str, layer: int, position: str,
               model_id: str | None, dim: int, params: dict[str, Any], training: dict[str, Any],
               metrics: dict[str, Any], replace: bool = False) -> int:
    """Store a trained probe; an existing name is an error unless `replace` (its scores go)."""
    with store.write_session() as session:
        old = session.scalars(select(Probe).where(Probe.name == name)).one_or_none()
        if old is not None:
            if not replace:
                raise UserError(f"NAME: a probe named {name!r} exists (use --replace)")
            session.execute(delete(ProbeScore).where(ProbeScore.probe_id == old.id))
            session.delete(old)
            session.flush()
        probe = Probe(name=name, method=method, labels=labels, layer=layer, position=position,
                      model_id=model_id, dim=dim, params=params, training=training,
                      metrics=metrics)
        session.add(probe)
        session.flush()
        return probe.id


def get_probe(store: Store, name: str) -> ProbeRecord:
    with store.session() as session:
        p = session.scalars(select(Probe).where(Probe.name == name)).one_or_none()
        if p is None:
            raise UserError(f"NAME: no probe named {name!r} (see `debate probes list`)")
        return _record(p)


def list_probes(store: Store) -> list[ProbeRecord]:
    with store.session() as session:
        counts = dict(session.execute(
            select(ProbeScore.probe_id, func.count()).group_by(ProbeScore.probe_id)).all())
        return [_record(p, counts.get(p.id, 0))
                for p in session.scalars(select(Probe).order_by(Probe.id))]


def write_probe_scores(store: Store, probe_id: int, scores: dict[int, float]) -> int:
    """Replace this probe's scores of these turns in one transaction; returns the count."""
    turn_ids = sorted(scores)
    with store.write_session() as session:
        for i in range(0, len(turn_ids), CHUNK):
            chunk = turn_ids[i: i + CHUNK]
            session.execute(delete(ProbeScore).where(ProbeScore.probe_id == probe_id,
                                                     ProbeScore.turn_id.in_(chunk)))
        if turn_ids:
            session.execute(ProbeScore.__table__.insert(), [
                {"probe_id": probe_id, "turn_id": t, "score": float(scores[t])} for t in turn_ids
            ])
    return len(turn_ids)


def probe_scores(store: Store, probe_ids: list[int] | None = None) -> list[tuple[int, int, float]]:
    """(probe id, turn id, score) rows."""
    query = select(ProbeScore.probe_id, ProbeScore.turn_id, ProbeScore.score)
    if probe_ids is not None:
        query = query.where(ProbeScore.probe_id.in_(probe_ids))
    with store.session() as session:
        return [(int(p), int(t), float(s)) for p, t, s in session.execute(query)]


def turn_probe_scores(store: Store, turn_ids: list[int]) -> dict[int, list[tuple[str, float]]]:
    """Per turn: (probe name, score), for the admin's Browse view."""
    out: dict[int, list[tuple[str, float]]] = {}
    with store.session() as session:
        for i in range(0, len(turn_ids), CHUNK):
            for tid, name, score in session.execute(
                select(ProbeScore.turn_id, Probe.name, ProbeScore.score)
                .join(Probe, Probe.id == ProbeScore.probe_id)
                .where(ProbeScore.turn_id.in_(turn_ids[i: i + CHUNK]))
                .order_by(Probe.name)
            ):
                out.setdefault(int(tid), []).append((name, float(score)))
    return out
