"""What the self-play loop reports per round: judge accuracy beside the exploit counts,
Bradley-Terry ratings and the strength curve, as CSV/JSON tables and plots."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from debate.analysis import analyze
from debate.analysis.strength import StrengthResult
from debate.store.db import Store


@dataclass
class RoundRow:
    track: str
    round: int
    agent: str
    experiment: str
    model: str
    judge: str | None = None
    accuracy: float | None = None
    accuracy_low: float | None = None   # Wilson 95% interval
    train_accuracy: float | None = None  # on the training questions (with eval_dataset)
    accuracy_high: float | None = None
    deceptive_win_rate: float | None = None
    judged_debates: int = 0
    pairs: int | None = None
    ties: int | None = None
    failed: int | None = None
    dpo_steps: int | None = None
    dpo_last_loss: float | None = None
    elo: float | None = None
    strength_rating: float | None = None   # the strength curve's aggregate rating
    exploits: dict[str, int] = field(default_factory=dict)

    def flat(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "exploits"}
        d.update(self.exploits)
        return d


@dataclass
class LoopReport:
    rows: list[RoundRow]
    out: Path
    cross_play: list[str]
    ratings: pd.DataFrame
    strength: StrengthResult | None = None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.flat() for r in self.rows])


def ratings_of_rounds(store: Store, experiments: list[str], rows: list[RoundRow]) -> pd.DataFrame:
    """Bradley-Terry ratings (Elo scale) of the rounds' debaters from every verdict in the
    loop's experiments (self-play is left out by the analysis; cross-play rates them)."""
    ratings = analyze(store, experiments=experiments, by=["experiment"]).tables["ratings"]
    debater = ratings[ratings["group"] == "debater"].reset_index(drop=True)
    elo = dict(zip(debater["player"], debater["rating"]))
    for r in rows:
        if r.agent in elo and not pd.isna(elo[r.agent]):
            r.elo = float(elo[r.agent])
    return debater


def strength_ratings(strength: StrengthResult, rows: list[RoundRow]) -> None:
    """Each round's aggregate (true and false side) rating from the strength curve, as the
    loop's judge saw it."""
    points = strength.tables["strength"]
    for r in rows:
        mine = points[(points["debater"] == r.agent) & (points["judge"] == r.judge)]
        if not mine.empty and not pd.isna(mine["rating"].iloc[0]):
            r.strength_rating = float(mine["rating"].iloc[0])


def write_report(report: LoopReport) -> list[Path]:
    """report.csv, report.json, ratings.csv and accuracy_by_round.png under the out folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report.out.mkdir(parents=True, exist_ok=True)
    frame = report.frame()
    paths = [report.out / "report.csv", report.out / "report.json"]
    frame.to_csv(paths[0], index=False)
    paths[1].write_text(json.dumps({
        "rounds": json.loads(frame.to_json(orient="records")),
        "cross_play": report.cross_play,
        "ratings": json.loads(report.ratings.to_json(orient="records")),
    }, indent=2) + "\n")
    if not report.ratings.empty:
        report.ratings.to_csv(report.out / "ratings.csv", index=False)
        paths.append(report.out / "ratings.csv")
    if report.strength is not None:
        for name in ("strength", "strength_fit", "side_ratings"):
            path = report.out / f"{name}.csv"
            report.strength.tables[name].to_csv(path, index=False)
            paths.append(path)
        png = report.strength.plot(report.out / "strength.png")
        if png is not None:
            paths.append(png)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for track, rows in frame.groupby("track"):
        ax1.plot(rows["round"], rows["accuracy"], marker="o", label=track)
        speeches = rows["speeches"].where(rows["speeches"] > 0)
        for key in ("quote_failures", "truncated", "markup_tricks"):
            ax2.plot(rows["round"], rows[key] / speeches, marker=".", label=f"{track}: {key}")
    ax1.set(xlabel="training round", ylabel="judge accuracy", ylim=(0, 1),
            title="Judge accuracy by training round")
    ax2.set(xlabel="training round", ylabel="share of speeches", title="Exploit counts")
    ax1.legend()
    ax2.legend(fontsize="small")
    fig.tight_layout()
    png = report.out / "accuracy_by_round.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    paths.append(png)
    return paths


# (column, heading) of the table `debate train loop` prints
REPORT_COLUMNS = (
    ("track", "track"), ("round", "round"), ("agent", "debater"), ("accuracy", "judge acc."),
    ("train_accuracy", "on train qs"),
    ("deceptive_win_rate", "deceptive wins"), ("elo", "Elo"),
    ("strength_rating", "strength"), ("pairs", "pairs"),
    ("speeches", "speeches"), ("quote_failures", "quote fails"), ("truncated", "truncated"),
    ("over_long_candidates", "over-long cands"), ("markup_tricks", "markup tricks"),
)
