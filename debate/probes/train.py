"""Linear probes: logistic regression on standardised activations, or the difference of
class means; cross-validated with folds grouped by source document and question.

A probe's score of a vector x is  ((x - mean) / scale) . coef + intercept : higher means
more deceptive, above 0 means "deceptive" at the probe's own threshold.

- logistic: scikit-learn StandardScaler + LogisticRegression (L2, `C`), the method of
  Goldowsky-Dill et al. 2025; the score is the log-odds.
- mean-diff: coef = mean(deceptive) - mean(honest) on the raw vectors (mean 0, scale 1),
  intercept puts the threshold half-way between the two class means' projections.

Grouped cross-validation (GroupKFold): the turns of one source document (or, without a
document, one question) are all in the training folds or all in the test fold, so a probe
cannot score well by recognising the question. The ungrouped (stratified) figure is
reported beside it: a large gap between the two says the probe leans on the question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from debate.errors import UserError
from debate.probes.metrics import auroc, bootstrap_auroc, recall_at_fpr

METHODS = ("logistic", "mean-diff")


@dataclass
class ProbeFit:
    method: str
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def score(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != len(self.coef):
            raise UserError(f"probe expects vectors of size {len(self.coef)}, got {X.shape[1]}")
        return ((X - self.mean) / self.scale) @ self.coef + self.intercept

    def to_params(self) -> dict[str, Any]:
        return {"coef": self.coef.tolist(), "intercept": float(self.intercept),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(), **self.extra}

    @staticmethod
    def from_params(method: str, params: dict[str, Any]) -> ProbeFit:
        extra = {k: v for k, v in params.items() if k not in ("coef", "intercept", "mean", "scale")}
        return ProbeFit(method, np.asarray(params["coef"], dtype=np.float64),
                        float(params["intercept"]), np.asarray(params["mean"], dtype=np.float64),
                        np.asarray(params["scale"], dtype=np.float64), extra)


def fit_probe(X: np.ndarray, y: np.ndarray, method: str = "logistic", C: float = 1.0,
              seed: int = 0) -> ProbeFit:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise UserError("probe training needs both honest and deceptive examples")
    if method == "logistic":
        scaler = StandardScaler().fit(X)
        scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        model = LogisticRegression(C=C, max_iter=5000, random_state=seed)
        model.fit((X - scaler.mean_) / scale, y)
        return ProbeFit(method, model.coef_[0].copy(), float(model.intercept_[0]),
                        scaler.mean_.copy(), scale, {"C": C})
    if method == "mean-diff":
        mu1, mu0 = X[y == 1].mean(axis=0), X[y == 0].mean(axis=0)
        d = mu1 - mu0
        return ProbeFit(method, d, -float((mu1 + mu0) @ d / 2), np.zeros(X.shape[1]),
                        np.ones(X.shape[1]))
    raise UserError(f"--method: unknown method {method!r}; known: {', '.join(METHODS)}")


def out_of_fold_scores(X: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                       method: str, C: float, seed: int) -> np.ndarray:
    scores = np.full(len(y), np.nan)
    for train, test in splits:
        if len(np.unique(y[train])) < 2:
            continue
        scores[test] = fit_probe(X[train], y[train], method, C, seed).score(X[test])
    return scores


def grouped_splits(y: np.ndarray, groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise UserError(
            f"cross-validation needs turns from at least 2 documents or questions, got {n_groups}")
    return list(GroupKFold(n_splits=min(folds, n_groups)).split(np.zeros(len(y)), y, groups))


def cross_validate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, method: str = "logistic",
                   C: float = 1.0, folds: int = 5, seed: int = 0,
                   replicates: int = 1000) -> dict[str, Any]:
    """Grouped out-of-fold AUROC (with a cluster-bootstrap interval) and recall at 1% FPR,
    and the ungrouped AUROC for comparison."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups).astype(str)
    splits = grouped_splits(y, groups, folds)
    scores = out_of_fold_scores(X, y, splits, method, C, seed)
    ok = ~np.isnan(scores)
    point, low, high = bootstrap_auroc(y[ok], scores[ok], groups[ok], replicates, seed)
    fold_aurocs = [auroc(y[test], scores[test]) for _, test in splits]
    minority = int(min(np.bincount(y, minlength=2)))
    ungrouped = float("nan")
    if minority >= 2:
        strat = list(StratifiedKFold(n_splits=min(folds, minority), shuffle=True,
                                     random_state=seed).split(X, y))
        u_scores = out_of_fold_scores(X, y, strat, method, C, seed)
        ungrouped = auroc(y, u_scores)
    return {
        "method": method, "n": len(y), "n_deceptive": int(y.sum()),
        "groups": len(np.unique(groups)), "folds": len(splits),
        "auroc": point, "auroc_low": low, "auroc_high": high,
        "recall_at_1pct_fpr": recall_at_fpr(y[ok], scores[ok], 0.01),
        "fold_auroc": fold_aurocs, "ungrouped_auroc": ungrouped,
    }
