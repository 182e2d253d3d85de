"""Benchmark: a 16-debater round robin on 200 questions, expanded, run, judged and rated.

    python benchmarks/tournament.py [--quick] [--keep DB_PATH]

16 planted-strength scripted debaters (debate.agents.planted) play every ordered pair,
self-play included, in a one-round debate on 200 generated questions (debate.datasets
planted) in both answer orders: 16 x 16 x 200 x 2 = 102,400 debates (204,800 turns with
quotes verified) in SQLite, through `run_tournament` (one experiment per game, 256 games),
judged by the rule-based judge (judges.rule), then rated: side-specific Bradley-Terry
ratings, the connectivity check and the strength-accuracy curve with a 200-replicate
bootstrap over questions (debate.analysis.strength). Target: the whole within 5 minutes.

The ratio compares the rating fit itself, on the same 102,400 verdicts already in memory:
ours (win matrix with numpy, penalised Bradley-Terry by L-BFGS) against a naive per-pair
Python loop (wins counted match by match into dicts, then Hunter's MM updates looping
over every pair of players until the ratings move less than 1e-9, with the same ridge
prior); both fits are checked to agree within 0.5 Elo. Last line:
`tournament ratio=<naive fit s / our fit s> target=10`.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd

from debate.analysis.frames import prepare
from debate.analysis.load import load
from debate.analysis.ratings import (
    ELO_BASE,
    ELO_SCALE,
    PRIOR,
    _matches,
    _win_matrix,
    fit_bradley_terry,
    side_player_frame,
)
from debate.analysis.strength import strength_tables
from debate.store import open_store
from debate.tournaments.config import parse_tournament
from debate.tournaments.run import run_tournament
from judges.tournament import judge_games_with

LIMIT_S = 300.0
TARGET = 10.0


def naive_fit(frame) -> dict[str, float]:
    """Bradley-Terry by a per-pair Python loop: MM (Hunter 2004) with the same ridge prior
    as ours, applied as a proximal step (exact at convergence)."""
    wins: dict[tuple[str, str], float] = defaultdict(float)
    players: set[str] = set()
    for a, b, s in zip(frame["a"].tolist(), frame["b"].tolist(), frame["score_a"].tolist()):
        wins[(a, b)] += s
        wins[(b, a)] += 1 - s
        players.update((a, b))
    names = sorted(players)
    theta = {p: 0.0 for p in names}
    for _ in range(100_000):
        moved = 0.0
        for i in names:
            won = sum(wins.get((i, j), 0.0) for j in names if j != i)
            denom = 0.0
            for j in names:
                if j == i:
                    continue
                games = wins.get((i, j), 0.0) + wins.get((j, i), 0.0)
                if games:
                    denom += games / (math.exp(theta[i]) + math.exp(theta[j]))
            # MM step on exp(theta_i), then a Newton correction for the prior's pull
            new = math.log(max(won, 1e-12) / denom) if denom else theta[i]
            grad = won - denom * math.exp(theta[i]) - 2 * PRIOR * theta[i]
            curv = denom * math.exp(theta[i]) + 2 * PRIOR
            new = theta[i] + grad / curv if won <= 0 else 0.5 * (new + theta[i] + grad / curv)
            moved = max(moved, abs(new - theta[i]))
            theta[i] = new
        mean = sum(theta.values()) / len(theta)
        theta = {p: t - mean for p, t in theta.items()}
        if moved < 1e-9:
            break
    return {p: ELO_BASE + ELO_SCALE * t for p, t in theta.items()}


def ours_fit(frame) -> dict[str, float]:
    players = sorted(set(frame["a"]) | set(frame["b"]))
    index = pd.Index(players)
    wins, _, _ = _win_matrix(frame, index)
    theta = fit_bradley_terry(wins)
    return dict(zip(players, ELO_BASE + ELO_SCALE * theta))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="8 debaters, 40 questions")
    ap.add_argument("--keep", type=Path, default=None, help="keep the SQLite file here")
    args = ap.parse_args()
    debaters, questions = (8, 40) if args.quick else (16, 200)
    strengths = [round(x, 3) for x in np.linspace(0.05, 0.95, debaters)]
    tmp = tempfile.mkdtemp(prefix="tournament-bench-")
    path = args.keep or Path(tmp) / "tournament.db"
    if path.exists():
        path.unlink()
    store = open_store(f"sqlite:///{path}")
    cfg = parse_tournament({
        "tournament": "bench", "seed": 0,
        "dataset": {"name": "planted", "count": questions},
        "protocols": [{"name": "debate", "rounds": 1}],
        "schedule": "round_robin", "both_orders": True,
        "debaters": [{"type": "planted", "name": "d{strength}", "sweep": {"strength": strengths}}],
        "judges": [{"type": "rule"}],
    }, "bench")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    judge_seconds = [0.0]
    judge = judge_games_with(cfg.judges, ROOT)

    def timed_judge(store, games) -> None:
        start = time.perf_counter()
        judge(store, games)
        judge_seconds[0] += time.perf_counter() - start

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = run_tournament(store, cfg, ROOT, judge_games=timed_judge, show_progress=False)
    run_s = time.perf_counter() - t0 - judge_seconds[0]
    print(f"expanded and ran: {result.games} games, {sum(result.debates.values()):,} debates, "
          f"{result.stats.turns:,} turns in {run_s:.1f} s "
          f"({result.stats.turns / max(run_s, 1e-9):,.0f} turns/s incl. storing the games)")
    print(f"judged: {sum(result.debates.values()):,} verdicts in {judge_seconds[0]:.1f} s")

    t1 = time.perf_counter()
    loaded = load(store, None, ["judge"])
    loaded.debates["scope"] = "all"
    prep = prepare(loaded, ["judge"])
    load_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    tables = strength_tables(store, prep, loaded, bootstrap=200, seed=0)
    rate_s = time.perf_counter() - t2
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    fit = tables["strength_fit"]
    ratings = tables["side_ratings"].sort_values("rating")
    print(f"rated: loaded in {load_s:.1f} s; side ratings + connectivity + curve with 200 "
          f"bootstrap replicates in {rate_s:.1f} s")
    order_ok = list(ratings["debater"]) == [f"d{s}" for s in strengths]
    print(f"aggregate ratings in planted order: {order_ok}; unratable/bounded players: "
          f"{len(tables['connectivity'])}")
    for _, f in fit.iterrows():
        print(f"  {f['protocol']} {f['metric']}: slope {f['slope_per_100_elo']:+.4f} per 100 Elo "
              f"[{f['low']:+.4f}, {f['high']:+.4f}] over {f['points']} debaters")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"whole (expand + run + judge + rate): {total:.1f} s wall, {cpu:.1f} s CPU of this "
          f"process; limit {LIMIT_S:.0f} s -> {'met' if total <= LIMIT_S else 'NOT met'}; "
          f"peak RSS {rss:.0f} MB")

    frame = side_player_frame(_matches(prep, loaded))
    t3 = time.perf_counter()
    ours = ours_fit(frame)
    ours_s = time.perf_counter() - t3
    t4 = time.perf_counter()
    naive = naive_fit(frame)
    naive_s = time.perf_counter() - t4
    diff = max(abs(ours[p] - naive[p]) for p in ours)
    print(f"rating fit on {len(frame):,} verdicts, {len(ours)} players: ours {ours_s * 1000:.1f} ms, "
          f"naive per-pair loop {naive_s * 1000:.1f} ms; largest difference {diff:.3f} Elo")
    if diff > 0.5:
        print("the two fits disagree", file=sys.stderr)
        sys.exit(1)
    store.dispose()
    print(f"tournament ratio={naive_s / ours_s:.2f} target={TARGET:g}")


if __name__ == "__main__":
    main()
