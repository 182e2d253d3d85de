"""The probe tables of `debate analyze` (`--table probes` prints all three) and the plot.

probes           per probe, experiment (its protocol) and side (all turns, then each seat role): AUROC with a
                 cluster-bootstrap interval (clusters: source documents, else questions),
                 recall at 1% FPR, mean score of honest and deceptive turns; beside them the
                 controls: the same scores against labels shuffled within questions (must
                 sit at 0.5 within its interval) and a position-only baseline (grouped-CV
                 logistic regression on which answer slot, as shown, the side argues).
probes_judges    per probe, experiment and judge, on the same debates: the 2x2 of judge
                 right/wrong (P(correct) > 0.5 in its final verdict; ties left out) against
                 probe right/wrong on which side deceives (debates: the side whose turns
                 score higher on average; consultancy: the consultant's mean score above 0),
                 and the share of judge errors the probe catches, with a Wilson interval.
probes_rounds    per probe, experiment and round: AUROC of that round's turns, the probe's
                 side accuracy from rounds 1..r, and the judges' accuracy after round r
                 (stepped judgments; empty where none were made).

The per-layer curve (AUROC against layer, one line per method/labels/experiment, shuffled
control dashed) is `probes_layers.png` under `debate analyze --out DIR`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import select

from debate.probes.data import load_turns
from debate.probes.metrics import bootstrap_auroc, recall_at_fpr, shuffle_within, wilson
from debate.probes.train import grouped_splits, out_of_fold_scores
from debate.store.db import Store
from debate.store.models import Agent, Experiment, Judgment, User
from debate.store.probes import list_probes, probe_scores

PROBE_COLUMNS = [
    "probe", "method", "labels", "layer", "position", "experiment", "protocol", "side", "n",
    "n_deceptive", "auroc", "auroc_low", "auroc_high", "recall_1pct_fpr", "mean_score_honest",
    "mean_score_deceptive", "shuffled_auroc", "shuffled_low", "shuffled_high",
    "position_auroc", "position_low", "position_high",
]
JUDGE_COLUMNS = [
    "probe", "layer", "experiment", "protocol", "judge", "debates", "judge_right_probe_right",
    "judge_right_probe_wrong", "judge_wrong_probe_right", "judge_wrong_probe_wrong",
    "judge_ties", "judge_accuracy", "probe_accuracy", "judge_errors_caught",
    "caught_low", "caught_high",
]
ROUND_COLUMNS = [
    "probe", "layer", "experiment", "protocol", "round", "turns", "auroc", "auroc_low", "auroc_high",
    "probe_side_accuracy", "judge_accuracy", "judgments",
]
TABLES = ("probes", "probes_judges", "probes_rounds")


def empty_tables() -> dict[str, pd.DataFrame]:
    return {"probes": pd.DataFrame(columns=PROBE_COLUMNS),
            "probes_judges": pd.DataFrame(columns=JUDGE_COLUMNS),
            "probes_rounds": pd.DataFrame(columns=ROUND_COLUMNS)}


def scored_turns(store: Store, experiments: list[str] | None) -> pd.DataFrame:
    """One row per (probe, scored turn) with the turn's fields and the probe's."""
    probes = {p.id: p for p in list_probes(store)}
    rows = probe_scores(store, list(probes))
    if not rows:
        return pd.DataFrame()
    if experiments is None:
        with store.session() as session:
            experiments = list(session.scalars(select(Experiment.name)))
    turns = load_turns(store, experiments).turns
    scores = pd.DataFrame(rows, columns=["probe_id", "turn_id", "score"])
    frame = scores.merge(turns, on="turn_id", how="inner")
    meta = pd.DataFrame([{"probe_id": p.id, "probe": p.name, "method": p.method,
                          "labels": p.labels, "layer": p.layer, "position": p.position}
                         for p in probes.values()])
    return frame.merge(meta, on="probe_id")


def _position_baseline(part: pd.DataFrame, replicates: int, seed: int) -> tuple[float, float, float]:
    """Grouped-CV logistic regression on the answer slot the side argues, alone."""
    X = pd.get_dummies(part[["answer_slot"]].astype(str)).to_numpy(dtype=float)
    y = part["deceptive"].to_numpy(dtype=int)
    groups = part["group"].to_numpy().astype(str)
    if len(np.unique(groups)) < 2 or len(np.unique(y)) < 2 or X.shape[1] == 0:
        return float("nan"), float("nan"), float("nan")
    scores = out_of_fold_scores(X, y, grouped_splits(y, groups, 5), "logistic", 1.0, seed)
    ok = ~np.isnan(scores)
    return bootstrap_auroc(y[ok], scores[ok], groups[ok], replicates, seed)


def probe_table(frame: pd.DataFrame, replicates: int, seed: int) -> pd.DataFrame:
    out = []
    keys = ["probe", "method", "labels", "layer", "position", "experiment", "protocol"]
    for key, part in frame.groupby(keys, sort=True):
        sides = [("all", part)] + [(str(r), p) for r, p in part.groupby("role", sort=True)]
        if part["role"].nunique() < 2:
            sides = sides[:1]
        for side, rows in sides:
            y = rows["deceptive"].to_numpy(dtype=int)
            s = rows["score"].to_numpy(dtype=float)
            groups = rows["group"].to_numpy().astype(str)
            a, lo, hi = bootstrap_auroc(y, s, groups, replicates, seed)
            shuffled = shuffle_within(y, groups, seed)
            sa, slo, shi = bootstrap_auroc(shuffled, s, groups, replicates, seed)
            pa, plo, phi = _position_baseline(rows, replicates, seed)
            out.append(dict(zip(keys, key)) | {
                "side": side, "n": len(rows), "n_deceptive": int(y.sum()), "auroc": a, "auroc_low": lo,
                "auroc_high": hi, "recall_1pct_fpr": recall_at_fpr(y, s, 0.01),
                "mean_score_honest": float(s[y == 0].mean()) if (y == 0).any() else np.nan,
                "mean_score_deceptive": float(s[y == 1].mean()) if (y == 1).any() else np.nan,
                "shuffled_auroc": sa, "shuffled_low": slo, "shuffled_high": shi,
                "position_auroc": pa, "position_low": plo, "position_high": phi,
            })
    return pd.DataFrame(out, columns=PROBE_COLUMNS)


def _judgments(store: Store, debate_ids: list[int]) -> pd.DataFrame:
    rows = []
    with store.session() as session:
        for i in range(0, len(debate_ids), 1000):
            rows += session.execute(
                select(Judgment.debate_id, Judgment.kind, Judgment.after_round,
                       Judgment.probabilities, Agent.name, User.name)
                .outerjoin(Agent, Agent.id == Judgment.judge_agent_id)
                .outerjoin(User, User.id == Judgment.user_id)
                .where(Judgment.debate_id.in_(debate_ids[i: i + 1000]))
            ).all()
    return pd.DataFrame(
        [{"debate_id": d, "kind": k, "after_round": r, "probabilities": p,
          "judge": a or (f"user:{u}" if u else "?")} for d, k, r, p, a, u in rows],
        columns=["debate_id", "kind", "after_round", "probabilities", "judge"])


def _judge_right(judgments: pd.DataFrame, correct: dict[int, int]) -> pd.Series:
    """1 right, 0 wrong, NaN tie or no verdict."""
    def one(row) -> float:
        probs = row["probabilities"]
        c = correct.get(row["debate_id"])
        if not probs or c is None or c >= len(probs):
            return np.nan
        p = float(probs[c])
        return np.nan if abs(p - 0.5) < 1e-9 else float(p > 0.5)
    if judgments.empty:
        return pd.Series(dtype=float)
    return judgments.apply(one, axis=1)


def _probe_side_right(turns: pd.DataFrame) -> pd.DataFrame:
    """Per (probe, debate): did the probe point at the deceptive side?"""
    per_side = turns.groupby(["probe", "debate_id", "role"], sort=False).agg(
        score=("score", "mean"), deceptive=("deceptive", "max"), protocol=("protocol", "first"),
        experiment=("experiment", "first"), layer=("layer", "first")).reset_index()
    out = []
    for (probe, debate), sides in per_side.groupby(["probe", "debate_id"], sort=False):
        if len(sides) >= 2:
            top = sides["score"].to_numpy()
            best = np.flatnonzero(top == top.max())
            right = float(len(best) == 1 and sides["deceptive"].iloc[best[0]] == 1)
        else:
            right = float((sides["score"].iloc[0] > 0) == bool(sides["deceptive"].iloc[0]))
        out.append({"probe": probe, "debate_id": debate, "protocol": sides["protocol"].iloc[0],
                    "experiment": sides["experiment"].iloc[0], "layer": sides["layer"].iloc[0],
                    "probe_right": right})
    return pd.DataFrame(out, columns=["probe", "debate_id", "experiment", "protocol", "layer",
                                      "probe_right"])


def judge_table(frame: pd.DataFrame, judgments: pd.DataFrame, correct: dict[int, int]) -> pd.DataFrame:
    final = judgments[judgments["after_round"].isna()].copy()
    if final.empty or frame.empty:
        return pd.DataFrame(columns=JUDGE_COLUMNS)
    final["judge_right"] = _judge_right(final, correct)
    # one verdict per judge and debate: the mean over its samples/orders, then thresholded
    per_judge = final.groupby(["judge", "debate_id"])["judge_right"].mean().reset_index()
    probe_right = _probe_side_right(frame)
    both = probe_right.merge(per_judge, on="debate_id")
    both = pd.concat([both, both.assign(judge="all judges")]) if both["judge"].nunique() > 1 else both
    out = []
    for (probe, layer, experiment, protocol, judge), part in both.groupby(
            ["probe", "layer", "experiment", "protocol", "judge"], sort=True):
        jr = part["judge_right"]
        decided = part[jr.notna() & (jr != 0.5)]
        j = decided["judge_right"] > 0.5
        p = decided["probe_right"] == 1
        wrong = int((~j).sum())
        caught = int((~j & p).sum())
        lo, hi = wilson(caught, wrong)
        out.append({
            "probe": probe, "layer": layer, "experiment": experiment, "protocol": protocol,
            "judge": judge,
            "debates": len(part), "judge_right_probe_right": int((j & p).sum()),
            "judge_right_probe_wrong": int((j & ~p).sum()),
            "judge_wrong_probe_right": caught, "judge_wrong_probe_wrong": int((~j & ~p).sum()),
            "judge_ties": len(part) - len(decided),
            "judge_accuracy": float(j.mean()) if len(decided) else np.nan,
            "probe_accuracy": float(part["probe_right"].mean()),
            "judge_errors_caught": caught / wrong if wrong else np.nan,
            "caught_low": lo, "caught_high": hi,
        })
    return pd.DataFrame(out, columns=JUDGE_COLUMNS)


def round_table(frame: pd.DataFrame, judgments: pd.DataFrame, correct: dict[int, int],
                replicates: int, seed: int) -> pd.DataFrame:
    stepped = judgments[judgments["after_round"].notna()].copy()
    if not stepped.empty:
        stepped["judge_right"] = _judge_right(stepped, correct)
    out = []
    for (probe, layer, experiment, protocol), part in frame.groupby(
            ["probe", "layer", "experiment", "protocol"], sort=True):
        debates = set(part["debate_id"])
        for rnd in sorted(part["round"].unique()):
            now = part[part["round"] == rnd]
            y = now["deceptive"].to_numpy(dtype=int)
            a, lo, hi = bootstrap_auroc(y, now["score"].to_numpy(dtype=float),
                                        now["group"].to_numpy().astype(str), replicates, seed)
            sides = _probe_side_right(part[part["round"] <= rnd])
            js = stepped[(stepped["after_round"] == rnd) & stepped["debate_id"].isin(debates)] \
                if not stepped.empty else stepped
            decided = js["judge_right"].dropna() if not js.empty else pd.Series(dtype=float)
            out.append({"probe": probe, "layer": layer, "experiment": experiment,
                        "protocol": protocol, "round": int(rnd),
                        "turns": len(now), "auroc": a, "auroc_low": lo, "auroc_high": hi,
                        "probe_side_accuracy": float(sides["probe_right"].mean()),
                        "judge_accuracy": float(decided.mean()) if len(decided) else np.nan,
                        "judgments": len(decided)})
    return pd.DataFrame(out, columns=ROUND_COLUMNS)


def probe_tables(store: Store, experiments: list[str] | None, replicates: int = 1000,
                 seed: int = 0) -> dict[str, pd.DataFrame]:
    frame = scored_turns(store, experiments)
    if frame.empty:
        return empty_tables()
    debate_ids = sorted(int(d) for d in frame["debate_id"].unique())
    judgments = _judgments(store, debate_ids)
    correct = {int(d): int(c) for d, c in
               frame.drop_duplicates("debate_id")[["debate_id", "correct_index"]].to_numpy()}
    return {
        "probes": probe_table(frame, replicates, seed),
        "probes_judges": judge_table(frame, judgments, correct),
        "probes_rounds": round_table(frame, judgments, correct, replicates, seed),
    }


def layer_plot(table: pd.DataFrame, path: Path) -> Path | None:
    """AUROC against layer with its interval, per method/labels/protocol; shuffled dashed."""
    rows = table[table["side"] == "all"] if not table.empty else table
    if rows.empty:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for (method, labels, experiment), part in rows.groupby(["method", "labels", "experiment"]):
        part = part.groupby("layer").mean(numeric_only=True).reset_index().sort_values("layer")
        x = part["layer"].to_numpy(dtype=float)
        y = part["auroc"].to_numpy(dtype=float)
        err = np.vstack([y - part["auroc_low"].to_numpy(dtype=float),
                         part["auroc_high"].to_numpy(dtype=float) - y])
        line = ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", capsize=3,
                           label=f"{method} · {labels} · {experiment}")
        ax.plot(x, part["shuffled_auroc"].to_numpy(dtype=float), linestyle="--",
                color=line[0].get_color(), alpha=0.5)
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_xlabel("layer (hidden-state index)")
    ax.set_ylabel("AUROC (deceptive side)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Probe AUROC by layer (dashed: labels shuffled within questions)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
