"""Calibration of judges: Brier score, log score, expected calibration error, reliability bins.

Each verdict gives P(correct) = p. Brier is (1 - p)^2 (lower is better); the log score is
log2 p with p clipped at 0.001 (higher is better, 0 is perfect). The reliability diagram
pools, for every verdict, the probability given to each of the two answers (p for the
correct one, 1 - p for the other) into ten equal bins, and compares the mean probability
in a bin with how often those answers were correct; ECE is the n-weighted mean gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debate.analysis.frames import Prepared

BINS = 10
LOG_FLOOR = 1e-3


def calibration_tables(prep: Prepared) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(calibration per group, reliability bins per group)."""
    v, keys = prep.verdicts, prep.keys
    if v.empty:
        return (pd.DataFrame(columns=[*keys, "n", "brier", "log_score", "ece"]),
                pd.DataFrame(columns=[*keys, "bin", "bin_low", "bin_high", "n", "mean_predicted", "observed"]))
    p = v["p_correct"].clip(0, 1)
    scored = v[keys].assign(brier=(1 - p) ** 2, log_score=np.log2(p.clip(LOG_FLOOR, 1)))
    calib = scored.groupby(keys, dropna=False).agg(
        n=("brier", "size"), brier=("brier", "mean"), log_score=("log_score", "mean")).reset_index()

    both = pd.concat([v[keys].assign(predicted=p.to_numpy(), hit=1.0),
                      v[keys].assign(predicted=(1 - p).to_numpy(), hit=0.0)], ignore_index=True)
    # A hair of slack so that 1 - 0.9 lands in the bin of 0.1, not below it.
    both["bin"] = np.minimum(np.floor(both["predicted"] * BINS + 1e-9).astype(int), BINS - 1)
    rel = both.groupby([*keys, "bin"], dropna=False).agg(
        n=("hit", "size"), mean_predicted=("predicted", "mean"), observed=("hit", "mean")).reset_index()
    rel["bin_low"] = rel["bin"] / BINS
    rel["bin_high"] = (rel["bin"] + 1) / BINS
    gap = rel.assign(weighted=(rel["observed"] - rel["mean_predicted"]).abs() * rel["n"])
    ece = gap.groupby(keys, dropna=False).agg(w=("weighted", "sum"), total=("n", "sum"))
    ece = (ece["w"] / ece["total"]).rename("ece").reset_index()
    calib = calib.merge(ece, on=keys, how="left")
    return calib, rel[[*keys, "bin", "bin_low", "bin_high", "n", "mean_predicted", "observed"]]
