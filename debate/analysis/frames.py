"""From loaded rows to the analysis frames: verdicts, stepped judgments, debates with groups.

A verdict is one judge's last word on one debate: a `final` judgment, or an offline judge's
last `offline` judgment. `correct` is 1 when P(correct) > 0.5, 0.5 on a tie, else 0.
Grouping fields (`by`) are columns (protocol, judge, experiment, family, judge_type,
judging, dataset) or metadata keys, looked up in the debate's metadata, then the question's.
With `judge` among them, verdicts are repeated under "all humans" and "all models".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from debate.analysis.load import DECEPTIVE, HONEST, Loaded
from debate.vocabulary import SPEAKING_SEATS, JudgmentKind, SeatRole

ALL_HUMANS = "all humans"
ALL_MODELS = "all models"
COLUMNS = ("protocol", "judge", "experiment", "family", "judge_type", "judging", "dataset", "status", "scope",
           "debater", "honest_debater", "deceptive_debater")
DEBATER_FIELDS = ("debater", "honest_debater", "deceptive_debater")
NONE_LABEL = "(none)"


@dataclass
class Prepared:
    verdicts: pd.DataFrame  # judge verdicts, plus "all humans"/"all models" copies
    single_verdicts: pd.DataFrame  # one row per judge verdict (no aggregate copies)
    stepped: pd.DataFrame  # stepped judgments (live judges, each round), with groups
    debates: pd.DataFrame  # one row per debate, with groups (judge-free fields)
    keys: list[str]  # grouping columns for verdict tables
    debate_keys: list[str]  # grouping columns that do not depend on the judge
    unparsed: int  # judgments without usable probabilities


def _three_way(p: np.ndarray) -> np.ndarray:
    """1 above one half, 0.5 at one half, 0 below (NaN stays NaN)."""
    out = np.where(p > 0.5, 1.0, np.where(np.isclose(p, 0.5), 0.5, 0.0))
    return np.where(np.isnan(p), np.nan, out)


def _pick(probs: np.ndarray, index: np.ndarray) -> np.ndarray:
    ok = (index >= 0) & (index < probs.shape[1])
    out = np.full(len(index), np.nan)
    rows = np.nonzero(ok)[0]
    out[rows] = probs[rows, index[rows]]
    return out


def _apply_where(debates: pd.DataFrame, where: dict[str, str]) -> pd.DataFrame:
    keep = np.ones(len(debates), dtype=bool)
    for field, wanted in where.items():
        if field in ("judge", "judge_type", "judging"):
            continue  # applied to verdicts
        keep &= debates[field].astype(str).str.lower().to_numpy() == str(wanted).lower()
    return debates[keep]


def _with_debaters(debates: pd.DataFrame, loaded: Loaded) -> pd.DataFrame:
    """debater ("A vs B", or the consultant), honest_debater and deceptive_debater per debate."""
    seats = loaded.seats[loaded.seats["role"].isin(SPEAKING_SEATS) & loaded.seats["agent_id"].notna()]
    labels = loaded.agents.set_index("id")["label"]
    seats = seats.assign(label=seats["agent_id"].astype(np.int64).map(labels).astype(object))
    wide = seats.pivot_table(index="debate_id", columns="role", values="label", aggfunc="first")
    for role in SPEAKING_SEATS:
        if role not in wide:
            wide[role] = None
    a, b = wide[SeatRole.A], wide[SeatRole.B]
    pair = (a.fillna("?") + " vs " + b.fillna("?")).where(a.notna() | b.notna())
    debater = pair.fillna(wide[SeatRole.CONSULTANT])
    debates["debater"] = pd.Categorical(debates["debate_id"].map(debater).fillna(NONE_LABEL).astype(object))
    correct = debates.set_index("debate_id")["correct_index"]
    seats = seats[seats["answer_index"].notna()]
    honest = seats["answer_index"].to_numpy() == seats["debate_id"].map(correct).to_numpy()
    for name, mask in (("honest_debater", honest), ("deceptive_debater", ~honest)):
        by_debate = seats[mask].drop_duplicates("debate_id").set_index("debate_id")["label"]
        debates[name] = pd.Categorical(debates["debate_id"].map(by_debate).fillna(NONE_LABEL).astype(object))
    return debates


def _by_agent(agent_key: pd.Series, values: pd.Series, missing: str,
              extra: list[str] = ()) -> pd.Categorical:
    """A categorical of values[agent] per row, built from integer codes (no string per row)."""
    ids = pd.Index(pd.unique(agent_key.to_numpy()))
    per_id = values.reindex(ids).fillna(missing).astype(object).to_numpy()
    categories = pd.Index(pd.unique(per_id))
    codes_of_id = categories.get_indexer(per_id)
    codes = codes_of_id[ids.get_indexer(agent_key.to_numpy())]
    return pd.Categorical.from_codes(codes, categories=[*categories, *[e for e in extra if e not in categories]])


def prepare(loaded: Loaded, by: list[str], where: dict[str, str] | None = None) -> Prepared:
    """Verdict and stepped frames with every grouping column (metadata already loaded)."""
    where = where or {}
    fields = list(dict.fromkeys([*by, *where]))  # metadata fields were fetched by load()
    debates = loaded.debates.copy()
    if any(f in DEBATER_FIELDS for f in fields):
        debates = _with_debaters(debates, loaded)
    consultants = loaded.seats[loaded.seats["role"] == SeatRole.CONSULTANT].drop_duplicates("debate_id")
    side_answer = debates["debate_id"].map(consultants.set_index("debate_id")["answer_index"])
    debates["consultant_side"] = pd.Categorical(np.where(
        side_answer.isna(), NONE_LABEL,
        np.where(side_answer == debates["correct_index"], HONEST, DECEPTIVE)))
    debates["correct_first"] = debates["first_answer"] == debates["correct_index"]
    debates = _apply_where(debates, where)

    judgments = loaded.judgments
    probs = loaded.probabilities
    info = debates.set_index("debate_id")
    keep = judgments["debate_id"].isin(info.index).to_numpy()
    judgments, probs = judgments[keep].reset_index(drop=True), probs[keep]
    if len(judgments) == 0:
        probs = np.zeros((0, 2))
    correct_index = judgments["debate_id"].map(info["correct_index"]).to_numpy(dtype=np.int64)
    first_answer = judgments["debate_id"].map(info["first_answer"]).to_numpy(dtype=np.int64)
    p_correct = _pick(probs, correct_index)
    p_first = _pick(probs, first_answer)
    frame = judgments[["judgment_id", "debate_id", "kind", "after_round"]].copy()
    frame["p_correct"] = p_correct
    frame["correct"] = _three_way(p_correct)
    frame["first_won"] = _three_way(p_first)
    # The answer the judge favoured, in the question's order (-1: no single favourite).
    top = np.nan_to_num(probs, nan=-1.0)
    chosen = top.argmax(axis=1) if len(top) else np.zeros(0, dtype=np.int64)
    if top.shape[1] >= 2 and len(top):
        two = np.sort(top, axis=1)[:, -2:]
        chosen = np.where(np.isclose(two[:, 0], two[:, 1]), -1, chosen)
    frame["chosen"] = chosen
    agent_key = judgments["judge_agent_id"].fillna(-judgments["user_id"].fillna(0)).astype(np.int64)
    agents = loaded.agents.set_index("id")
    frame["judge"] = _by_agent(agent_key, agents["label"].fillna("(unknown judge)"), "(unknown judge)",
                               [ALL_HUMANS, ALL_MODELS])
    frame["judge_type"] = _by_agent(agent_key, agents["judge_type"], "model")
    frame["judge_name"] = frame["judge"]  # kept when verdicts are pooled under "all humans"
    unparsed = int(np.isnan(frame["p_correct"]).sum())
    frame = frame[~np.isnan(frame["p_correct"])]

    frame = frame.merge(debates, on="debate_id", how="left")

    finals = frame[frame["kind"] == JudgmentKind.FINAL].assign(judging="final")
    offline = frame[frame["kind"] == JudgmentKind.OFFLINE].assign(
        _order=lambda f: f["after_round"].fillna(np.iinfo(np.int32).max))
    offline = (offline.sort_values(["debate_id", "judge", "_order", "judgment_id"])
               .drop_duplicates(["debate_id", "judge"], keep="last")
               .drop(columns="_order").assign(judging="offline"))
    single = pd.concat([finals, offline], ignore_index=True)
    single["judging"] = pd.Categorical(single["judging"])
    where_verdicts = {k: v for k, v in where.items() if k in ("judge", "judge_type", "judging")}
    for field, wanted in where_verdicts.items():
        single = single[single[field].astype(str).str.lower() == str(wanted).lower()]

    stepped = frame[frame["kind"] == JudgmentKind.STEPPED].assign(judging="stepped")
    keys = list(dict.fromkeys(by))
    if single["judging"].nunique() > 1 and "judging" not in keys:
        keys.append("judging")
    verdicts = _with_pooled_judges(single) if "judge" in keys else single
    stepped = _with_pooled_judges(stepped) if "judge" in keys else stepped
    debate_keys = [k for k in keys if k not in ("judge", "judge_type", "judging")]
    return Prepared(verdicts.reset_index(drop=True), single.reset_index(drop=True),
                    stepped.reset_index(drop=True), debates.reset_index(drop=True), keys,
                    debate_keys, unparsed)


def _with_pooled_judges(frame: pd.DataFrame) -> pd.DataFrame:
    """Add copies of the verdicts under "all humans" / "all models" where a type has 2+ judges."""
    parts = [frame]
    for judge_type, label in (("human", ALL_HUMANS), ("model", ALL_MODELS)):
        subset = frame[frame["judge_type"] == judge_type]
        if subset["judge"].nunique() > 1:
            pooled = subset.copy()
            pooled["judge"] = pd.Categorical([label] * len(pooled), categories=frame["judge"].cat.categories)
            parts.append(pooled)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else frame
