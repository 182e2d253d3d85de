"""Judge biases: the answer shown first, flips between the two answer orders, and length.

- first_position_win_rate: how often the judge favoured the answer shown first (a tie half).
- flip_rate: among the same judge's verdicts on the same question under the same protocol
  (and, for consultancy, the same consultant side) shown in both answer orders, how often
  the favoured answer differs between the orders.
- longer_side_win_rate: in debates, how often the judge favoured the side whose speeches had
  more characters (debates with equal lengths are left out); `longer_side_honest` says how
  often that side was the honest one, to read the rate against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debate.analysis.frames import Prepared
from debate.analysis.intervals import wilson
from debate.analysis.load import Loaded
from debate.vocabulary import SeatRole


def bias_table(prep: Prepared, loaded: Loaded) -> pd.DataFrame:
    v, keys = prep.verdicts, prep.keys
    if v.empty:
        return pd.DataFrame(columns=[*keys, "n", "first_position_win_rate"])
    out = v.groupby(keys, dropna=False).agg(
        n=("first_won", "size"), first_position_win_rate=("first_won", "mean")).reset_index()
    out["first_position_low"], out["first_position_high"] = wilson(out["first_position_win_rate"], out["n"])
    out = out.merge(_flip_rates(v, keys), on=keys, how="left")
    out = out.merge(_length_bias(v, keys, loaded), on=keys, how="left")
    return out


def _flip_rates(v: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    pair_key = list(dict.fromkeys(
        [*keys, "experiment", "question_id", "protocol", "judge_name", "judging", "consultant_side"]))
    decided = v[v["chosen"] >= 0]
    per_order = decided.groupby([*pair_key, "first_answer"], dropna=False)["chosen"].first().reset_index()
    pairs = per_order.groupby(pair_key, dropna=False).agg(
        orders=("first_answer", "nunique"), answers=("chosen", "nunique")).reset_index()
    pairs = pairs[pairs["orders"] >= 2].assign(flipped=lambda f: (f["answers"] > 1).astype(float))
    if pairs.empty:
        return pd.DataFrame(columns=[*keys, "flip_rate", "order_pairs"])
    return pairs.groupby(keys, dropna=False).agg(
        flip_rate=("flipped", "mean"), order_pairs=("flipped", "size")).reset_index()


def _length_bias(v: pd.DataFrame, keys: list[str], loaded: Loaded) -> pd.DataFrame:
    empty = pd.DataFrame(columns=[*keys, "longer_side_win_rate", "longer_side_honest", "n_length"])
    chars = loaded.speech_chars
    seats = loaded.seats[loaded.seats["role"].isin([SeatRole.A, SeatRole.B])]
    if chars.empty or seats.empty:
        return empty
    wide_chars = chars[chars["role"].isin([SeatRole.A, SeatRole.B])].pivot_table(
        index="debate_id", columns="role", values="chars", aggfunc="sum")
    wide_answers = seats.pivot_table(index="debate_id", columns="role", values="answer_index", aggfunc="first")
    both = wide_chars.add_suffix("_chars").join(wide_answers.add_suffix("_answer"), how="inner").dropna()
    if both.empty or "A_chars" not in both or "B_chars" not in both:
        return empty
    longer = np.where(both["A_chars"] > both["B_chars"], both["A_answer"],
                      np.where(both["B_chars"] > both["A_chars"], both["B_answer"], np.nan))
    longer = pd.Series(longer, index=both.index).dropna()
    sided = v[v["debate_id"].isin(longer.index)]
    if sided.empty:
        return empty
    longer_answer = sided["debate_id"].map(longer).to_numpy()
    longer_is_correct = longer_answer == sided["correct_index"].to_numpy()
    won = np.where(longer_is_correct, sided["correct"], 1 - sided["correct"])
    frame = sided[keys].assign(longer_won=won, longer_honest=longer_is_correct.astype(float))
    return frame.groupby(keys, dropna=False).agg(
        longer_side_win_rate=("longer_won", "mean"), longer_side_honest=("longer_honest", "mean"),
        n_length=("longer_won", "size")).reset_index()
