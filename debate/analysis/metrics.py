"""Judge accuracy, deceptive-side win rate, the naive-to-expert gap closed, and debate vs consultancy.

Accuracy counts a verdict correct when P(correct) > 0.5 (a tie counts half). It is averaged
over the two answer orders (correct answer shown first / second) and, for consultancy,
over honest and deceptive consultants (Khan et al. 2024), so an unbalanced design does not
tilt it; `accuracy_raw` is the plain mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, norm

from debate.analysis.frames import NONE_LABEL, Prepared
from debate.analysis.intervals import ClusterBootstrap, percentile_interval, stratified_mean, wilson
from debate.analysis.load import DECEPTIVE

# Averaged over the answer orders within each consultant side, then over the sides.
CELLS = ["consultant_side", "correct_first"]
ADVERSARIAL = ("debate", "pixel")


def _merge(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return left.merge(right, on=keys, how="left") if keys else left


def _family_of(prep: Prepared) -> dict[str, str]:
    pairs = prep.debates[["protocol", "family"]].drop_duplicates("protocol")
    return dict(zip(pairs["protocol"], pairs["family"]))


def accuracy_table(prep: Prepared, boot: ClusterBootstrap | None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The accuracy table, and (with bootstrap) the replicates x rows accuracy matrix."""
    v, keys = prep.verdicts, prep.keys
    acc = stratified_mean(v, keys, "correct", CELLS).rename(
        columns={"mean": "accuracy", "raw_mean": "accuracy_raw"})
    if acc.empty:
        return acc, None
    acc["wilson_low"], acc["wilson_high"] = wilson(acc["accuracy"], acc["n"])
    replicates = None
    if boot is not None:
        groups, replicates = boot.stratified_means(v, keys, "correct", CELLS)
        low, high = percentile_interval(replicates)
        groups = groups.assign(boot_low=low, boot_high=high)
        acc = _merge(acc, groups, keys)
        # Put the replicate columns in the table's row order.
        order = acc[keys].merge(groups[keys].reset_index(), on=keys, how="left")["index"].to_numpy()
        replicates = replicates[:, order]

    deceptive_sided = v[v["family"].isin(ADVERSARIAL) | (v["consultant_side"] == DECEPTIVE)]
    won = stratified_mean(deceptive_sided.assign(deceptive_won=1 - deceptive_sided["correct"]),
                          keys, "deceptive_won", CELLS)
    acc = _merge(acc, won[[*keys, "mean"]].rename(columns={"mean": "deceptive_win_rate"}), keys)

    consult = v[v["consultant_side"] != NONE_LABEL]
    if not consult.empty:
        sides = stratified_mean(consult, [*keys, "consultant_side"], "correct", ["correct_first"])
        wide = sides.pivot_table(index=keys, columns="consultant_side", values="mean").reset_index()
        wide.columns = [c if c in keys else f"{c}_consultant_accuracy" for c in wide.columns]
        acc = _merge(acc, wide, keys)
    acc = _gap_closed(acc, prep)
    return acc, replicates


def _gap_closed(acc: pd.DataFrame, prep: Prepared) -> pd.DataFrame:
    """(protocol − naive) / (expert − naive), naive and expert judged by the same judge."""
    if "protocol" not in prep.keys:
        return acc
    family = acc["protocol"].map(_family_of(prep))
    others = [k for k in prep.keys if k != "protocol"]
    base = acc.assign(_family=family, _one=1)
    on = others or ["_one"]
    naive = base[base["_family"] == "naive"].groupby(on)["accuracy"].mean().rename("naive_accuracy")
    expert = base[base["_family"] == "expert"].groupby(on)["accuracy"].mean().rename("expert_accuracy")
    if naive.empty or expert.empty:
        return acc
    base = base.merge(naive.reset_index(), on=on, how="left").merge(expert.reset_index(), on=on, how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = (base["accuracy"] - base["naive_accuracy"]) / (base["expert_accuracy"] - base["naive_accuracy"])
    base["gap_closed"] = np.where(base["_family"].isin(["naive", "expert"]), np.nan, gap)
    return base.drop(columns=["_family", "_one"])


def significance_table(prep: Prepared, acc: pd.DataFrame, replicates: np.ndarray | None) -> pd.DataFrame:
    """Each debate protocol against each consultancy protocol, under the same other keys
    (or, when grouped by family rather than protocol, the debate family against consultancy).

    Two-proportion z-test on the verdict counts (a tie counts half), Fisher's exact test on
    the rounded counts, and with bootstrap a 95% interval for the accuracy difference.
    """
    columns = ["debate_protocol", "consultancy_protocol", "debate_accuracy", "consultancy_accuracy",
               "difference", "n_debate", "n_consultancy", "z", "p_value", "fisher_p"]
    # Compare protocols; grouped by family instead, compare the families.
    by = "protocol" if "protocol" in prep.keys else "family" if "family" in prep.keys else None
    if acc.empty or by is None:
        return pd.DataFrame(columns=columns)
    family = acc[by].map(_family_of(prep)) if by == "protocol" else acc["family"].astype(object)
    others = [k for k in prep.keys if k != by]
    rows = acc.assign(_family=family, _row=np.arange(len(acc)), _one=1)
    on = others or ["_one"]
    deb = rows[rows["_family"].isin(ADVERSARIAL)]
    con = rows[rows["_family"] == "consultancy"]
    pairs = deb.merge(con, on=on, suffixes=("_d", "_c"))
    if pairs.empty:
        return pd.DataFrame(columns=[*others, *columns])
    x1 = pairs["accuracy_raw_d"] * pairs["n_d"]
    x2 = pairs["accuracy_raw_c"] * pairs["n_c"]
    n1, n2 = pairs["n_d"].astype(float), pairs["n_c"].astype(float)
    pooled = (x1 + x2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x1 / n1 - x2 / n2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    out = pairs[others].copy() if others else pd.DataFrame(index=pairs.index)
    out["debate_protocol"] = pairs[f"{by}_d"]
    out["consultancy_protocol"] = pairs[f"{by}_c"]
    out["debate_accuracy"] = pairs["accuracy_d"]
    out["consultancy_accuracy"] = pairs["accuracy_c"]
    out["difference"] = pairs["accuracy_d"] - pairs["accuracy_c"]
    out["n_debate"] = pairs["n_d"]
    out["n_consultancy"] = pairs["n_c"]
    out["z"] = z
    out["p_value"] = 2 * norm.sf(np.abs(z))
    out["fisher_p"] = [
        fisher_exact([[round(a), round(n - a)], [round(b), round(m - b)]])[1]
        for a, n, b, m in zip(x1, n1, x2, n2)
    ]  # one test per protocol pair, not per row of data
    if replicates is not None:
        diff = replicates[:, pairs["_row_d"].to_numpy()] - replicates[:, pairs["_row_c"].to_numpy()]
        out["difference_boot_low"], out["difference_boot_high"] = percentile_interval(diff)
    return out.reset_index(drop=True)
