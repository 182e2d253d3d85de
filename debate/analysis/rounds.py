"""Stepped judging: P(correct) after each round, and how many rounds it takes to expose the lie.

A live (stepped) judge reports a distribution after every round; `after_round` 0 is the
judge's prior before any speech. A judgment sequence has exposed the deceptive side at the
first round from which its P(correct) stays above one half to the end of the sequence.
"""

from __future__ import annotations

import pandas as pd

from debate.analysis.frames import Prepared


def stepped_tables(prep: Prepared) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(P(correct) by round per group, rounds-to-expose summary per group)."""
    s, keys = prep.stepped, prep.keys
    by_round_cols = [*keys, "after_round", "n", "mean_p_correct", "accuracy"]
    expose_cols = [*keys, "sequences", "exposed_share", "mean_rounds_to_expose"]
    s = s[s["after_round"].notna()]
    if s.empty:
        return pd.DataFrame(columns=by_round_cols), pd.DataFrame(columns=expose_cols)
    s = s.assign(after_round=s["after_round"].astype(int))
    by_round = s.groupby([*keys, "after_round"], dropna=False).agg(
        n=("p_correct", "size"), mean_p_correct=("p_correct", "mean"), accuracy=("correct", "mean")
    ).reset_index()

    seq_keys = ["debate_id", "judge_name", *[k for k in keys if k not in ("debate_id", "judge_name")]]
    ordered = s.sort_values([*seq_keys, "after_round"], ascending=[*([True] * len(seq_keys)), False])
    above = (ordered["p_correct"] > 0.5).astype(int)
    ordered = ordered.assign(stays=above.groupby([ordered[k] for k in seq_keys], dropna=False).cummin())
    exposed_at = ordered[ordered["stays"] == 1].groupby(seq_keys, dropna=False)["after_round"].min()
    sequences = s.groupby(seq_keys, dropna=False).size().rename("rounds").reset_index()
    sequences = sequences.merge(exposed_at.rename("exposed_at").reset_index(), on=seq_keys, how="left")
    sequences["exposed"] = sequences["exposed_at"].notna().astype(float)
    expose = sequences.groupby(keys, dropna=False).agg(
        sequences=("rounds", "size"),
        exposed_share=("exposed", "mean"),
        mean_rounds_to_expose=("exposed_at", "mean"),
    ).reset_index()
    return by_round[by_round_cols], expose[expose_cols]
