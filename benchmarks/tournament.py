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
side-specific Bradley-Terry ratings with a 200-replicate bootstrap over questions (what
`debate analyze --table strength` reports). Ours: `fit_side_ratings` (win matrices with
numpy, L-BFGS for the estimate, batched Newton solves for all replicates at once, the
replicates' win matrices as one sparse product). Naive: a per-pair Python loop (the
verdicts counted one by one into dicts of weighted wins, then Newton steps player by
player, each summing over every opponent, until no rating moves by 1e-8, with the same
ridge prior), for the estimate and for each replicate with the same resampling weights; it is
timed on NAIVE_REPLICATES replicates and scaled to 200, as benchmarks/analysis.py does.
Both must agree (estimate within 0.5 Elo, the timed replicates within 1 Elo). Last line:
`tournament ratio=<naive fit CPU s / our fit CPU s> target=10` (CPU time: the machine is
shared; wall times are printed beside).
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
from debate.analysis.intervals import ClusterBootstrap
from debate.analysis.load import load
from debate.analysis.ratings import (
    ELO_BASE,
    ELO_SCALE,
    PRIOR,
    _matches,
    fit_side_ratings,
    side_player_frame,
)
from debate.analysis.strength import strength_tables
from debate.store import open_store
from debate.tournaments.config import parse_tournament
from debate.tournaments.run import run_tournament
from judges.tournament import judge_games_with

LIMIT_S = 300.0
TARGET = 10.0
REPLICATES = 200
NAIVE_REPLICATES = 5


def naive_counts(frame, weights: dict | None = None) -> dict[tuple[str, str], float]:
    """Weighted wins counted verdict by verdict (weights: cluster -> times drawn)."""
    wins: dict[tuple[str, str], float] = defaultdict(float)
    for a, b, s, c in zip(frame["a"].tolist(), frame["b"].tolist(), frame["score_a"].tolist(),
                          frame["cluster"].tolist()):
        w = 1.0 if weights is None else weights.get(c, 0.0)
        if w:
            wins[(a, b)] += w * s
            wins[(b, a)] += w * (1 - s)
    return wins


def naive_mm(wins: dict[tuple[str, str], float], names: list[str]) -> dict[str, float]:
    """The same penalised Bradley-Terry estimate by a per-pair Python loop: one player at a
    time, a Newton step on its own strength (its wins and expected wins summed over every
    opponent), sweeping until no strength moves by 1e-8; Elo scale, centred."""
    theta = {p: 0.0 for p in names}
    for _ in range(10_000):
        moved = 0.0
        for i in names:
            grad, curv = -2 * PRIOR * theta[i], 2 * PRIOR
            for j in names:
                games = wins.get((i, j), 0.0) + wins.get((j, i), 0.0)
                if j == i or not games:
                    continue
                p = 1.0 / (1.0 + math.exp(theta[j] - theta[i]))
                grad += wins.get((i, j), 0.0) - games * p
                curv += games * p * (1 - p)
            step = grad / curv
            theta[i] += step
            moved = max(moved, abs(step))
        # the optimum has mean 0 (the prior's pull sums to zero there): centring each sweep
        # removes the one direction in which player-by-player steps crawl
        mean = sum(theta.values()) / len(theta)
        theta = {p: t - mean for p, t in theta.items()}
        if moved < 1e-8:
            break
    return {p: ELO_BASE + ELO_SCALE * t for p, t in theta.items()}


def naive_aggregate(ratings: dict[str, float], debaters: list[str]) -> np.ndarray:
    return np.array([(ratings[f"{d} (honest)"] + ratings[f"{d} (deceptive)"]) / 2
                     for d in debaters])


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
    boot = ClusterBootstrap(pd.Series(pd.unique(frame["cluster"].to_numpy())), REPLICATES, seed=0)
    t3, c3 = time.perf_counter(), time.process_time()
    table, _check, reps, debaters = fit_side_ratings(frame, boot)
    ours_wall, ours_s = time.perf_counter() - t3, time.process_time() - c3

    names = sorted(set(frame["a"].tolist()) | set(frame["b"].tolist()))
    debaters = list(debaters)
    t4, c4 = time.perf_counter(), time.process_time()
    estimate = naive_aggregate(naive_mm(naive_counts(frame), names), debaters)
    draws = next(boot.weights())[:NAIVE_REPLICATES]
    naive_reps = [naive_aggregate(naive_mm(naive_counts(frame, dict(zip(boot.codes, w))), names),
                                  debaters) for w in draws]
    naive_per_rep = (time.process_time() - c4) / (NAIVE_REPLICATES + 1)
    naive_wall = (time.perf_counter() - t4) / (NAIVE_REPLICATES + 1) * (REPLICATES + 1)
    naive_s = naive_per_rep * (REPLICATES + 1)
    diff = float(np.nanmax(np.abs(estimate - table["rating"].to_numpy())))
    rep_diff = float(np.nanmax(np.abs(np.array(naive_reps) - reps[:NAIVE_REPLICATES])))
    print(f"rating fit with {REPLICATES} bootstrap replicates on {len(frame):,} verdicts, "
          f"{len(names)} players, CPU time: ours {ours_s:.2f} s (wall {ours_wall:.2f} s); naive "
          f"per-pair loop {naive_per_rep:.3f} s per fit (timed on 1 + {NAIVE_REPLICATES}) -> "
          f"{naive_s:.1f} s for 1 + {REPLICATES} (wall {naive_wall:.1f} s); largest difference {diff:.3f} Elo (estimate), "
          f"{rep_diff:.3f} Elo (replicates)")
    if diff > 0.5 or rep_diff > 1.0:
        print("the two fits disagree", file=sys.stderr)
        sys.exit(1)
    store.dispose()
    print(f"tournament ratio={naive_s / ours_s:.2f} target={TARGET:g}")


if __name__ == "__main__":
    main()
