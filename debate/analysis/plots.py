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
MIN_ROUND_N = 3


def group_label(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    if not keys:
        return pd.Series(["all"] * len(frame), index=frame.index)
    return frame[keys].astype(str).agg(" · ".join, axis=1)


def _label_column(ax, entries: list[tuple[float, float, str, str]], x_text: float, gap: float,
                  top: float = 1.0) -> None:
    """Label line ends in one column at x_text, nudged apart so no two labels overlap.

    entries: (x_end, y_end, text, colour) for each line.
    """
    entries = sorted(entries, key=lambda e: e[1])
    placed: list[float] = []
    for entry in entries:
        placed.append(max(entry[1], placed[-1] + gap) if placed else entry[1])
    overshoot = max(placed[-1] - top, 0.0) if placed else 0.0
    for (x_end, y_end, text, colour), y in zip(entries, placed):
        ax.annotate(text, (x_end, y_end), xytext=(x_text, y - overshoot), textcoords="data", fontsize=8,
                    color=colour, va="center",
                    arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.5, "alpha": 0.6})


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
    fig = Figure(figsize=(10, 1.2 + 0.32 * len(acc)))
    ax = fig.add_subplot()
    y = np.arange(len(acc))
    x = acc["accuracy"].to_numpy(dtype=float)
    ax.errorbar(x, y, xerr=[x - low.to_numpy(dtype=float), high.to_numpy(dtype=float) - x],
                fmt="o", color="#1f5fa8", ecolor="#7aa6d6", capsize=3)
    for yi, xi, lo, hi, n in zip(y, x, low, high, acc["n"]):
        ax.text(1.42, yi, f"{xi:.0%} [{lo:.0%}, {hi:.0%}]  n={int(n)}", fontsize=8, va="center",
                ha="right")
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.text(0.5, -0.55, " chance", color="grey", fontsize=8, va="bottom")
    ax.set_yticks(y, labels)
    ax.axvline(1.03, color="#dddddd", linewidth=0.8)
    ax.set_xlim(0, 1.44)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
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
    fig = Figure(figsize=(9, 6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.text(0.62, 0.56, "perfect calibration", color="grey", rotation=40, fontsize=8)
    ends = []
    for label, part in rel.groupby("_label", sort=False):
        part = part.sort_values("mean_predicted")
        line, = ax.plot(part["mean_predicted"], part["observed"], marker="o", markersize=3)
        last = part.iloc[-1]
        ends.append((last["mean_predicted"], last["observed"], label, line.get_color()))
    _label_column(ax, ends, 1.05, 0.05)
    ax.set_xlim(0, 1.6)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("probability the judge gave an answer (binned)")
    ax.set_ylabel("share of those answers that were correct")
    ax.set_title("Reliability diagram", fontsize=10)
    return _save(fig, path)


def rounds_plot(by_round: pd.DataFrame, keys: list[str], path: Path) -> Path | None:
    if by_round.empty:
        return None
    if (by_round["n"] >= MIN_ROUND_N).any():
        by_round = by_round[by_round["n"] >= MIN_ROUND_N]  # a point from one or two judges is noise
    by_round = by_round.assign(_label=_top_groups(by_round, keys, "n")).dropna(subset=["_label"])
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot()
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    last_round = int(by_round["after_round"].max())
    ends = []
    for label, part in by_round.groupby("_label", sort=False):
        part = part.sort_values("after_round")
        line, = ax.plot(part["after_round"], part["mean_p_correct"], marker="o", markersize=3)
        last = part.iloc[-1]
        ends.append((last["after_round"], last["mean_p_correct"], label, line.get_color()))
    _label_column(ax, ends, last_round + 0.5, 0.05)
    ax.set_xlim(-0.2, last_round + 0.5 + max(3.0, last_round * 0.6))
    ax.set_ylim(0, 1)
    ax.set_xticks(range(last_round + 1))
    ax.set_xlabel(f"after round (0 = before any speech; rounds with n >= {MIN_ROUND_N} judgments)")
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
    fig = Figure(figsize=(max(6.5, 3 + 0.7 * len(keep)), max(5.0, 2.5 + 0.55 * len(keep))))
    ax = fig.add_subplot()
    image = ax.imshow(wide.to_numpy(dtype=float), cmap="RdBu", vmin=0, vmax=1)
    for i in range(len(keep)):
        for j in range(len(keep)):
            value = wide.iat[i, j]
            if not np.isnan(value):
                ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=8,
                        color="white" if abs(value - 0.5) > 0.3 else "black")
    ax.set_xticks(range(len(keep)), keep, rotation=45, ha="right")
    ax.set_yticks(range(len(keep)), keep)
    ax.set_xlabel("opponent")
    ax.set_ylabel("debater")
    ax.set_title("Win rate of the row's debater\nagainst the column's", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="win rate")
    return _save(fig, path)


STRENGTH_METRICS = (("accuracy", "accuracy", "judge accuracy in self-play"),
                    ("deceptive_win_rate", "deceptive_win", "deceptive side's win rate"))
MAX_JUDGES = 6


def strength_plot(points: pd.DataFrame, fits: pd.DataFrame, path: Path) -> Path | None:
    """Judge accuracy and deceptive win rate against the debaters' aggregate rating: one row
    of panels per judge, every protocol (debate and consultancy) on the same axes, points
    with intervals and the fitted line, its slope per 100 Elo in the legend."""
    points = points.dropna(subset=["rating"])
    if points.empty:
        return None
    judges = list(dict.fromkeys(points["judge"]))[:MAX_JUDGES]
    fig = Figure(figsize=(10, 0.6 + 3.6 * len(judges)))
    axes = fig.subplots(len(judges), 2, squeeze=False)
    colours = {"debate": "tab:blue", "consultancy": "tab:red"}
    for row, judge in enumerate(judges):
        of_judge = points[points["judge"] == judge]
        for col, (metric, short, title) in enumerate(STRENGTH_METRICS):
            ax = axes[row][col]
            for k, (protocol, part) in enumerate(of_judge.groupby("protocol", sort=True)):
                part = part.sort_values("rating")
                family = part["family"].iloc[0]
                colour = colours.get(family) if k < 2 else None
                x, y = part["rating"].to_numpy(float), part[metric].to_numpy(float)
                xerr = _error_bars(x, part["rating_low"], part["rating_high"])
                yerr = _error_bars(y, part[f"{short}_low"], part[f"{short}_high"])
                fit = fits[(fits["judge"] == judge) & (fits["protocol"] == protocol)
                           & (fits["metric"] == metric)]
                label = _plain(protocol)
                if not fit.empty and np.isfinite(fit["slope_per_100_elo"].iloc[0]):
                    f = fit.iloc[0]
                    label += f": {f['slope_per_100_elo']:+.3f}/100 Elo"
                    if np.isfinite(f["low"]):
                        label += f" [{f['low']:+.3f}, {f['high']:+.3f}]"
                    xs = np.linspace(x.min(), x.max(), 20)
                    ax.plot(xs, f["intercept"] + f["slope_per_100_elo"] * xs / 100.0,
                            color=colour, linewidth=1.2, alpha=0.8)
                ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=colour, markersize=5,
                            capsize=2, elinewidth=0.8, label=label)
            ax.set_ylim(-0.02, 1.02)
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel("debater's aggregate rating (Elo, mean of true and false side)")
            ax.set_ylabel(title)
            ax.set_title(f"{title}: judge {_plain(judge)}", fontsize=9)
            ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _error_bars(values: np.ndarray, low: pd.Series, high: pd.Series) -> np.ndarray | None:
    low, high = low.to_numpy(dtype=float), high.to_numpy(dtype=float)
    if np.isnan(low).all():
        return None
    return np.vstack([np.clip(values - np.nan_to_num(low, nan=values), 0, None),
                      np.clip(np.nan_to_num(high, nan=values) - values, 0, None)])


def _plain(text: object) -> str:
    """A name drawn as itself: '$' would start matplotlib's mathtext."""
    return str(text).replace("$", r"\$")
