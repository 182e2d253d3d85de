"""Probe training and metrics on synthetic activations with known answers.

- a planted direction is recovered (AUROC near 1) by both methods;
- shuffled labels give 0.5 within the bootstrap interval;
- a per-question feature that leaks the label is caught by grouped splitting: high AUROC
  with ungrouped folds, chance with folds grouped by question.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from debate.errors import UserError
from debate.probes.metrics import (
    _weighted_auroc,
    bootstrap_auroc,
    recall_at_fpr,
    shuffle_within,
)
from debate.probes.report import judge_table
from debate.probes.train import ProbeFit, cross_validate, fit_probe


def planted(n_questions: int = 40, per_side: int = 3, dim: int = 64, strength: float = 5.0,
            seed: int = 0):
    """Each question: `per_side` honest and `per_side` deceptive turns; deceptive turns are
    shifted along one unit direction; a per-question offset adds nuisance variance."""
    direction = np.random.default_rng(12345).normal(size=dim)  # the same for every seed
    rng = np.random.default_rng(seed)
    direction /= np.linalg.norm(direction)
    X, y, groups = [], [], []
    for q in range(n_questions):
        offset = rng.normal(scale=0.5, size=dim)
        for label in (0, 1):
            for _ in range(per_side):
                X.append(offset + rng.normal(size=dim) + strength * label * direction)
                y.append(label)
                groups.append(f"q{q}")
    return np.array(X), np.array(y), np.array(groups), direction


@pytest.mark.parametrize("method", ["logistic", "mean-diff"])
def test_a_planted_direction_is_recovered(method):
    X, y, groups, direction = planted()
    m = cross_validate(X, y, groups, method=method, folds=5, replicates=500)
    assert m["auroc"] > 0.97 and m["auroc_low"] > 0.93
    assert m["recall_at_1pct_fpr"] > 0.5
    assert m["folds"] == 5 and m["groups"] == 40 and m["n"] == 240
    fit = fit_probe(X, y, method)
    # the probe's direction (in the raw space) points along the planted one
    raw = fit.coef / fit.scale
    assert raw @ direction / np.linalg.norm(raw) > 0.6
    # a stored probe scores exactly as the fitted one
    again = ProbeFit.from_params(method, fit.to_params())
    np.testing.assert_allclose(again.score(X), fit.score(X))
    # and generalises to fresh questions
    X2, y2, _, _ = planted(seed=1)
    assert roc_auc_score(y2, fit.score(X2)) > 0.97


def test_shuffled_labels_sit_at_one_half_within_the_interval():
    X, y, groups, _ = planted(n_questions=60)
    fit = fit_probe(X, y)
    scores = fit.score(X)
    assert roc_auc_score(y, scores) > 0.97
    shuffled = shuffle_within(y, groups, seed=3)
    # shuffling within questions keeps each question's share of deceptive turns
    for g in np.unique(groups):
        assert shuffled[groups == g].sum() == y[groups == g].sum()
    point, low, high = bootstrap_auroc(shuffled, scores, groups, replicates=1000, seed=0)
    assert low <= 0.5 <= high
    assert abs(point - 0.5) < 0.1
    # and a probe trained on shuffled labels learns nothing under grouped CV
    m = cross_validate(X, shuffled, groups, replicates=500)
    assert m["auroc_low"] <= 0.5 <= m["auroc_high"] + 0.02


def test_a_leaking_per_question_feature_is_caught_by_grouped_splitting():
    """Each question's turns are all deceptive or all honest (one consultant per question)
    and each question has its own fingerprint vector: a probe can score by recognising the
    question. Ungrouped folds put the same question on both sides: high AUROC; folds
    grouped by question: chance."""
    rng = np.random.default_rng(5)
    dim, X, y, groups = 48, [], [], []
    for q in range(30):
        fingerprint = rng.normal(scale=3.0, size=dim)
        label = q % 2
        for _ in range(6):
            X.append(fingerprint + rng.normal(scale=0.5, size=dim))
            y.append(label)
            groups.append(f"q{q}")
    X, y, groups = np.array(X), np.array(y), np.array(groups)
    m = cross_validate(X, y, groups, folds=5, replicates=500)
    assert m["ungrouped_auroc"] > 0.95
    assert m["auroc_low"] <= 0.5 <= m["auroc_high"]
    assert abs(m["auroc"] - 0.5) < 0.2


def test_weighted_auroc_matches_sklearn_and_handles_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200).astype(float)
    s = np.round(rng.normal(size=200) + y, 1)  # many ties
    w = np.ones((1, 200))
    assert _weighted_auroc(y, s, w)[0] == pytest.approx(roc_auc_score(y, s))
    # integer weights equal repeating rows
    counts = rng.integers(0, 3, size=200)
    rep = np.repeat(np.arange(200), counts)
    assert _weighted_auroc(y, s, counts[None, :].astype(float))[0] == pytest.approx(
        roc_auc_score(y[rep], s[rep]))


def test_recall_at_one_percent_false_positives():
    y = np.array([0] * 100 + [1] * 10)
    s = np.r_[np.arange(100) / 100, [0.995] * 6 + [0.5] * 4]
    assert recall_at_fpr(y, s, 0.01) == pytest.approx(0.6)
    assert np.isnan(recall_at_fpr(np.zeros(5), np.arange(5.0)))


def test_one_class_or_one_group_is_a_clear_error():
    X, y, _groups, _ = planted(n_questions=3)
    with pytest.raises(UserError, match="both honest and deceptive"):
        fit_probe(X, np.zeros_like(y))
    with pytest.raises(UserError, match="at least 2 documents or questions"):
        cross_validate(X, y, np.array(["same"] * len(y)))
    with pytest.raises(UserError, match="expects vectors of size 64"):
        fit_probe(X, y).score(X[:, :10])


def test_judge_vs_probe_two_by_two_and_errors_caught():
    import pandas as pd

    rows = []
    # 4 debates: in debates 1-3 the deceptive side B scores higher (probe right), in 4 not;
    # debate 5 is a consultancy whose deceptive consultant scores above 0 (probe right)
    for d, (a, b) in enumerate([(0.1, 0.9), (0.2, 0.8), (0.3, 0.7), (0.9, 0.1)], start=1):
        for role, score, deceptive in (("A", a, 0), ("B", b, 1)):
            rows.append({"probe": "p", "layer": 1, "experiment": "e", "protocol": "debate",
                         "debate_id": d, "role": role, "score": score, "deceptive": deceptive})
    rows.append({"probe": "p", "layer": 1, "experiment": "e", "protocol": "consultancy",
                 "debate_id": 5, "role": "consultant", "score": 2.0, "deceptive": 1})
    frame = pd.DataFrame(rows)
    # judge: right on 1, wrong on 2 and 4, a tie on 3; wrong on 5 (correct answer: index 0)
    judgments = pd.DataFrame([
        {"debate_id": 1, "kind": "final", "after_round": None, "probabilities": [0.8, 0.2], "judge": "j"},
        {"debate_id": 2, "kind": "final", "after_round": None, "probabilities": [0.3, 0.7], "judge": "j"},
        {"debate_id": 3, "kind": "final", "after_round": None, "probabilities": [0.5, 0.5], "judge": "j"},
        {"debate_id": 4, "kind": "final", "after_round": None, "probabilities": [0.1, 0.9], "judge": "j"},
        {"debate_id": 5, "kind": "final", "after_round": None, "probabilities": [0.4, 0.6], "judge": "j"},
        {"debate_id": 1, "kind": "stepped", "after_round": 1, "probabilities": [0.1, 0.9], "judge": "j"},
    ])
    table = judge_table(frame, judgments, {d: 0 for d in range(1, 6)})
    deb = table[table["protocol"] == "debate"].iloc[0]
    assert (deb["judge_right_probe_right"], deb["judge_wrong_probe_right"],
            deb["judge_wrong_probe_wrong"], deb["judge_right_probe_wrong"],
            deb["judge_ties"]) == (1, 1, 1, 0, 1)
    assert deb["judge_errors_caught"] == pytest.approx(0.5)
    assert deb["caught_low"] < 0.5 < deb["caught_high"]
    assert deb["probe_accuracy"] == pytest.approx(0.75)
    con = table[table["protocol"] == "consultancy"].iloc[0]
    assert con["judge_wrong_probe_right"] == 1 and con["judge_errors_caught"] == 1.0
