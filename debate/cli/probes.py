"""`debate probes train | list | score`: linear deception probes on debater activations."""

from __future__ import annotations

import math
from pathlib import Path

import click

from debate.cli.options import db_option
from debate.probes.train import METHODS
from debate.probes.workflow import LABELS, TrainOptions
from debate.probes.workflow import score as score_probe
from debate.probes.workflow import train as train_probe
from debate.store.db import open_store
from debate.store.probes import list_probes


def _fmt(x: object) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


@click.group()
def probes() -> None:
    """Linear probes on the debaters' captured activations (analysis and admins only)."""


@probes.command("train")
@click.argument("name")
@click.option("--experiment", required=True, metavar="E",
              help="Experiment whose debater activations the probe reads.")
@click.option("--layer", required=True, type=int, metavar="L",
              help="Hidden-state index, as captured (0: embeddings).")
@click.option("--position", type=click.Choice(["generated_mean", "prompt_last"]), default=None,
              help="Which captured vector (default: generated_mean when captured).")
@click.option("--method", type=click.Choice(METHODS), default="logistic", show_default=True)
@click.option("--labels", type=click.Choice(LABELS), default="side", show_default=True,
              help="side: the turn's speaker argues the false answer; instructed: honest vs "
                   "dishonest instruction pairs run through the same model.")
@click.option("--pairs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Instructed-pairs JSONL (default: the shipped set).")
@click.option("--C", "C", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Inverse L2 strength of the logistic regression.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Grouped cross-validation folds (by source document, else question).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Cluster-bootstrap replicates for the AUROC interval.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--replace", is_flag=True, help="Replace a probe of the same name.")
@db_option
def train(name: str, experiment: str, layer: int, position: str | None, method: str,
          labels: str, pairs: Path | None, C: float, folds: int, bootstrap: int, seed: int,
          replace: bool, db_url: str | None) -> None:
    """Train probe NAME on EXPERIMENT's activations at layer L, cross-validated by groups."""
    store = open_store(db_url)
    try:
        result = train_probe(store, name, experiment, TrainOptions(
            layer=layer, position=position, method=method, labels=labels, C=C, folds=folds,
            seed=seed, replicates=bootstrap, pairs=pairs, replace=replace))
    finally:
        store.dispose()
    m = result.metrics
    click.echo(
        f"probe {name!r} (id {result.probe_id}): {method} on {labels} labels, layer {layer}; "
        f"{m['n']} examples ({m['n_deceptive']} deceptive) in {m['groups']} groups, "
        f"{m['folds']} grouped folds")
    click.echo(
        f"grouped CV AUROC {_fmt(m['auroc'])} [{_fmt(m['auroc_low'])}, {_fmt(m['auroc_high'])}], "
        f"recall at 1% FPR {_fmt(m['recall_at_1pct_fpr'])}; ungrouped AUROC "
        f"{_fmt(m['ungrouped_auroc'])}")
    for note in result.notes:
        click.echo(note)
    click.echo(f"stored {result.scored} scores of {experiment!r}'s turns")


@probes.command("list")
@db_option
def list_cmd(db_url: str | None) -> None:
    """The stored probes with their training data and cross-validated metrics."""
    store = open_store(db_url)
    try:
        rows = list_probes(store)
    finally:
        store.dispose()
    if not rows:
        click.echo("no probes (train one with `debate probes train`)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "method", "labels", "layer", "position", "model", "trained on",
                  "n", "CV AUROC", "95% interval", "recall@1%FPR", "scored turns")
    for p in rows:
        m = p.metrics
        table.add_row(str(p.id), p.name, p.method, p.labels, str(p.layer), p.position,
                      p.model_id or "?", str(p.training.get("experiment")), str(m.get("n")),
                      _fmt(m.get("auroc")),
                      f"[{_fmt(m.get('auroc_low'))}, {_fmt(m.get('auroc_high'))}]",
                      _fmt(m.get("recall_at_1pct_fpr")), str(p.scored_turns))
    Console(width=200).print(table)


@probes.command("score")
@click.argument("name")
@click.option("--experiment", required=True, metavar="E2",
              help="Experiment whose turns the probe scores (same model architecture and size).")
@db_option
def score(name: str, experiment: str, db_url: str | None) -> None:
    """Score EXPERIMENT's debater turns with probe NAME (scores go to analysis and exports)."""
    store = open_store(db_url)
    try:
        result = score_probe(store, name, experiment)
    finally:
        store.dispose()
    for note in result.notes:
        click.echo(note)
    click.echo(f"probe {name!r} scored {result.scored} turns of {experiment!r}; "
               f"AUROC on side labels {_fmt(result.auroc)}")
