"""`debate probes train | score`: from stored activations to stored probes and scores.

Training with `labels: side` fits on the experiment's own turns (deceptive: the speaker
argues the false answer) and stores the grouped cross-validation's out-of-fold scores as
the probe's scores of that experiment: every stored score of a training turn comes from a
probe that never saw that turn's document or question. Training with `labels: instructed`
fits on the instructed pairs run through the experiment's debater model and capture path,
then scores the experiment's turns (a transfer test, as in Goldowsky-Dill et al. 2025).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from debate.agents.model import ModelDebaterSettings
from debate.backends.capture import CaptureSpec
from debate.backends.settings import build_backend, release_backend
from debate.errors import UserError
from debate.probes.data import TurnFeatures, available_layers, experiment_ids, load_turns
from debate.probes.instructed import instructed_activations, load_statements
from debate.probes.metrics import auroc
from debate.probes.train import (
    METHODS,
    ProbeFit,
    cross_validate,
    fit_probe,
    grouped_splits,
    out_of_fold_scores,
)
from debate.store.db import Store
from debate.store.models import Agent, Debate, Experiment, Seat
from debate.store.probes import ProbeRecord, get_probe, save_probe, write_probe_scores

LABELS = ("side", "instructed")


@dataclass
class TrainOptions:
    layer: int
    position: str | None = None
    method: str = "logistic"
    labels: str = "side"
    C: float = 1.0
    folds: int = 5
    seed: int = 0
    replicates: int = 1000
    pairs: Path | None = None
    max_new_tokens: int = 8
    replace: bool = False


@dataclass
class TrainResult:
    probe_id: int
    metrics: dict[str, Any]
    scored: int
    notes: list[str] = field(default_factory=list)


def _features(store: Store, experiment: str, layer: int, position: str | None) -> tuple[TurnFeatures, str]:
    captured = available_layers(store, [experiment])
    if not captured:
        raise UserError(f"--experiment: {experiment!r} has no captured activations (give its "
                        "model debater an `activations:` block and rerun it)")
    positions = [p for lay, p in captured if lay == layer]
    if not positions:
        known = ", ".join(sorted({str(lay) for lay, _ in captured}))
        raise UserError(f"--layer: {experiment!r} has no activations at layer {layer}; "
                        f"captured layers: {known}")
    if position is None:
        position = "generated_mean" if "generated_mean" in positions else positions[0]
    elif position not in positions:
        raise UserError(f"--position: {experiment!r} has no {position!r} vectors at layer "
                        f"{layer}; captured: {', '.join(positions)}")
    feats = load_turns(store, [experiment], layer, position)
    models = sorted({m for m in feats.turns["model_id"].dropna().unique()})
    if len(models) > 1:
        raise UserError(f"--experiment: {experiment!r} has activations of {len(models)} models "
                        f"({', '.join(models)}); a probe reads one model's activations")
    return feats, position


def _debater_settings(store: Store, experiment: str) -> tuple[ModelDebaterSettings, str]:
    """The experiment's capturing model debater (settings, resolved model path or id)."""
    exp_id = experiment_ids(store, [experiment])[experiment]
    with store.session() as session:
        config = session.get(Experiment, exp_id).config
        models = session.execute(
            select(Agent.model_id, Agent.backend).distinct()
            .join(Seat, Seat.agent_id == Agent.id).join(Debate, Debate.id == Seat.debate_id)
            .where(Debate.experiment_id == exp_id, Agent.kind == "model")
        ).all()
    for key in ("debater", "deceptive_debater", "honest_debater"):
        spec = config.get(key)
        if isinstance(spec, dict) and spec.get("type") == "model" and spec.get("activations"):
            settings = ModelDebaterSettings.model_validate(
                {k: v for k, v in spec.items() if k != "type"})
            # the agents table holds the model as it was loaded (a relative directory in
            # the config resolved against the config's folder)
            ids = [m for m, _b in models if m]
            resolved = settings.model if settings.model in ids else (
                ids[0] if len(ids) == 1 else settings.model)
            return settings, resolved
    raise UserError(f"--labels instructed: {experiment!r} has no model debater with "
                    "`activations:` whose model could run the instructed pairs")


def train(store: Store, name: str, experiment: str, opts: TrainOptions) -> TrainResult:
    if opts.method not in METHODS:
        raise UserError(f"--method: unknown method {opts.method!r}; known: {', '.join(METHODS)}")
    if opts.labels not in LABELS:
        raise UserError(f"--labels: unknown labels {opts.labels!r}; known: {', '.join(LABELS)}")
    feats, position = _features(store, experiment, opts.layer, opts.position)
    if feats.turns.empty:
        raise UserError(f"--experiment: {experiment!r} has no debater turns with activations")
    model_id = str(feats.turns["model_id"].dropna().iloc[0]) if feats.turns["model_id"].notna().any() else None
    notes: list[str] = []
    if opts.labels == "side":
        X, y, groups = feats.X, feats.y, feats.groups
        metrics = cross_validate(X, y, groups, opts.method, opts.C, opts.folds, opts.seed,
                                 opts.replicates)
        fit = fit_probe(X, y, opts.method, opts.C, opts.seed)
        splits = grouped_splits(y, groups.astype(str), opts.folds)
        held_out = out_of_fold_scores(X, y, splits, opts.method, opts.C, opts.seed)
        scores = {int(t): float(s) for t, s in zip(feats.turns["turn_id"], held_out)
                  if not np.isnan(s)}
        training = {"experiment": experiment, "labels": "side", "turns": len(y),
                    "deceptive": int(y.sum()), "groups": len(np.unique(groups)),
                    "scores_of_training_experiment": "out-of-fold (grouped cross-validation)"}
    else:
        settings, model = _debater_settings(store, experiment)
        statements, sha = load_statements(opts.pairs)
        backend = build_backend(settings.backend_settings().model_copy(update={"model": model}),
                                "debater")
        try:
            dtype = settings.activations.dtype if settings.activations else "float16"
            X, y, groups = instructed_activations(
                backend, CaptureSpec((opts.layer,), (position,), dtype), statements,
                opts.max_new_tokens)
        finally:
            release_backend(backend)
        if X.shape[1] != feats.X.shape[1]:
            raise UserError(f"--labels instructed: the pairs gave vectors of size {X.shape[1]}, "
                            f"the experiment's are {feats.X.shape[1]}")
        metrics = cross_validate(X, y, groups, opts.method, opts.C, opts.folds, opts.seed,
                                 opts.replicates)
        fit = fit_probe(X, y, opts.method, opts.C, opts.seed)
        transfer = fit.score(feats.X)
        metrics["transfer_auroc_side"] = auroc(feats.y, transfer)
        scores = {int(t): float(s) for t, s in zip(feats.turns["turn_id"], transfer)}
        training = {"experiment": experiment, "labels": "instructed",
                    "pairs_file": str(opts.pairs or "debate/data/instructed_pairs.jsonl"),
                    "pairs_sha256": sha, "statements": len(statements), "examples": len(y),
                    "model": model, "max_new_tokens": opts.max_new_tokens,
                    "scores_of_training_experiment": "transfer (trained on the pairs only)"}
        notes.append(f"instructed pairs: {len(statements)} statements x 2 instructions through "
                     f"{model}; transfer AUROC on {experiment!r}: {metrics['transfer_auroc_side']:.3f}")
    training.update({"C": opts.C, "folds": opts.folds, "seed": opts.seed})
    probe_id = save_probe(
        store, name=name, method=opts.method, labels=opts.labels, layer=opts.layer,
        position=position, model_id=model_id, dim=int(feats.X.shape[1]),
        params=fit.to_params(), training=training, metrics=_jsonable(metrics),
        replace=opts.replace)
    scored = write_probe_scores(store, probe_id, scores)
    return TrainResult(probe_id, metrics, scored, notes)


@dataclass
class ScoreResult:
    probe: ProbeRecord
    scored: int
    auroc: float
    notes: list[str] = field(default_factory=list)


def score(store: Store, name: str, experiment: str) -> ScoreResult:
    probe = get_probe(store, name)
    if probe.labels == "side" and probe.training.get("experiment") == experiment:
        raise UserError(f"--experiment: {experiment!r} is the training experiment of probe "
                        f"{name!r}; its held-out (cross-validated) scores were stored at training")
    feats, _ = _features(store, experiment, probe.layer, probe.position)
    if feats.X.shape[1] != probe.dim:
        raise UserError(f"--experiment: {experiment!r} has vectors of size {feats.X.shape[1]} at "
                        f"layer {probe.layer}; probe {name!r} reads size {probe.dim} (another "
                        "architecture or size)")
    notes = []
    models = sorted({str(m) for m in feats.turns["model_id"].dropna().unique()})
    if probe.model_id and models and models != [probe.model_id]:
        notes.append(f"note: probe trained on {probe.model_id}, scoring activations of "
                     f"{', '.join(models)} (same vector size)")
    fit = ProbeFit.from_params(probe.method, probe.params)
    values = fit.score(feats.X)
    n = write_probe_scores(store, probe.id, {int(t): float(s) for t, s in
                                             zip(feats.turns["turn_id"], values)})
    return ScoreResult(probe, n, auroc(feats.y, values), notes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
