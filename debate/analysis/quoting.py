"""Quotes by side: the honest and the deceptive debaters' verified-quote share and fuzzy score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debate.analysis.frames import Prepared
from debate.analysis.load import DECEPTIVE, HONEST, Loaded


def quote_table(prep: Prepared, loaded: Loaded) -> pd.DataFrame:
    keys = prep.debate_keys
    columns = [*keys, "side", "speakers", "quotes", "quotes_per_speaker", "verified_share", "mean_fuzzy"]
    seats = loaded.seats[loaded.seats["answer_index"].notna() & loaded.seats["role"].ne("judge")]
    debates = prep.debates[["debate_id", "correct_index", *keys]]
    seats = seats.merge(debates, on="debate_id", how="inner")
    if seats.empty:
        return pd.DataFrame(columns=columns)
    seats["side"] = np.where(seats["answer_index"] == seats["correct_index"], HONEST, DECEPTIVE)
    counts = seats.merge(loaded.quotes, on=["debate_id", "role"], how="left")
    for column in ("quotes", "verified", "fuzzy_sum"):
        counts[column] = pd.to_numeric(counts[column], errors="coerce").fillna(0.0).astype(float)
    out = counts.groupby([*keys, "side"], dropna=False).agg(
        speakers=("role", "size"), quotes=("quotes", "sum"), verified=("verified", "sum"),
        fuzzy_sum=("fuzzy_sum", "sum")).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["quotes_per_speaker"] = out["quotes"] / out["speakers"]
        out["verified_share"] = out["verified"] / out["quotes"]
        out["mean_fuzzy"] = out["fuzzy_sum"] / out["quotes"]
    return out[columns]
