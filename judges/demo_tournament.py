"""The demo's `tournament` section: a small round robin of debaters of planted strength,
judged by the rule-based judge, and the strength-accuracy curve it yields. It lives in
judges/ (above debate) because it judges; `debate.demo.SECTIONS` names it.

Four planted debaters (they find the decisive evidence with probability 0.3, 0.5, 0.7 or
0.9) play every ordered pair in a one-round debate and each consults alone, on 80
generated questions in both answer orders (3,840 debates). The judge's behaviour is known
(judges.rule), so the expected result is known: ratings in the order of the planted
strengths, judge accuracy rising with strength in debate and falling in consultancy.
Rerunning resumes the same tournament.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from debate.analysis.strength import strength_analysis
from debate.store.db import Store
from debate.store.tournaments import tournament_games
from debate.tournaments.config import parse_tournament
from debate.tournaments.run import run_tournament
from judges.tournament import judge_games_with

STRENGTHS = [0.3, 0.5, 0.7, 0.9]
TOURNAMENT: dict[str, Any] = {
    "tournament": "demo-tournament",
    "seed": 0,
    "dataset": {"name": "planted", "count": 80},
    "protocols": [{"name": "debate", "rounds": 1}, {"name": "consultancy", "rounds": 1}],
    "schedule": "round_robin",
    "debaters": [{"type": "planted", "name": "planted-{strength}",
                  "sweep": {"strength": STRENGTHS}}],
    "judges": [{"type": "rule"}],
}


def run_section(store: Store, show_progress: bool = False):
    cfg = parse_tournament(TOURNAMENT, "demo tournament")
    result = run_tournament(store, cfg, Path.cwd(), judge_games=judge_games_with(cfg.judges, Path.cwd()),
                            show_progress=show_progress)
    games = tournament_games(store, cfg.tournament) or []
    analysis = strength_analysis(store, [g.experiment for g in games], bootstrap=200)
    return result, analysis


def curve_table(points) -> Table:
    table = Table(title="The strength-accuracy curve (judge: rule-judge, self-play)",
                  title_justify="left")
    for col in ("debater", "rating (Elo)", "debate accuracy", "consultancy accuracy",
                "debate deceptive wins", "consultancy deceptive wins"):
        table.add_column(col, justify="left" if col == "debater" else "right")
    for debater, part in points.groupby("debater", sort=False):
        by = part.set_index("protocol")
        rating = part["rating"].iloc[0]
        low, high = part["rating_low"].iloc[0], part["rating_high"].iloc[0]

        def cell(protocol: str, metric: str, short: str, by=by) -> str:
            if protocol not in by.index:
                return "-"
            r = by.loc[protocol]
            return f"{r[metric]:.2f} [{r[f'{short}_low']:.2f}, {r[f'{short}_high']:.2f}]"

        table.add_row(Text(str(debater)), f"{rating:.0f} [{low:.0f}, {high:.0f}]",
                      cell("debate", "accuracy", "accuracy"),
                      cell("consultancy", "accuracy", "accuracy"),
                      cell("debate", "deceptive_win_rate", "deceptive_win"),
                      cell("consultancy", "deceptive_win_rate", "deceptive_win"))
    return table


def run(store: Store, console: Console) -> None:
    """Demo section: run (or resume) the planted tournament and print its curve."""
    console.rule("Tournament: the strength-accuracy curve")
    result, analysis = run_section(store, console.is_terminal)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.debates.items()))
    console.print(Text(f"demo-tournament: {result.games} games ({result.created} new), "
                       f"debates: {counts}"))
    t = analysis.tables
    points = t["strength"].sort_values("rating")
    if points.empty:
        console.print(Text("no verdicts: nothing to plot", style="red"))
        return
    console.print(curve_table(points))
    for _, f in t["strength_fit"].iterrows():
        console.print(Text(
            f"  {f['protocol']:<12} {f['metric']:<19} slope {f['slope_per_100_elo']:+.3f} per 100 Elo "
            f"[{f['low']:+.3f}, {f['high']:+.3f}]"))
    console.print(Text("Expected: accuracy rises with strength in debate and falls in consultancy; "
                       "the deceptive side wins less in debate and more in consultancy."))
    db = "" if store.url == "sqlite:///debate.db" else f" --db {store.url}"
    console.print(Text(f"Open next:\n  debate analyze --tournament demo-tournament --table strength "
                       f"--out results/{db}  # the curve as results/strength.png"), soft_wrap=True)
