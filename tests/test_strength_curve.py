"""Ratings and the strength-accuracy curve recover what was planted.

Debaters of planted strength (the chance of quoting the decisive evidence) play a round
robin judged by a rule-based judge whose behaviour is known, so before the run we know:
the ratings follow the planted strengths on both sides; judge accuracy in self-play rises
with strength in debate and falls in consultancy; the deceptive side's win rate does the
opposite. With hint accuracy q and strength s the judge's expected self-play accuracy is
s + q(1-s)^2 in debate and s/2 + q(1-s) in consultancy (see judges/rule.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from rich.console import Console
from sqlalchemy import insert, select
from web_launch import launch
from web_world import PASSWORD, add_accounts

from debate.analysis import analyze
from debate.analysis.plots import strength_plot
from debate.analysis.ratings import ELO_SCALE, fit_side_ratings
from debate.analysis.strength import strength_analysis
from debate.config import parse_config
from debate.run import run_experiment
from debate.store.models import Debate, Judgment, User
from debate.store.models import Question as QuestionRow
from debate.tournaments.config import parse_tournament
from debate.tournaments.run import run_tournament
from judges import demo_tournament
from judges.rule import judge_experiment_by_rule
from judges.tournament import judge_games_with

STRENGTHS = [0.3, 0.5, 0.7, 0.9]


def planted_tournament(store, tmp_path: Path, count: int = 60, name: str = "planted"):
    cfg = parse_tournament({
        "tournament": name, "seed": 1,
        "dataset": {"name": "planted", "count": count, "hint_accuracy": 0.7},
        "protocols": [{"name": "debate", "rounds": 1}, {"name": "consultancy", "rounds": 1}],
        "debaters": [{"type": "planted", "name": "s{strength}", "sweep": {"strength": STRENGTHS}}],
        "judges": [{"type": "rule"}],
    })
    return run_tournament(store, cfg, tmp_path, judge_games=judge_games_with(cfg.judges, tmp_path),
                          show_progress=False)


def hint_accuracy(store) -> float:
    with store.session() as s:
        metas = s.scalars(select(QuestionRow.meta)).all()
    return float(np.mean([bool(m["hint_correct"]) for m in metas]))


def test_planted_strengths_are_recovered(store, tmp_path):
    planted_tournament(store, tmp_path)
    t = strength_analysis(store, bootstrap=300, seed=2).tables
    assert t["connectivity"].empty
    ratings = t["side_ratings"].set_index("debater").loc[[f"s{s}" for s in STRENGTHS]]
    for column in ("true_rating", "false_rating", "rating"):
        assert ratings[column].is_monotonic_increasing, ratings[column]
    assert (ratings["low"] < ratings["rating"]).all() and (ratings["rating"] < ratings["high"]).all()
    assert (ratings["status"] == "rated").all()

    fit = t["strength_fit"].set_index(["protocol", "metric"])
    assert fit.loc[("debate", "accuracy"), "low"] > 0
    assert fit.loc[("consultancy", "accuracy"), "high"] < 0
    assert fit.loc[("debate", "deceptive_win_rate"), "high"] < 0
    assert fit.loc[("consultancy", "deceptive_win_rate"), "low"] > 0
    assert (fit["points"] == 4).all()

    q = hint_accuracy(store)
    points = t["strength"].set_index(["protocol", "debater"])
    for s in STRENGTHS:
        debate, consult = points.loc[("debate", f"s{s}")], points.loc[("consultancy", f"s{s}")]
        assert debate["accuracy"] == pytest.approx(s + q * (1 - s) ** 2, abs=0.1)
        assert consult["accuracy"] == pytest.approx(s / 2 + q * (1 - s), abs=0.1)
        assert consult["deceptive_win_rate"] == pytest.approx(1 - q * (1 - s), abs=0.12)
        assert debate["accuracy_low"] <= debate["accuracy"] <= debate["accuracy_high"]


def test_side_ratings_recover_known_strengths():
    rng = np.random.default_rng(0)
    true = {"a": -1.0, "b": -0.3, "c": 0.3, "d": 1.0}
    false = {"a": -0.8, "b": -0.2, "c": 0.2, "d": 0.8}
    rows = []
    for h, t_h in true.items():
        for d, f_d in false.items():
            p = 1 / (1 + np.exp(-(t_h - f_d)))
            for k, score in enumerate(rng.random(600) < p):
                rows.append({"a": f"{h} (honest)", "b": f"{d} (deceptive)", "honest": h,
                             "deceptive": d, "score_a": float(score), "cluster": k})
    table, check, _, _ = fit_side_ratings(pd.DataFrame(rows), None)
    table = table.set_index("debater")
    assert check["status"].eq("rated").all()
    for h, t_h in true.items():
        for d, f_d in false.items():
            fitted = (table.loc[h, "true_rating"] - table.loc[d, "false_rating"]) / ELO_SCALE
            assert fitted == pytest.approx(t_h - f_d, abs=0.15)
    assert table["rating"].is_monotonic_increasing


def test_connectivity_names_the_agents_that_cannot_be_rated():
    rows = []
    # a and b play each other and themselves; c and e only each other: without self-play
    # or other games, a debater's true side and false side are not even comparable
    for h, d in (("a", "b"), ("b", "a"), ("a", "a"), ("b", "b"), ("c", "e"), ("e", "c")):
        for k in range(20):
            rows.append({"a": f"{h} (honest)", "b": f"{d} (deceptive)", "honest": h, "deceptive": d,
                         "score_a": float(k % 3 == 0), "cluster": k})
    for k in range(20):  # a joins the main group through f, whose true side never loses
        rows.append({"a": "f (honest)", "b": "a (deceptive)", "honest": "f", "deceptive": "a",
                     "score_a": 1.0, "cluster": k})
    table, check, _, _ = fit_side_ratings(pd.DataFrame(rows), None)
    status = check.set_index("player")
    for player in ("c (honest)", "c (deceptive)", "e (honest)", "e (deceptive)"):
        assert status.loc[player, "status"] == "unratable"
        assert "no chain of games links it to the main group" in status.loc[player, "reason"]
    assert status.loc["f (honest)", "status"] == "bounded"
    assert "won every comparison" in status.loc["f (honest)", "reason"]
    table = table.set_index("debater")
    assert np.isnan(table.loc["c", "rating"]) and np.isnan(table.loc["e", "rating"])
    assert table.loc["c", "status"] == "unratable"
    assert not np.isnan(table.loc["a", "rating"])
    assert table.loc["f", "status"] == "unratable"  # f never argued the false side


def test_rule_judge_ignores_invented_evidence(sqlite_store, tmp_path):
    """A liar that 'quotes' official records the source does not hold gains nothing: the
    quote is unverified, so the judge falls back on the question's hint."""
    liar = {"type": "scripted", "name": "forger",
            "template": "It was {answer}. <quote>The keeper's records show that it was {answer}.</quote>"}
    cfg = parse_config({"name": "forged", "seed": 0, "dataset": {"name": "planted", "count": 20},
                        "protocol": {"name": "debate", "rounds": 1}, "both_orders": True,
                        "honest_debater": {"type": "planted", "name": "mute", "strength": 0.0},
                        "deceptive_debater": liar})
    run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    summary = judge_experiment_by_rule(sqlite_store, "forged", {"type": "rule"})
    assert summary["judgments_written"] == 40
    with sqlite_store.session() as s:
        rows = s.execute(select(Judgment.probabilities, QuestionRow.correct_index, QuestionRow.meta)
                         .join(Debate, Judgment.debate_id == Debate.id)
                         .join(QuestionRow, Debate.question_id == QuestionRow.id)).all()
    assert len(rows) == 40
    for probs, correct, meta in rows:
        expected = 0.65 if meta["hint_correct"] else 0.35
        assert probs[correct] == pytest.approx(expected)
    assert judge_experiment_by_rule(sqlite_store, "forged", {"type": "rule"})["judgments_written"] == 0


def test_analyze_offers_the_strength_tables(sqlite_store, tmp_path):
    planted_tournament(sqlite_store, tmp_path, count=8)
    result = analyze(sqlite_store, bootstrap=50)
    for name in ("side_ratings", "connectivity", "side_win_rates", "strength", "strength_fit"):
        assert name in result.tables
    assert len(result.tables["strength"]) == 8  # 4 debaters x 2 protocols, one judge
    assert len(result.tables["side_win_rates"]) == 16
    paths = result.plot_pngs(tmp_path / "out")
    assert tmp_path / "out" / "strength.png" in paths
    assert "strength_fit" in result.to_json()["tables"]


def test_demo_section_prints_the_curve(sqlite_store):
    console = Console(record=True, width=160)
    demo_tournament.run(sqlite_store, console)
    text = console.export_text()
    assert "The strength-accuracy curve" in text
    lines = {tuple(line.split()[:2]): line for line in text.splitlines() if "slope" in line}
    assert "slope +" in lines[("debate", "accuracy")]
    assert "slope -" in lines[("consultancy", "accuracy")]
    assert "slope -" in lines[("debate", "deceptive_win_rate")]
    assert "slope +" in lines[("consultancy", "deceptive_win_rate")]
    again = Console(record=True, width=160)
    demo_tournament.run(sqlite_store, again)
    assert "20 games (0 new)" in again.export_text()


def test_results_tab_shows_the_strength_curve(sqlite_store, tmp_path):
    planted_tournament(sqlite_store, tmp_path, count=8, name="web-t")
    add_accounts(sqlite_store, ("root", "admin"), ("alice", "judge"))
    launched = launch(sqlite_store)
    try:
        root = Client(launched.url, auth=("root", PASSWORD), verbose=False, download_files=False)
        html = root.predict(["web-t"], api_name="/strength")
        assert "<img" in html and "strength_fit" in html and "side_ratings" in html
        assert "s0.9" in html
        with pytest.raises(AppError, match="no tournament named 'nope'"):
            root.predict(["nope"], api_name="/strength")
        alice = Client(launched.url, auth=("alice", PASSWORD), verbose=False, download_files=False)
        with pytest.raises(AppError, match="admins only"):
            alice.predict([], api_name="/strength")
    finally:
        launched.close()


def test_human_judges_get_their_curves_and_a_pooled_one(sqlite_store, tmp_path):
    """Verdicts of people (a campaign's judges) count like a model judge's: each person
    and "all humans" get ratings and a curve."""
    planted_tournament(sqlite_store, tmp_path, count=8)
    add_accounts(sqlite_store, ("ann", "judge"), ("ben", "judge"))
    with sqlite_store.session() as s:
        users = dict(s.execute(select(User.name, User.id)).all())
        rule = s.execute(select(Judgment.debate_id, Judgment.probabilities, Judgment.shown_order)
                         .order_by(Judgment.debate_id)).all()
        s.execute(insert(Judgment), [
            {"debate_id": d, "user_id": users["ann" if i % 2 else "ben"], "kind": "final",
             "probabilities": p, "shown_order": o, "meta": {}}
            for i, (d, p, o) in enumerate(rule)])
    t = strength_analysis(sqlite_store, bootstrap=20).tables
    assert {"ann", "ben", "all humans", "rule-judge"} <= set(t["strength"]["judge"])
    assert {"ann", "ben", "all humans", "rule-judge", "all judges"} <= set(t["side_ratings"]["judge"])
    pooled = t["strength"][t["strength"]["judge"] == "all humans"]
    model = t["strength"][t["strength"]["judge"] == "rule-judge"]
    assert pooled["accuracy"].tolist() == model["accuracy"].tolist()  # same verdicts, pooled
    assert (pooled["rating_judge"] == "all humans").all()


def test_a_debater_without_debate_verdicts_is_named_unratable(sqlite_store, tmp_path):
    planted_tournament(sqlite_store, tmp_path, count=6)
    cfg = parse_config({"name": "lone-consultant", "seed": 1,
                        "dataset": {"name": "planted", "count": 6},
                        "protocol": {"name": "consultancy", "rounds": 1},
                        "debater": {"type": "planted", "name": "loner", "strength": 0.5}})
    run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    judge_experiment_by_rule(sqlite_store, "lone-consultant",
                             {"type": "rule", "name": "rule-judge"})
    t = strength_analysis(sqlite_store, bootstrap=10).tables
    row = t["connectivity"].set_index("player").loc["loner"]
    assert row["status"] == "unratable" and "no debate verdicts" in row["reason"]
    loner = t["strength"][t["strength"]["debater"] == "loner"]
    assert len(loner) == 1 and np.isnan(loner["rating"].iloc[0])
    assert t["strength_fit"]["points"].max() == 4  # the curve is fitted without it


def test_the_plot_draws_names_as_text(tmp_path):
    points = pd.DataFrame({
        "judge": ["$x^$"] * 3, "protocol": ["debate"] * 3, "family": ["debate"] * 3,
        "debater": ["a", "b", "c"], "rating": [1400.0, 1500.0, 1600.0],
        "rating_low": [np.nan] * 3, "rating_high": [np.nan] * 3, "n": [10] * 3,
        "accuracy": [0.5, 0.6, 0.7], "accuracy_low": [0.4, 0.5, 0.6], "accuracy_high": [0.6, 0.7, 0.8],
        "deceptive_win_rate": [0.5, 0.4, 0.3], "deceptive_win_low": [0.4, 0.3, 0.2],
        "deceptive_win_high": [0.6, 0.5, 0.4]})
    fits = pd.DataFrame({"judge": ["$x^$"], "protocol": ["debate"], "metric": ["accuracy"],
                         "slope_per_100_elo": [0.1], "low": [np.nan], "high": [np.nan],
                         "intercept": [-0.9]})
    path = strength_plot(points, fits, tmp_path / "s.png")
    assert path is not None and path.stat().st_size > 5_000
