"""PNG plots of an analysis, labelled directly (no legend-hunting).

Uses matplotlib's object API (Figure, Agg canvas) rather than pyplot, so it keeps no global
state and is safe inside the web app's threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

MAX_ROWS = 40
MAX_LINES = 8


def group_label(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    if not keys:
        return pd.Series(["all"] * len(frame), index=frame.index)
    return frame[keys].astype(str).agg(" · ".join, axis=1)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def accuracy_plot(acc: pd.DataFrame, keys: list[str], path: Path) -> Path | None:
    if acc.empty:
        return None
    acc = acc.head(MAX_ROWS).iloc[::-1]
    boot = "boot_low" in acc and acc["boot_low"].notna().any()
    low = acc["boot_low"] if boot else acc["wilson_low"]
    high = acc["boot_high"] if boot else acc["wilson_high"]
    labels = group_label(acc, keys)
    fig = Figure(figsize=(9, 1.2 + 0.38 * len(acc)))
    ax = fig.add_subplot()
    y = np.arange(len(acc))
    x = acc["accuracy"].to_numpy(dtype=float)
    ax.errorbar(x, y, xerr=[x - low.to_numpy(dtype=float), high.to_numpy(dtype=float) - x],
                fmt="o", color="#1f5fa8", ecolor="#7aa6d6", capsize=3)
    for yi, xi, n in zip(y, x, acc["n"]):
        ax.annotate(f"{xi:.0%}  (n={int(n)})", (xi, yi), xytext=(8, 6), textcoords="offset points",
                    fontsize=8)
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.text(0.5, len(acc) - 0.4, " chance", color="grey", fontsize=8, va="bottom")
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1.05)
    ax.set_ylim(-0.6, len(acc) - 0.2)
    ax.set_xlabel("judge accuracy: P(correct) > 0.5, ties half")
    what = "bootstrap over source documents" if boot else "Wilson"
    ax.set_title(f"Judge accuracy with 95% intervals ({what})", fontsize=10)
    return _save(fig, path)


def _top_groups(frame: pd.DataFrame, keys: list[str], weight: str) -> pd.Series:
    labels = group_label(frame, keys)
    totals = frame.assign(_label=labels).groupby("_label")[weight].sum().sort_values(ascending=False)
    return labels.where(labels.isin(totals.index[:MAX_LINES]))


def reliability_plot(rel: pd.DataFrame, keys: list[str], path: Path) -> Path | None:
    if rel.empty:
        return None
    rel = rel.assign(_label=_top_groups(rel, keys, "n")).dropna(subset=["_label"])
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.text(0.62, 0.56, "perfect calibration", color="grey", rotation=40, fontsize=8)
    for label, part in rel.groupby("_label", sort=False):
        part = part.sort_values("mean_predicted")
        line, = ax.plot(part["mean_predicted"], part["observed"], marker="o", markersize=3)
        last = part.iloc[-1]
        ax.annotate(label, (last["mean_predicted"], last["observed"]), xytext=(4, 0),
                    textcoords="offset points", fontsize=8, color=line.get_color())
    ax.set_xlim(0, 1.35)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("probability the judge gave an answer (binned)")
    ax.set_ylabel("share of those answers that were correct")
    ax.set_title("Reliability diagram", fontsize=10)
    return _save(fig, path)


def rounds_plot(by_round: pd.DataFrame, keys: list[str], path: Path) -> Path | None:
    if by_round.empty:
        return None
    by_round = by_round.assign(_label=_top_groups(by_round, keys, "n")).dropna(subset=["_label"])
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    last_round = int(by_round["after_round"].max())
    for label, part in by_round.groupby("_label", sort=False):
        part = part.sort_values("after_round")
        line, = ax.plot(part["after_round"], part["mean_p_correct"], marker="o", markersize=3)
        last = part.iloc[-1]
        ax.annotate(label, (last["after_round"], last["mean_p_correct"]), xytext=(5, 0),
                    textcoords="offset points", fontsize=8, color=line.get_color())
    ax.set_xlim(-0.2, last_round + max(1.5, last_round * 0.45))
    ax.set_ylim(0, 1)
    ax.set_xticks(range(last_round + 1))
    ax.set_xlabel("after round (0 = before any speech)")
    ax.set_ylabel("mean P(correct answer)")
    ax.set_title("How the judge's belief in the truth moves round by round", fontsize=10)
    return _save(fig, path)


def ratings_plot(ratings: pd.DataFrame, path: Path) -> Path | None:
    if ratings.empty:
        return None
    groups = [g for g, _ in ratings.groupby("group", sort=False)]
    sizes = [min(len(ratings[ratings["group"] == g]), MAX_ROWS) for g in groups]
    fig = Figure(figsize=(8, 1.5 + 0.32 * sum(sizes) + 0.6 * len(groups)))
    axes = fig.subplots(len(groups), 1, squeeze=False,
                        gridspec_kw={"height_ratios": [max(s, 1) for s in sizes]})[:, 0]
    for ax, group in zip(axes, groups):
        part = ratings[ratings["group"] == group].head(MAX_ROWS).iloc[::-1]
        y = np.arange(len(part))
        x = part["rating"].to_numpy(dtype=float)
        if part["low"].notna().any():
            ax.errorbar(x, y, xerr=[x - part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float) - x],
                        fmt="o", color="#a8321f", ecolor="#d68a7a", capsize=3)
        else:
            ax.plot(x, y, "o", color="#a8321f")
        for yi, xi in zip(y, x):
            ax.annotate(f"{xi:.0f}", (xi, yi), xytext=(6, 5), textcoords="offset points", fontsize=8)
        ax.axvline(1500, color="grey", linestyle=":", linewidth=1)
        ax.set_yticks(y, part["player"])
        ax.set_title(f"Bradley-Terry rating (Elo scale), by {group}", fontsize=9)
    axes[-1].set_xlabel("rating (1500 = average; 95% bootstrap whiskers when computed)")
    return _save(fig, path)


def win_rate_plot(matrix: pd.DataFrame, path: Path) -> Path | None:
    if matrix.empty:
        return None
    wide = matrix.pivot_table(index="player", columns="opponent", values="win_rate")
    keep = wide.index[:MAX_ROWS]
    wide = wide.reindex(index=keep, columns=keep)
    fig = Figure(figsize=(2 + 0.6 * len(keep), 1.5 + 0.5 * len(keep)))
    ax = fig.add_subplot()
    image = ax.imshow(wide.to_numpy(dtype=float), cmap="RdBu", vmin=0, vmax=1)
    for i in range(len(keep)):
        for j in range(len(keep)):
            value = wide.iat[i, j]
            if not np.isnan(value):
                ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value - 0.5) > 0.3 else "black")
    ax.set_xticks(range(len(keep)), keep, rotation=45, ha="right")
    ax.set_yticks(range(len(keep)), keep)
    ax.set_xlabel("opponent")
    ax.set_ylabel("debater")
    ax.set_title("Win rate of the row's debater against the column's", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="win rate")
    return _save(fig, path)
