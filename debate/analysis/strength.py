"""The strength-accuracy curve (Khan et al. 2024): does the judge get more right as the
debaters get stronger?

For every judge (model judges and people: each person, and "all humans" when there are
two or more) and protocol:
- x: each debater's aggregate rating, the mean of its true-side and false-side
  Bradley-Terry ratings (Elo scale) fitted on that judge's debate verdicts, self-play
  included (a judge with no debate verdicts, e.g. a consultancy-only campaign, uses the
  ratings from all judges' verdicts: column rating_judge);
- y: the judge's accuracy in self-play (both debate seats held by that debater; in
  consultancy, that debater as consultant, honest and deceptive halves averaged), and
  the deceptive side's win rate (debate: the judge chose the false answer; consultancy:
  the deceptive consultant convinced the judge);
- the slope of y on x (per 100 Elo, least squares over the debaters) with a percentile
  interval from a bootstrap that resamples questions (a question is the same question in
  every game of a tournament: clustered by its content, not its row) and refits the
  ratings and the accuracies in each replicate.

Tables: side_ratings (true, false and aggregate ratings per judge and debater, with
intervals and a rated / bounded / unratable status), connectivity (every (debater, side)
player that cannot be rated, and why), side_win_rates (honest debater x deceptive
debater win-rate matrix per judge), strength (the curve's points) and strength_fit
(the slopes).

In Python, for a store and a list of experiments (e.g. a tournament's):

    from debate.analysis.strength import strength_analysis
    result = strength_analysis(store, experiments, bootstrap=200)
    result.tables["strength_fit"]; result.plot(Path("strength.png"))
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from debate.analysis.frames import Prepared, prepare
from debate.analysis.intervals import ClusterBootstrap, percentile_interval, wilson
from debate.analysis.load import DECEPTIVE, Loaded, agent_labels, load
from debate.analysis.plots import strength_plot
from debate.analysis.ratings import _matches, fit_side_ratings, side_player_frame
from debate.store.db import Store
from debate.store.models import Question as QuestionRow
from debate.vocabulary import SPEAKING_SEATS

ALL_JUDGES = "all judges"
ALL_HUMANS = "all humans"
PER_ELO = 100.0  # slopes are per 100 Elo points
DEFAULT_REPLICATES = 200
FAMILIES = ("debate", "consultancy")
STRENGTH_TABLES = ("side_ratings", "connectivity", "side_win_rates", "strength", "strength_fit")

RATING_COLS = ["judge", "debater", "rating", "low", "high", "true_rating", "true_low", "true_high",
               "false_rating", "false_low", "false_high", "true_matches", "false_matches", "status"]
CHECK_COLS = ["judge", "player", "status", "reason", "matches", "opponents"]
MATRIX_COLS = ["judge", "honest", "deceptive", "honest_win_rate", "matches"]
POINT_COLS = ["judge", "protocol", "family", "debater", "rating", "rating_low", "rating_high",
              "rating_judge", "n", "accuracy", "accuracy_low", "accuracy_high",
              "deceptive_win_rate", "deceptive_win_low", "deceptive_win_high"]
FIT_COLS = ["judge", "protocol", "family", "metric", "points", "slope_per_100_elo", "low", "high",
            "intercept", "rating_judge"]


@dataclass
class StrengthResult:
    tables: dict[str, pd.DataFrame]

    def plot(self, path: Path) -> Path | None:
        return strength_plot(self.tables["strength"], self.tables["strength_fit"], path)


def question_clusters(store: Store, question_ids: pd.Series) -> pd.Series:
    """Per row, a cluster code for the question's content (dataset, text and answers), so
    the copies of one question in different experiments fall in one cluster."""
    ids = pd.unique(question_ids.to_numpy(dtype=np.int64))
    keys: dict[int, str] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(ids), 5000):
            chunk = [int(x) for x in ids[i: i + 5000]]
            for qid, dataset, text, answers in conn.execute(
                    select(QuestionRow.id, QuestionRow.dataset, QuestionRow.text,
                           QuestionRow.answers).where(QuestionRow.id.in_(chunk))):
                blob = "\x1f".join([dataset, text, *map(str, answers)])
                keys[qid] = hashlib.sha1(blob.encode()).hexdigest()
    codes = pd.Series(keys).rank(method="dense").astype(np.int64)
    return question_ids.astype(np.int64).map(codes)


def _self_play(prep: Prepared, loaded: Loaded) -> pd.DataFrame:
    """Verdicts on self-play debates and on consultancies, with the debater's label."""
    v = prep.single_verdicts
    v = v[v["family"].isin(FAMILIES)]
    seats = loaded.seats[loaded.seats["role"].isin(SPEAKING_SEATS)
                         & loaded.seats["agent_id"].notna()]
    per = seats.groupby("debate_id")["agent_id"].agg(["nunique", "first"])
    single = per[per["nunique"] == 1]["first"].astype(np.int64)
    labels = loaded.agents.set_index("id")["label"]
    out = v[v["debate_id"].isin(single.index)].copy()
    out["debater"] = out["debate_id"].map(single).map(labels).astype(str)
    out["deceived"] = 1 - out["correct"]
    out["family"] = out["family"].astype(str)
    out["protocol"] = out["protocol"].astype(str)
    out["judge"] = out["judge"].astype(str)
    return _with_all_humans(out)


def _with_all_humans(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the verdicts of people pooled under "all humans" when there are two or more."""
    humans = frame[frame["judge_type"].astype(str) == "human"]
    if humans["judge"].nunique() < 2:
        return frame
    return pd.concat([frame, humans.assign(judge=ALL_HUMANS)], ignore_index=True)


def _points(frame: pd.DataFrame, boot: ClusterBootstrap | None
            ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Accuracy and deceptive win rate per (judge, protocol, family, debater), stratified
    over answer order (and consultant side), with replicate matrices."""
    keys = ["judge", "protocol", "family", "debater"]
    cells = ["consultant_side", "correct_first"]
    groups = frame.groupby(keys, observed=True).size().rename("n").reset_index()
    reps: dict[str, np.ndarray] = {}
    for metric, rows, value in (("accuracy", frame, "correct"),
                                ("deceptive_win_rate",
                                 frame[(frame["family"] == "debate")
                                       | (frame["consultant_side"] == DECEPTIVE)], "deceived")):
        cell_means = rows.groupby(keys + cells, observed=True)[value].mean()
        level = cell_means
        for depth in (len(keys) + 1, len(keys)):
            level = level.groupby(level=list(range(depth))).mean()
        groups[metric] = groups.set_index(keys).index.map(level).astype(float)
        if boot is not None:
            g, r = boot.stratified_means(rows, keys, value, cells)
            index = pd.MultiIndex.from_frame(g)
            pos = index.get_indexer(pd.MultiIndex.from_frame(groups[keys]))
            full = np.full((r.shape[0], len(groups)), np.nan)
            full[:, pos >= 0] = r[:, pos[pos >= 0]]
            reps[metric] = full
    return groups, reps


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of y on x along the last axis (NaN pairs dropped)."""
    ok = ~(np.isnan(x) | np.isnan(y))
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = np.where(ok, x, 0).sum(axis=-1) / n
        ym = np.where(ok, y, 0).sum(axis=-1) / n
        dx = np.where(ok, x - xm[..., None], 0)
        dy = np.where(ok, y - ym[..., None], 0)
        slope = (dx * dy).sum(axis=-1) / (dx * dx).sum(axis=-1)
    slope = np.where(n >= 2, slope, np.nan)
    return slope, ym - slope * xm


def strength_tables(store: Store, prep: Prepared, loaded: Loaded, bootstrap: int = DEFAULT_REPLICATES,
                    seed: int = 0) -> dict[str, pd.DataFrame]:
    empty = {"side_ratings": pd.DataFrame(columns=RATING_COLS),
             "connectivity": pd.DataFrame(columns=CHECK_COLS),
             "side_win_rates": pd.DataFrame(columns=MATRIX_COLS),
             "strength": pd.DataFrame(columns=POINT_COLS),
             "strength_fit": pd.DataFrame(columns=FIT_COLS)}
    m = _matches(prep, loaded)
    selfplay = _self_play(prep, loaded)
    if m.empty and selfplay.empty:
        return empty
    debates = prep.debates
    clusters = question_clusters(store, debates["question_id"])
    cluster_of = pd.Series(clusters.to_numpy(), index=debates["debate_id"].to_numpy())
    boot = (ClusterBootstrap(pd.Series(pd.unique(clusters.to_numpy())), bootstrap, seed)
            if bootstrap > 0 else None)

    ratings, checks, matrices = [], [], []
    rating_reps: dict[str, tuple[pd.Index, np.ndarray | None, pd.DataFrame]] = {}
    if not m.empty:
        m = m.assign(cluster=m["debate_id"].map(cluster_of).to_numpy(), judge=m["judge"].astype(str))
        for judge, frame in [(ALL_JUDGES, m), *_with_all_humans(m).groupby("judge", observed=True)]:
            sided = side_player_frame(frame)
            table, check, reps, debaters = fit_side_ratings(sided, boot)
            rating_reps[judge] = (debaters, reps, table)
            ratings.append(table.assign(judge=judge))
            checks.append(check[check["status"] != "rated"].assign(judge=judge))
            pair = sided.groupby(["honest", "deceptive"])["score_a"].agg(["mean", "count"])
            matrices.append(pd.DataFrame({
                "judge": judge, "honest": pair.index.get_level_values(0),
                "deceptive": pair.index.get_level_values(1),
                "honest_win_rate": pair["mean"].to_numpy(), "matches": pair["count"].to_numpy()}))
        if len(rating_reps) == 2:  # one judge: "all judges" repeats it
            ratings, checks, matrices = ratings[1:], checks[1:], matrices[1:]

    points = pd.DataFrame(columns=POINT_COLS)
    fits = pd.DataFrame(columns=FIT_COLS)
    if not selfplay.empty:
        selfplay = selfplay.assign(cluster=selfplay["debate_id"].map(cluster_of).to_numpy())
        groups, reps = _points(selfplay, boot)
        groups["rating_judge"] = [j if j in rating_reps else ALL_JUDGES for j in groups["judge"]]
        x = np.full(len(groups), np.nan)
        x_reps = np.full((bootstrap, len(groups)), np.nan) if boot is not None else None
        for i, (rj, debater) in enumerate(zip(groups["rating_judge"], groups["debater"])):
            if rj not in rating_reps:
                continue
            debaters, r, table = rating_reps[rj]
            j = debaters.get_indexer([debater])[0]
            if j < 0:
                continue
            x[i] = table["rating"].iloc[j]
            if x_reps is not None and r is not None:
                x_reps[:, i] = r[:, j]
        groups["rating"] = x
        if x_reps is not None:
            groups["rating_low"], groups["rating_high"] = percentile_interval(x_reps)
            for metric, short in (("accuracy", "accuracy"), ("deceptive_win_rate", "deceptive_win")):
                groups[f"{short}_low"], groups[f"{short}_high"] = percentile_interval(reps[metric])
        else:
            groups["rating_low"] = groups["rating_high"] = np.nan
            for metric, short in (("accuracy", "accuracy"), ("deceptive_win_rate", "deceptive_win")):
                groups[f"{short}_low"], groups[f"{short}_high"] = wilson(groups[metric], groups["n"])
        points = groups[POINT_COLS].sort_values(["judge", "protocol", "rating"])
        checks.append(_unrated_points(groups, rating_reps))
        fits = _fits(groups, x_reps, reps)
    out = {
        "side_ratings": (pd.concat(ratings, ignore_index=True)[RATING_COLS]
                         .sort_values(["judge", "rating"], ascending=[True, False])
                         if ratings else empty["side_ratings"]),
        "connectivity": pd.concat(checks, ignore_index=True)[CHECK_COLS] if checks else empty["connectivity"],
        "side_win_rates": pd.concat(matrices, ignore_index=True)[MATRIX_COLS] if matrices else empty["side_win_rates"],
        "strength": points.reset_index(drop=True),
        "strength_fit": fits.reset_index(drop=True),
    }
    return out


def _unrated_points(groups: pd.DataFrame, rating_reps: dict) -> pd.DataFrame:
    """Debaters on the curve with no rating: no debate verdicts to rate them from."""
    rows = []
    for judge, debater in groups.loc[groups["rating"].isna(), ["rating_judge", "debater"]].drop_duplicates(
            ).itertuples(index=False):
        rated = judge in rating_reps and debater in set(rating_reps[judge][0])
        reason = ("its true and false sides are not linked by games"
                  if rated else "no debate verdicts to rate it from (consultancy or self-play only?)")
        rows.append({"judge": judge, "player": debater, "status": "unratable", "reason": reason,
                     "matches": 0 if not rated else np.nan, "opponents": 0 if not rated else np.nan})
    return pd.DataFrame(rows, columns=CHECK_COLS)


def _fits(groups: pd.DataFrame, x_reps: np.ndarray | None, reps: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for (judge, protocol, family), idx in groups.groupby(["judge", "protocol", "family"]).groups.items():
        pos = groups.index.get_indexer(idx)
        x = groups["rating"].to_numpy()[pos] / PER_ELO
        for metric in ("accuracy", "deceptive_win_rate"):
            y = groups[metric].to_numpy(dtype=float)[pos]
            slope, intercept = _slope(x, y)
            low = high = np.nan
            if x_reps is not None:
                s, _ = _slope(x_reps[:, pos] / PER_ELO, reps[metric][:, pos])
                low, high = percentile_interval(s[:, None])
                low, high = float(low[0]), float(high[0])
            rows.append({"judge": judge, "protocol": protocol, "family": family, "metric": metric,
                         "points": int((~np.isnan(x) & ~np.isnan(y)).sum()),
                         "slope_per_100_elo": float(slope), "low": low, "high": high,
                         "intercept": float(intercept),
                         "rating_judge": groups["rating_judge"].iloc[pos[0]]})
    return pd.DataFrame(rows, columns=FIT_COLS)


def strength_analysis(store: Store, experiments: list[str] | None = None,
                      bootstrap: int = DEFAULT_REPLICATES, seed: int = 0) -> StrengthResult:
    """Ratings and the strength curve over `experiments` (None: all): a clean entry point
    for scripts (e.g. rating trained debaters in a tournament)."""
    loaded = load(store, experiments, ["judge"])
    loaded.debates["scope"] = "all"
    prep = prepare(loaded, ["judge"])
    return StrengthResult(strength_tables(store, prep, loaded, bootstrap, seed))


def tournament_ratings(store: Store, experiments: list[str], judge: str | None) -> dict[str, float]:
    """Debater name -> aggregate Elo from `judge`'s verdicts (all judges when None); used to
    pair swiss rounds. Debaters that cannot be rated yet are left out."""
    if not experiments:
        return {}
    result = strength_analysis(store, experiments, bootstrap=0).tables["side_ratings"]
    if result.empty:
        return {}
    judges = set(result["judge"])
    wanted = judge if judge in judges else ALL_JUDGES if ALL_JUDGES in judges else min(judges)
    rows = result[result["judge"] == wanted]
    agents = agent_labels(store)
    names = dict(zip(agents["label"], agents["name"]))
    return {names.get(d, d): float(r) for d, r in zip(rows["debater"], rows["rating"])
            if not np.isnan(r)}
