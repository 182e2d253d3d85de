"""How well debate exposes deception: read-only analysis over the store.

    from debate.analysis import analyze
    result = analyze(store, experiments=["my-exp"], by=["protocol", "judge"], bootstrap=1000)
    result.tables["accuracy"]          # pandas DataFrames, by name
    result.to_json()                   # one JSON-ready dict
    result.plot_pngs(Path("out"))      # the PNG plots, written under out/

Tables: accuracy (with Wilson and bootstrap intervals, deceptive-side win rate, honest and
deceptive consultant accuracy, the naive-to-expert gap closed), significance (debate vs
consultancy), calibration, reliability, stepped, exposure, biases, ratings, win_rates,
quotes, agreement, and the strength curve's side_ratings, connectivity, side_win_rates,
strength and strength_fit (debate.analysis.strength).
Grouping fields (`by`): protocol, judge (each judge, plus "all humans" /
"all models"), experiment, family, judge_type, judging (final | offline), dataset, status,
debater ("A vs B", or the consultant), honest_debater, deceptive_debater, or any debate or
question metadata key (e.g. an NYU import's setting, included_in_paper).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from debate.analysis import plots
from debate.analysis.agreement import agreement_table
from debate.analysis.biases import bias_table
from debate.analysis.calibration import calibration_tables
from debate.analysis.frames import prepare
from debate.analysis.intervals import ClusterBootstrap
from debate.analysis.load import load
from debate.analysis.metrics import accuracy_table, significance_table
from debate.analysis.quoting import quote_table
from debate.analysis.ratings import rating_tables
from debate.analysis.rounds import stepped_tables
from debate.analysis.strength import STRENGTH_TABLES, strength_tables
from debate.errors import UserError
from debate.store.db import Store

DEFAULT_BY = ("protocol", "judge")
TABLE_ORDER = ("accuracy", "significance", "calibration", "reliability", "stepped", "exposure",
               "biases", "ratings", "win_rates", "quotes", "agreement", *STRENGTH_TABLES)


@dataclass
class AnalysisResult:
    tables: dict[str, pd.DataFrame]
    keys: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """One JSON-ready document: {"meta": ..., "tables": {name: [row, ...]}} (NaN -> null)."""
        return {
            "meta": self.meta,
            "tables": {name: json.loads(frame.to_json(orient="records", double_precision=6))
                       for name, frame in self.tables.items()},
        }

    def write_csv(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, frame in self.tables.items():
            path = out_dir / f"{name}.csv"
            frame.to_csv(path, index=False)
            paths.append(path)
        return paths

    def plot_pngs(self, out_dir: Path) -> list[Path]:
        """Write the plots that have data: accuracy, reliability, rounds, ratings, win_rates."""
        out_dir.mkdir(parents=True, exist_ok=True)
        t = self.tables
        made = [
            plots.accuracy_plot(t["accuracy"], self.keys, out_dir / "accuracy.png"),
            plots.reliability_plot(t["reliability"], self.keys, out_dir / "reliability.png"),
            plots.rounds_plot(t["stepped"], self.keys, out_dir / "rounds.png"),
            plots.ratings_plot(t["ratings"], out_dir / "ratings.png"),
            plots.win_rate_plot(t["win_rates"], out_dir / "win_rates.png"),
            plots.strength_plot(t["strength"], t["strength_fit"], out_dir / "strength.png"),
        ]
        return [p for p in made if p is not None]


def analyze(
    store: Store,
    experiments: list[str] | None = None,
    by: list[str] = list(DEFAULT_BY),  # noqa: B006 - never mutated
    bootstrap: int = 0,
    seed: int = 0,
    where: dict[str, str] | None = None,
    strength_bootstrap: int | None = None,
) -> AnalysisResult:
    """Every table of the analysis over `experiments` (None: all), grouped by `by`.

    bootstrap: number of cluster-bootstrap replicates (resampling source documents) for the
    accuracy and rating intervals; 0 leaves them out. where: {field: value} filters debates
    or verdicts (e.g. {"included_in_paper": "true"}) before anything is computed.
    strength_bootstrap: replicates (resampling questions) for the strength curve's tables
    (None: `bootstrap`; 0: Wilson intervals for the points, none for ratings and slopes).
    `debate analyze --table strength` asks for DEFAULT_REPLICATES when --bootstrap is 0.
    """
    if bootstrap < 0:
        raise UserError(f"--bootstrap: must be >= 0, got {bootstrap}")
    by = [b.strip() for b in by if b.strip()] or ["scope"]
    loaded = load(store, experiments, [*by, *(where or {})])
    loaded.debates["scope"] = "all"
    prep = prepare(loaded, by, where)
    boot = ClusterBootstrap(prep.debates["cluster"], bootstrap, seed) if bootstrap else None

    accuracy, replicates = accuracy_table(prep, boot)
    calibration, reliability = calibration_tables(prep)
    stepped, exposure = stepped_tables(prep)
    ratings, win_rates = rating_tables(prep, loaded, boot)
    if strength_bootstrap is None:
        strength_bootstrap = bootstrap
    strength = strength_tables(store, prep, loaded, strength_bootstrap, seed)
    tables = {
        "accuracy": accuracy,
        "significance": significance_table(prep, accuracy, replicates),
        "calibration": calibration,
        "reliability": reliability,
        "stepped": stepped,
        "exposure": exposure,
        "biases": bias_table(prep, loaded),
        "ratings": ratings,
        "win_rates": win_rates,
        "quotes": quote_table(prep, loaded),
        "agreement": agreement_table(prep),
        **strength,
    }
    meta = {
        "experiments": sorted(prep.debates["experiment"].unique().tolist()),
        "by": prep.keys,
        "where": where or {},
        "bootstrap": bootstrap,
        "seed": seed,
        "debates": len(prep.debates),
        "verdicts": len(prep.single_verdicts),
        "stepped_judgments": len(prep.stepped[prep.stepped["judge"] == prep.stepped["judge_name"]])
        if not prep.stepped.empty else 0,
        "unparsed_judgments": prep.unparsed,
    }
    return AnalysisResult({name: tables[name].reset_index(drop=True) for name in TABLE_ORDER},
                          prep.keys, meta)


__all__ = ["TABLE_ORDER", "AnalysisResult", "analyze"]
