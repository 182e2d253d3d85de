"""Persuasiveness: Bradley-Terry ratings of debaters on an Elo scale, and the win-rate matrix.

Every debate verdict is a match between the agents in seats A and B; the side whose answer
the judge favoured wins (a tie is half a win each). Ratings are the maximum-likelihood
Bradley-Terry strengths (scipy L-BFGS, with a weak ridge prior of 0.01 * sum(theta^2) so an
unbeaten debater gets a finite rating), shown as Elo = 1500 + 400 * log10(e) * theta, and
centred at 1500. Three tables share this: "debater" (self-play left out), "debater-side"
(each debater arguing truth and arguing falsehood as two players) and "side" (truth vs
falsehood overall). Bootstrap intervals refit on cluster-resampled win matrices.

Side-specific ratings (Khan et al. 2024; used by the strength curve, debate.analysis.strength):
`fit_side_ratings` rates each debater's true side and false side in one Bradley-Terry fit
(honest players only meet deceptive ones), gives their mean as the debater's aggregate
rating, and `comparison_check` says which players cannot be rated and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from debate.analysis.frames import Prepared
from debate.analysis.intervals import ClusterBootstrap, percentile_interval
from debate.analysis.load import DECEPTIVE, HONEST, Loaded
from debate.analysis.metrics import ADVERSARIAL
from debate.vocabulary import SeatRole

ELO_BASE = 1500.0
ELO_SCALE = 400.0 / np.log(10.0)
PRIOR = 0.01


def fit_bradley_terry(wins: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Strengths theta (natural-log scale, mean 0) from wins[i, j] = i's score against j."""
    players = wins.shape[0]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        loglik = -(wins * np.logaddexp(0.0, -diff)).sum()
        p_win = 1.0 / (1.0 + np.exp(-diff))
        grad = (wins * (1 - p_win)).sum(axis=1) - (wins.T * p_win).sum(axis=1)
        return -loglik + PRIOR * (theta**2).sum(), -grad + 2 * PRIOR * theta

    x0 = np.zeros(players) if start is None else start
    theta = minimize(objective, x0, jac=True, method="L-BFGS-B").x
    return theta - theta.mean()


def fit_bradley_terry_batch(wins: np.ndarray, start: np.ndarray, iterations: int = 50) -> np.ndarray:
    """The same penalised MLE as fit_bradley_terry for a stack of win matrices (R x P x P).

    Newton steps (clipped) on all replicates at once (the objective is strictly convex thanks
    to the ridge prior), so a 1,000-replicate bootstrap costs a few batched solves.
    """
    reps, players, _ = wins.shape
    theta = np.broadcast_to(start, (reps, players)).copy()
    eye = np.eye(players)
    for _ in range(iterations):
        diff = theta[:, :, None] - theta[:, None, :]
        p_win = 1.0 / (1.0 + np.exp(-diff))
        grad = (wins * (1 - p_win)).sum(axis=2) - (np.swapaxes(wins, 1, 2) * p_win).sum(axis=2)
        grad = grad - 2 * PRIOR * theta
        weight = (wins + np.swapaxes(wins, 1, 2)) * p_win * (1 - p_win)
        # Hessian of the penalised log-likelihood: +weight off the diagonal, minus row sums on it.
        hessian = weight - eye * weight.sum(axis=2)[:, :, None] - 2 * PRIOR * eye
        step = np.clip(np.linalg.solve(hessian, grad[:, :, None])[:, :, 0], -2.0, 2.0)
        theta = theta - step
        if np.abs(step).max() < 1e-9:
            break
    return theta - theta.mean(axis=1, keepdims=True)


def _matches(prep: Prepared, loaded: Loaded) -> pd.DataFrame:
    """One row per debate verdict: the two seats' agents and answers, and A's score."""
    v = prep.single_verdicts
    v = v[v["family"].isin(ADVERSARIAL)]
    seats = loaded.seats[loaded.seats["role"].isin([SeatRole.A, SeatRole.B]) & loaded.seats["agent_id"].notna()]
    wide = seats.pivot_table(index="debate_id", columns="role", values=["agent_id", "answer_index"],
                             aggfunc="first")
    if v.empty or wide.empty or ("agent_id", "B") not in wide.columns or ("agent_id", "A") not in wide.columns:
        return pd.DataFrame()
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    wide = wide.dropna().reset_index()
    columns = ["debate_id", "correct", "correct_index", "cluster", "judge", "judge_type", "protocol"]
    m = v[columns].merge(wide, on="debate_id", how="inner")
    a_correct = m["answer_index_A"] == m["correct_index"]
    m["score_a"] = np.where(a_correct, m["correct"], 1 - m["correct"])
    labels = loaded.agents.set_index("id")["label"]
    m["player_a"] = m["agent_id_A"].astype(np.int64).map(labels)
    m["player_b"] = m["agent_id_B"].astype(np.int64).map(labels)
    m["side_a"] = np.where(a_correct, HONEST, DECEPTIVE)
    m["side_b"] = np.where(a_correct, DECEPTIVE, HONEST)
    return m


def _player_frames(m: pd.DataFrame) -> dict[str, pd.DataFrame]:
    debater = m[m["player_a"] != m["player_b"]].assign(a=m["player_a"], b=m["player_b"])
    sided = m.assign(a=m["player_a"] + " (" + m["side_a"] + ")", b=m["player_b"] + " (" + m["side_b"] + ")")
    side = m.assign(a=m["side_a"] + " side", b=m["side_b"] + " side")
    return {"debater": debater, "debater-side": sided, "side": side}


def _win_matrix(frame: pd.DataFrame, players: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = players.get_indexer(frame["a"])
    b = players.get_indexer(frame["b"])
    n = len(players)
    score = frame["score_a"].to_numpy(dtype=float)
    wins = np.zeros((n, n))
    np.add.at(wins, (a, b), score)
    np.add.at(wins, (b, a), 1 - score)
    return wins, a, b


def rating_tables(prep: Prepared, loaded: Loaded, boot: ClusterBootstrap | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings for the three player kinds, debater win-rate matrix in long form)."""
    rating_cols = ["group", "player", "rating", "low", "high", "matches", "score_rate"]
    matrix_cols = ["player", "opponent", "win_rate", "matches"]
    m = _matches(prep, loaded)
    if m.empty:
        return pd.DataFrame(columns=rating_cols), pd.DataFrame(columns=matrix_cols)
    tables = []
    matrix = pd.DataFrame(columns=matrix_cols)
    for group, frame in _player_frames(m).items():
        both = np.concatenate([frame["a"].to_numpy(dtype=object), frame["b"].to_numpy(dtype=object)])
        players = pd.Index(sorted(pd.unique(both)))
        if len(players) < 2:
            continue
        wins, a, b = _win_matrix(frame, players)
        theta = fit_bradley_terry(wins)
        games = wins + wins.T
        table = pd.DataFrame({
            "group": group,
            "player": players,
            "rating": ELO_BASE + ELO_SCALE * theta,
            "matches": games.sum(axis=1),
            "score_rate": wins.sum(axis=1) / np.maximum(games.sum(axis=1), 1e-12),
        })
        if boot is not None:
            reps = _bootstrap(frame, players, a, b, boot, theta)
            table["low"], table["high"] = percentile_interval(ELO_BASE + ELO_SCALE * reps)
        tables.append(table)
        if group == "debater":
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = wins / games
            ii, jj = np.nonzero(games)
            matrix = pd.DataFrame({"player": players[ii], "opponent": players[jj],
                                   "win_rate": rate[ii, jj], "matches": games[ii, jj]})
    ratings = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=rating_cols)
    for column in rating_cols:
        if column not in ratings:
            ratings[column] = np.nan
    return ratings[rating_cols].sort_values(["group", "rating"], ascending=[True, False]), matrix


def _bootstrap(frame: pd.DataFrame, players: pd.Index, a: np.ndarray, b: np.ndarray,
               boot: ClusterBootstrap, start: np.ndarray) -> np.ndarray:
    """Replicates x players strengths, refit on each replicate's resampled win matrix."""
    n = len(players)
    codes = boot.code(frame["cluster"])
    score = frame["score_a"].to_numpy(dtype=float)
    cells = np.concatenate([a * n + b, b * n + a])
    values = np.concatenate([score, 1 - score])
    fits = [fit_bradley_terry_batch(chunk.reshape(-1, n, n), start)
            for chunk in boot.sums(np.concatenate([codes, codes]), cells, values, n * n)]
    return np.vstack(fits)


# --- side-specific ratings (Khan et al. 2024) -------------------------------------------
#
# Each debater has a true-side strength (arguing the correct answer) and a false-side
# strength; a verdict between the honest debater i and the deceptive debater j is a
# Bradley-Terry match between "i arguing truth" and "j arguing falsehood" (self-play
# included). A debater's aggregate rating is the mean of its two, as in Khan et al. 2024.

def side_player_frame(m: pd.DataFrame) -> pd.DataFrame:
    """Matches with a = the honest side's (debater, side) player and b = the deceptive one's;
    score_a is the honest side's score."""
    honest_first = (m["side_a"] == HONEST).to_numpy()
    honest = np.where(honest_first, m["player_a"], m["player_b"])
    deceptive = np.where(honest_first, m["player_b"], m["player_a"])
    return pd.DataFrame({
        "a": pd.Series(honest, index=m.index).astype(str) + " (" + HONEST + ")",
        "b": pd.Series(deceptive, index=m.index).astype(str) + " (" + DECEPTIVE + ")",
        "honest": honest, "deceptive": deceptive,
        "score_a": np.where(honest_first, m["score_a"], 1 - m["score_a"]),
        "cluster": m["cluster"].to_numpy(),
    })


def comparison_check(players: pd.Index, wins: np.ndarray) -> pd.DataFrame:
    """Which players can be rated, and why not. A player outside the largest connected
    part of the comparison graph has no path of games to the others: its rating says
    nothing about theirs (status "unratable"). A player that won (or lost) every one of
    its comparisons has a rating bounded only by the ridge prior (status "bounded")."""
    games = wins + wins.T
    n_comp, labels = connected_components(csr_matrix(games > 0), directed=False)
    sizes = np.bincount(labels, minlength=n_comp)
    main = int(np.argmax(sizes)) if len(sizes) else 0
    rows = []
    for i, player in enumerate(players):
        played = games[i].sum()
        opponents = [players[j] for j in np.nonzero(games[i])[0]]
        if played == 0:
            status, reason = "unratable", "no games"
        elif labels[i] != main:
            status = "unratable"
            reason = ("no chain of games links it to the main group; it met only "
                      + ", ".join(map(str, opponents[:5])))
        elif wins[i].sum() >= played - 1e-9:
            status, reason = "bounded", "won every comparison: rating bounded only by the prior"
        elif wins[i].sum() <= 1e-9:
            status, reason = "bounded", "lost every comparison: rating bounded only by the prior"
        else:
            status, reason = "rated", ""
        rows.append({"player": player, "status": status, "reason": reason,
                     "matches": played, "opponents": len(opponents)})
    return pd.DataFrame(rows, columns=["player", "status", "reason", "matches", "opponents"])


def fit_side_ratings(frame: pd.DataFrame, boot: ClusterBootstrap | None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray | None, pd.Index]:
    """(per debater: true, false and aggregate Elo with intervals; the players' check;
    replicates x debaters aggregate Elo or None; the debaters).

    Unratable players (outside the main connected part) get NaN ratings, and a debater's
    aggregate needs both of its sides rated."""
    both = np.concatenate([frame["a"].to_numpy(dtype=object), frame["b"].to_numpy(dtype=object)])
    players = pd.Index(sorted(pd.unique(both)))
    wins, a, b = _win_matrix(frame, players)
    check = comparison_check(players, wins)
    theta = fit_bradley_terry(wins)
    elo = ELO_BASE + ELO_SCALE * theta
    usable = (check["status"] != "unratable").to_numpy()
    elo = np.where(usable, elo, np.nan)
    reps = None
    if boot is not None:
        reps = ELO_BASE + ELO_SCALE * _bootstrap(frame, players, a, b, boot, theta)
        reps[:, ~usable] = np.nan
    debaters = pd.Index(sorted(pd.unique(np.concatenate([frame["honest"].to_numpy(dtype=object),
                                                         frame["deceptive"].to_numpy(dtype=object)]))))
    t_idx = players.get_indexer(debaters.astype(str) + f" ({HONEST})")
    f_idx = players.get_indexer(debaters.astype(str) + f" ({DECEPTIVE})")

    def pick(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        out = np.full(values.shape[:-1] + (len(idx),), np.nan)
        ok = idx >= 0
        out[..., ok] = values[..., idx[ok]]
        return out

    games = (wins + wins.T).sum(axis=1)
    table = pd.DataFrame({
        "debater": debaters,
        "true_rating": pick(elo, t_idx), "false_rating": pick(elo, f_idx),
        "true_matches": pick(games, t_idx), "false_matches": pick(games, f_idx),
    })
    table["rating"] = (table["true_rating"] + table["false_rating"]) / 2
    agg_reps = None
    for col in ("true", "false", ""):
        low, high = (f"{col}_low", f"{col}_high") if col else ("low", "high")
        table[low] = table[high] = np.nan
    if reps is not None:
        t_reps, f_reps = pick(reps, t_idx), pick(reps, f_idx)
        agg_reps = (t_reps + f_reps) / 2
        for col, r in (("true", t_reps), ("false", f_reps), ("", agg_reps)):
            low, high = (f"{col}_low", f"{col}_high") if col else ("low", "high")
            table[low], table[high] = percentile_interval(r)
    status = check.set_index("player")["status"]
    table["status"] = [_worst(status.get(f"{d} ({HONEST})", "unratable"),
                              status.get(f"{d} ({DECEPTIVE})", "unratable")) for d in debaters]
    return table, check, agg_reps, debaters


def _worst(*statuses: str) -> str:
    for s in ("unratable", "bounded", "rated"):
        if s in statuses:
            return s
    return "rated"
