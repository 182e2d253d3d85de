"""AUROC with a cluster-bootstrap interval, recall at a false-positive rate, shuffled labels.

The bootstrap resamples clusters (source documents, else questions) with replacement, as
the rest of the analysis does: turns of one debate or one story are not independent. A
replicate's AUROC is the weighted Mann-Whitney statistic with each turn weighted by how
often its cluster was drawn, computed for a chunk of replicates at once (numpy), so 1,000
replicates cost a few matrix operations, not 1,000 calls.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

CHUNK = 200


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, scores))


def _weighted_auroc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC per row of `weights` (replicates x turns); ties count half."""
    order = np.argsort(scores, kind="mergesort")
    s, yy, w = scores[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each tie block
    pos = np.add.reduceat(w * yy, starts, axis=1)
    neg = np.add.reduceat(w * (1 - yy), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bootstrap_auroc(y: np.ndarray, scores: np.ndarray, clusters: np.ndarray,
                    replicates: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float, float]:
    """(AUROC, low, high): percentile interval over cluster-bootstrap replicates."""
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    point = auroc(y, scores)
    if np.isnan(point) or replicates <= 0:
        return point, float("nan"), float("nan")
    labels, codes = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    k = len(labels)
    rng = np.random.default_rng(seed)
    values = []
    done = 0
    while done < replicates:
        size = min(CHUNK, replicates - done)
        draws = rng.multinomial(k, np.full(k, 1.0 / k), size=size).astype(float)
        values.append(_weighted_auroc(y, scores, draws[:, codes]))
        done += size
    reps = np.concatenate(values)
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0:
        return point, float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return point, float(low), float(high)


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, fpr: float = 0.01) -> float:
    """Share of deceptive turns caught at the highest threshold whose false-positive rate on
    honest turns is at most `fpr` (the Apollo figure at 1%)."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    f, t, _ = roc_curve(y, scores)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN without trials)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z**2 / n
    center = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(max(center - half, 0.0)), float(min(center + half, 1.0))


def shuffle_within(y: np.ndarray, groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels permuted within each group (question or document): the control that keeps
    each group's share of deceptive turns and breaks everything else."""
    y = np.asarray(y).copy()
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups).astype(str)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        y[idx] = y[rng.permutation(idx)]
    return y
