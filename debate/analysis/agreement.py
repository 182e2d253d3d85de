"""Agreement between judges on the same debates: Krippendorff's alpha (nominal).

The data for alpha are the answers the judges favoured (ties left out), per debate, as
value counts (debates x answers), which is all nominal alpha needs. "humans" and "models"
take every judge of that kind on debates with two or more such verdicts; "humans vs models"
compares, per debate, the humans' majority answer with the models' (split majorities left
out). percent_agreement is the share of agreeing judge pairs.
"""

from __future__ import annotations

import warnings

import krippendorff
import numpy as np
import pandas as pd

from debate.analysis.frames import Prepared


def _alpha(counts: np.ndarray) -> float:
    if counts.shape[0] == 0 or counts.sum() < 2 or counts.shape[1] < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))
        except (ValueError, ZeroDivisionError):
            return float("nan")


def _pair_agreement(counts: np.ndarray) -> float:
    n = counts.sum(axis=1)
    pairs = (n * (n - 1)).sum()
    return float((counts * (counts - 1)).sum() / pairs) if pairs else float("nan")


def _value_counts(frame: pd.DataFrame, unit: list[str]) -> np.ndarray:
    if frame.empty:
        return np.zeros((0, 2))
    table = frame.groupby([*unit, "chosen"]).size().unstack("chosen", fill_value=0)
    table = table[table.sum(axis=1) >= 2]
    return table.to_numpy(dtype=float)


def _majority(frame: pd.DataFrame, unit: list[str]) -> pd.Series:
    if frame.empty:
        return pd.Series(dtype=np.int64)
    counts = frame.groupby([*unit, "chosen"]).size().unstack("chosen", fill_value=0)
    top = counts.to_numpy()
    best = top.max(axis=1)
    unique = (top == best[:, None]).sum(axis=1) == 1
    return pd.Series(counts.columns.to_numpy()[top.argmax(axis=1)], index=counts.index)[unique]


def agreement_table(prep: Prepared) -> pd.DataFrame:
    keys = prep.debate_keys or []
    columns = [*keys, "judges", "debates", "verdicts", "alpha", "percent_agreement"]
    v = prep.single_verdicts
    v = v[v["chosen"] >= 0]
    if v.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    groups = v.groupby(keys, dropna=False) if keys else [((), v)]
    for group_key, part in groups:  # one pass per group (few), not per row
        label = dict(zip(keys, group_key if isinstance(group_key, tuple) else (group_key,)))
        unit = ["debate_id", "judging"]
        for judge_type, name in (("human", "humans"), ("model", "models")):
            counts = _value_counts(part[part["judge_type"] == judge_type], unit)
            if counts.shape[0]:
                rows.append({**label, "judges": name, "debates": counts.shape[0],
                             "verdicts": int(counts.sum()), "alpha": _alpha(counts),
                             "percent_agreement": _pair_agreement(counts)})
        humans = _majority(part[part["judge_type"] == "human"], ["debate_id"])
        models = _majority(part[part["judge_type"] == "model"], ["debate_id"])
        shared = humans.index.intersection(models.index)
        if len(shared):
            h, m = humans.loc[shared].to_numpy(), models.loc[shared].to_numpy()
            values = np.union1d(h, m)
            counts = np.zeros((len(shared), len(values)))
            counts[np.arange(len(shared)), np.searchsorted(values, h)] += 1
            counts[np.arange(len(shared)), np.searchsorted(values, m)] += 1
            if counts.shape[1] < 2:
                counts = np.hstack([counts, np.zeros((len(shared), 1))])
            rows.append({**label, "judges": "humans vs models", "debates": len(shared),
                         "verdicts": 2 * len(shared), "alpha": _alpha(counts),
                         "percent_agreement": float(np.mean(h == m))})
    return pd.DataFrame(rows, columns=columns)
