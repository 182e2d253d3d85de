"""debate.analysis on hand-built debates whose figures are worked out by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest
from scipy.stats import norm

from debate.analysis import analyze
from debate.analysis.frames import prepare
from debate.analysis.intervals import ClusterBootstrap, wilson
from debate.analysis.load import load
from debate.analysis.ratings import ELO_SCALE, fit_bradley_terry, fit_bradley_terry_batch
from debate.analysis.synthetic import seed_synthetic
from debate.errors import UserError
from debate.protocols import get_protocol
from debate.store.models import (
    Agent,
    Debate,
    Document,
    Experiment,
    Judgment,
    Question,
    Quote,
    Seat,
    Turn,
)


class Builder:
    """Writes debates with chosen seats and verdicts through the ORM."""

    def __init__(self, store, name: str = "exp") -> None:
        self.store = store
        self.agents: dict[str, int] = {}
        self.questions = 0
        with store.session() as s:
            exp = Experiment(name=name, protocol="mixed", config={}, config_hash=name, seed=0)
            s.add(exp)
            s.flush()
            self.experiment_id = exp.id

    def agent(self, name: str, kind: str = "model") -> int:
        if name not in self.agents:
            with self.store.session() as s:
                row = Agent(fingerprint=f"{self.experiment_id}/{name}", name=name, kind=kind, settings={})
                s.add(row)
                s.flush()
                self.agents[name] = row.id
        return self.agents[name]

    def question(self, correct: int, document: str | None = None, meta: dict | None = None) -> int:
        self.questions += 1
        with self.store.session() as s:
            doc_id = None
            if document is not None:
                doc = s.query(Document).filter_by(title=document).one_or_none()
                if doc is None:
                    doc = Document(sha256=f"{self.experiment_id}-{document}", title=document, text=document)
                    s.add(doc)
                    s.flush()
                doc_id = doc.id
            q = Question(experiment_id=self.experiment_id, external_id=f"q{self.questions}", dataset="hand",
                         text="?", answers=["a", "b"], correct_index=correct, document_id=doc_id, meta=meta or {})
            s.add(q)
            s.flush()
            return q.id

    def debate(self, question_id: int, protocol: str, first: int, seats: dict[str, tuple[str | None, int | None]],
               verdicts: list[tuple[str, float]], kind: str = "final", stepped: list[tuple[str, int, float]] = (),
               turns: dict[str, str] | None = None, quotes: dict[str, list[tuple[bool, float]]] | None = None,
               meta: dict | None = None, judge_kind: str = "model") -> int:
        """verdicts: (judge, P(answer index 0)); stepped: (judge, after_round, P(answer 0))."""
        # Agents first: a nested write session would wait on this one's SQLite lock.
        for name in {*(a for a, _ in seats.values() if a), *(j for j, _ in verdicts), *(j for j, _, _ in stepped)}:
            self.agent(name, judge_kind if name not in {a for a, _ in seats.values()} else "model")
        with self.store.session() as s:
            count = s.query(Debate).filter_by(question_id=question_id).count()
            d = Debate(experiment_id=self.experiment_id, question_id=question_id, protocol=protocol,
                       protocol_spec=get_protocol(protocol).to_dict(), variant=f"v{count}",
                       answer_order=[first, 1 - first], seed=0, status="done", meta=meta or {})
            s.add(d)
            s.flush()
            for role, (agent, answer) in seats.items():
                s.add(Seat(debate_id=d.id, role=role, agent_id=self.agent(agent) if agent else None,
                           answer_index=answer))
            for judge, p0 in verdicts:
                s.add(Judgment(debate_id=d.id, judge_agent_id=self.agent(judge, judge_kind), kind=kind,
                               probabilities=[p0, 1 - p0], shown_order=[first, 1 - first]))
            for judge, after, p0 in stepped:
                s.add(Judgment(debate_id=d.id, judge_agent_id=self.agent(judge, judge_kind), kind="stepped",
                               after_round=after, probabilities=[p0, 1 - p0], shown_order=[first, 1 - first]))
            for i, (role, text) in enumerate((turns or {}).items()):
                turn = Turn(debate_id=d.id, step=i + 1, round=1, role=role, kind="speech", text=text)
                s.add(turn)
                s.flush()
                for pos, (verified, fuzzy) in enumerate((quotes or {}).get(role, [])):
                    s.add(Quote(turn_id=turn.id, position=pos, text="q", verified=verified, fuzzy_score=fuzzy))
            return d.id


def p_for(correct: int, p_correct: float) -> float:
    """P(answer 0) when the correct answer is `correct` and the judge gives it p_correct."""
    return p_correct if correct == 0 else 1 - p_correct


def build_accuracy_case(b: Builder) -> None:
    """Debate: correct shown first 3/3 right; shown second a tie and a miss -> (1 + 0.25) / 2.
    Consultancy: honest 3/3 right, deceptive 1/1 fooled -> (1 + 0) / 2. Naive 0.5, expert 1."""
    q = b.question(correct=0, document="doc-1")
    for p in (0.9, 0.8, 0.7):
        b.debate(q, "debate", first=0, seats={"A": ("alice", 0), "B": ("bob", 1)}, verdicts=[("judge", p)])
    b.debate(q, "debate", first=1, seats={"A": ("alice", 1), "B": ("bob", 0)}, verdicts=[("judge", 0.5)])
    q2 = b.question(correct=1, document="doc-2")
    b.debate(q2, "debate", first=0, seats={"A": ("alice", 0), "B": ("bob", 1)}, verdicts=[("judge", p_for(1, 0.2))])
    for p in (0.9, 0.6, 0.8):
        b.debate(q, "consultancy", first=0, seats={"consultant": ("carol", 0)}, verdicts=[("judge", p)])
    b.debate(q, "consultancy", first=0, seats={"consultant": ("carol", 1)}, verdicts=[("judge", 0.3)])
    b.debate(q, "naive-judge", first=0, seats={}, verdicts=[("judge", 0.5)])
    b.debate(q, "expert-judge", first=0, seats={}, verdicts=[("judge", 0.9)])


def test_accuracy_ties_half_orders_and_consultant_sides_averaged(store) -> None:
    build_accuracy_case(Builder(store))
    result = analyze(store)
    acc = result.tables["accuracy"].set_index("protocol")
    assert acc.loc["debate", "n"] == 5
    assert acc.loc["debate", "accuracy"] == pytest.approx((1 + 0.25) / 2)
    assert acc.loc["debate", "accuracy_raw"] == pytest.approx(3.5 / 5)
    assert acc.loc["debate", "deceptive_win_rate"] == pytest.approx(1 - 0.625)
    assert acc.loc["consultancy", "accuracy"] == pytest.approx(0.5)
    assert acc.loc["consultancy", "accuracy_raw"] == pytest.approx(0.75)
    assert acc.loc["consultancy", "honest_consultant_accuracy"] == pytest.approx(1.0)
    assert acc.loc["consultancy", "deceptive_consultant_accuracy"] == pytest.approx(0.0)
    assert acc.loc["consultancy", "deceptive_win_rate"] == pytest.approx(1.0)
    assert acc.loc["debate", "gap_closed"] == pytest.approx((0.625 - 0.5) / (1.0 - 0.5))
    low, high = wilson(np.array([0.625]), np.array([5]))
    assert (acc.loc["debate", "wilson_low"], acc.loc["debate", "wilson_high"]) == pytest.approx((low[0], high[0]))

    sig = result.tables["significance"].iloc[0]
    assert (sig["debate_protocol"], sig["consultancy_protocol"]) == ("debate", "consultancy")
    x1, n1, x2, n2 = 3.5, 5, 3.0, 4
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert sig["z"] == pytest.approx(z)
    assert sig["p_value"] == pytest.approx(2 * norm.sf(abs(z)))


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson(np.array([0.8]), np.array([10]))
    assert (round(low[0], 4), round(high[0], 4)) == (0.4902, 0.9433)


def test_bootstrap_equals_a_per_replicate_loop_with_the_same_draws(sqlite_store) -> None:
    seed_synthetic(sqlite_store, questions=60, seed=3, with_turns=False)
    result = analyze(sqlite_store, by=["protocol"], bootstrap=200, seed=7)
    acc = result.tables["accuracy"].set_index("protocol")
    assert (acc["boot_low"] <= acc["accuracy"]).all() and (acc["accuracy"] <= acc["boot_high"]).all()
    again = analyze(sqlite_store, by=["protocol"], bootstrap=200, seed=7).tables["accuracy"]
    assert again["boot_low"].tolist() == result.tables["accuracy"]["boot_low"].tolist()

    # The same draws, one replicate at a time, in plain Python over the verdict rows.

    loaded = load(sqlite_store, None, ["protocol"])
    prep = prepare(loaded, ["protocol"])
    boot = ClusterBootstrap(prep.debates["cluster"], 200, 7)
    groups, fast = boot.stratified_means(prep.verdicts, ["protocol"], "correct", ["consultant_side", "correct_first"])
    rows = list(zip(prep.verdicts["protocol"], prep.verdicts["correct_first"], prep.verdicts["consultant_side"],
                    prep.verdicts["cluster"], prep.verdicts["correct"]))
    index = {c: i for i, c in enumerate(boot.codes)}
    replicate = 0
    for chunk in boot.weights():
        for weights in chunk:
            sums: dict = {}
            for protocol, first, side, cluster, correct in rows:
                w = weights[index[cluster]]
                cell = sums.setdefault((protocol, first, side), [0.0, 0.0])
                cell[0] += w * correct
                cell[1] += w
            for g, protocol in enumerate(groups["protocol"]):
                # Average over the answer orders within each consultant side, then over sides.
                by_side: dict = {}
                for (p, _first, side), (total, n) in sums.items():
                    if p == protocol and n > 0:
                        by_side.setdefault(side, []).append(total / n)
                side_means = [sum(v) / len(v) for v in by_side.values()]
                assert fast[replicate, g] == pytest.approx(sum(side_means) / len(side_means))
            replicate += 1
    assert replicate == 200


def test_calibration_reliability_and_ece_by_hand(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0)
    for p in (0.9, 0.6, 0.3):
        b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)}, verdicts=[("judge", p)])
    result = analyze(sqlite_store)
    cal = result.tables["calibration"].iloc[0]
    assert cal["brier"] == pytest.approx(((0.1) ** 2 + 0.4**2 + 0.7**2) / 3)
    assert cal["log_score"] == pytest.approx((math.log2(0.9) + math.log2(0.6) + math.log2(0.3)) / 3)
    # Answers given 0.1/0.9, 0.6/0.4, 0.3/0.7: bins 1, 9, 6, 4, 3, 7 hold one answer each.
    rel = result.tables["reliability"].set_index("bin")
    assert sorted(rel.index) == [1, 3, 4, 6, 7, 9]
    assert rel.loc[9, "observed"] == 1.0 and rel.loc[7, "observed"] == 0.0
    expected_ece = (0.1 + 0.1 + 0.4 + 0.4 + 0.7 + 0.7) / 6
    assert cal["ece"] == pytest.approx(expected_ece)


def test_stepped_judging_by_round_and_rounds_to_expose(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0)
    b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)}, verdicts=[],
             stepped=[("judge", 0, 0.5), ("judge", 1, 0.7), ("judge", 2, 0.4), ("judge", 3, 0.8)])
    b.debate(q, "debate", first=1, seats={"A": ("x", 1), "B": ("y", 0)}, verdicts=[],
             stepped=[("judge", 0, 0.5), ("judge", 1, 0.3), ("judge", 2, 0.2), ("judge", 3, 0.1)])
    result = analyze(sqlite_store)
    by_round = result.tables["stepped"].set_index("after_round")
    assert by_round.loc[1, "mean_p_correct"] == pytest.approx(0.5)
    assert by_round.loc[3, "accuracy"] == pytest.approx(0.5)
    assert by_round.loc[0, "accuracy"] == pytest.approx(0.5)  # ties count half
    exposure = result.tables["exposure"].iloc[0]
    assert exposure["sequences"] == 2
    assert exposure["exposed_share"] == pytest.approx(0.5)
    assert exposure["mean_rounds_to_expose"] == pytest.approx(3.0)  # 0.7 at round 1 did not hold


def test_first_position_flip_and_length_biases(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0)
    # The judge always picks the answer shown first: right in one order, wrong in the other.
    b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)}, verdicts=[("judge", 0.8)],
             turns={"A": "long " * 50, "B": "short"})
    b.debate(q, "debate", first=1, seats={"A": ("x", 1), "B": ("y", 0)}, verdicts=[("judge", 0.2)],
             turns={"A": "long " * 50, "B": "short"})
    q2 = b.question(correct=1)
    b.debate(q2, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)}, verdicts=[("judge", 0.4)],
             turns={"A": "same", "B": "same"})
    biases = analyze(sqlite_store).tables["biases"].iloc[0]
    assert biases["first_position_win_rate"] == pytest.approx(2 / 3)
    assert biases["flip_rate"] == 1.0 and biases["order_pairs"] == 1
    assert biases["longer_side_win_rate"] == 1.0 and biases["n_length"] == 2  # equal lengths left out
    assert biases["longer_side_honest"] == pytest.approx(0.5)


def test_quotes_by_honest_and_deceptive_side(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0)
    b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)}, verdicts=[("judge", 0.8)],
             turns={"A": "a", "B": "b"},
             quotes={"A": [(True, 1.0), (True, 1.0)], "B": [(True, 1.0), (False, 0.4), (False, 0.2)]})
    quotes = analyze(sqlite_store).tables["quotes"].set_index("side")
    assert quotes.loc["honest", "verified_share"] == 1.0 and quotes.loc["honest", "quotes"] == 2
    assert quotes.loc["deceptive", "verified_share"] == pytest.approx(1 / 3)
    assert quotes.loc["deceptive", "mean_fuzzy"] == pytest.approx(1.6 / 3)


def test_bradley_terry_recovers_a_known_odds_ratio_on_the_elo_scale() -> None:
    wins = np.array([[0.0, 300.0], [100.0, 0.0]])
    theta = fit_bradley_terry(wins)
    assert ELO_SCALE * (theta[0] - theta[1]) == pytest.approx(400 * math.log10(3), abs=1.0)
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 30, (20, 4, 4)).astype(float)
    stack[:, range(4), range(4)] = 0
    single = np.array([fit_bradley_terry(w) for w in stack])
    assert np.abs(fit_bradley_terry_batch(stack, np.zeros(4)) - single).max() < 1e-3


def test_ratings_order_debaters_by_skill_with_intervals(sqlite_store) -> None:
    seed_synthetic(sqlite_store, questions=400, seed=1, with_turns=False)
    result = analyze(sqlite_store, bootstrap=100)
    ratings = result.tables["ratings"]
    debaters = ratings[ratings["group"] == "debater"].set_index("player")
    assert debaters.loc["strong-debater", "rating"] > debaters.loc["weak-debater", "rating"]
    assert (debaters["low"] <= debaters["rating"]).all() and (debaters["rating"] <= debaters["high"]).all()
    sides = ratings[ratings["group"] == "side"].set_index("player")
    assert sides.loc["honest side", "rating"] > sides.loc["deceptive side", "rating"]
    matrix = result.tables["win_rates"]
    pair = matrix[(matrix["player"] == "strong-debater") & (matrix["opponent"] == "weak-debater")]
    back = matrix[(matrix["player"] == "weak-debater") & (matrix["opponent"] == "strong-debater")]
    assert pair["win_rate"].iloc[0] + back["win_rate"].iloc[0] == pytest.approx(1.0)


def test_agreement_matches_krippendorff_on_the_raw_reliability_data(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0)
    human_votes = [(0.8, 0.7, 0.3), (0.2, 0.1, 0.4), (0.9, 0.6, 0.8), (0.3, 0.7, 0.2)]
    model_votes = [0.9, 0.3, 0.2, 0.1]
    for humans, model in zip(human_votes, model_votes):
        d = b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)},
                     verdicts=[(f"h{i}", p) for i, p in enumerate(humans)], judge_kind="human")
        with sqlite_store.session() as s:
            s.add(Judgment(debate_id=d, judge_agent_id=b.agent("m", "model"), kind="final",
                           probabilities=[model, 1 - model], shown_order=[0, 1]))
    agreement = analyze(sqlite_store).tables["agreement"].set_index("judges")
    choices = (np.array(human_votes) < 0.5).astype(float).T  # judges x debates, 0 = answer 0
    expected = krippendorff.alpha(reliability_data=choices, level_of_measurement="nominal")
    assert agreement.loc["humans", "alpha"] == pytest.approx(expected)
    assert agreement.loc["humans", "debates"] == 4
    majority = (choices.sum(axis=0) >= 2).astype(float)
    models = (np.array(model_votes) < 0.5).astype(float)
    pair = krippendorff.alpha(reliability_data=np.vstack([majority, models]), level_of_measurement="nominal")
    assert agreement.loc["humans vs models", "alpha"] == pytest.approx(pair)
    assert agreement.loc["humans vs models", "percent_agreement"] == pytest.approx(np.mean(majority == models))


def test_judges_pooled_metadata_grouping_where_and_unknown_fields(sqlite_store) -> None:
    b = Builder(sqlite_store)
    for topic, correct in (("cats", 0), ("dogs", 1)):
        q = b.question(correct=correct, meta={"topic": topic})
        b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)},
                 verdicts=[("ann", p_for(correct, 0.9)), ("ben", p_for(correct, 0.2))], judge_kind="human",
                 meta={"batch": "one"})
    acc = analyze(sqlite_store, by=["protocol", "judge", "topic"]).tables["accuracy"]
    pooled = acc[acc["judge"] == "all humans"].set_index("topic")
    assert pooled.loc["cats", "accuracy"] == 0.5 and pooled.loc["cats", "n"] == 2
    only_ann = analyze(sqlite_store, by=["judge"], where={"judge": "ann", "batch": "one"}).tables["accuracy"]
    assert only_ann["judge"].tolist() == ["ann"] and only_ann["accuracy"].iloc[0] == 1.0
    with pytest.raises(UserError, match=r"unknown field 'colour'.*metadata: batch, topic"):
        analyze(sqlite_store, by=["colour"])
    with pytest.raises(UserError, match="--experiment: no experiment named 'nope'"):
        analyze(sqlite_store, experiments=["nope"])


def test_an_empty_store_gives_empty_tables(sqlite_store, tmp_path) -> None:
    result = analyze(sqlite_store, bootstrap=10)
    assert all(frame.empty for frame in result.tables.values())
    assert result.plot_pngs(tmp_path) == []
    assert result.to_json()["meta"]["debates"] == 0


def test_grouping_by_debater(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0)
    b.debate(q, "debate", first=0, seats={"A": ("x", 0), "B": ("y", 1)}, verdicts=[("judge", 0.8)])
    b.debate(q, "debate", first=1, seats={"A": ("y", 1), "B": ("x", 0)}, verdicts=[("judge", 0.3)])
    b.debate(q, "consultancy", first=0, seats={"consultant": ("y", 1)}, verdicts=[("judge", 0.6)])
    acc = analyze(sqlite_store, by=["debater"]).tables["accuracy"].set_index("debater")
    assert acc.loc["x vs y", "accuracy"] == 1.0 and acc.loc["y vs x", "accuracy"] == 0.0
    assert acc.loc["y", "n"] == 1
    won = analyze(sqlite_store, by=["deceptive_debater"]).tables["accuracy"].set_index("deceptive_debater")
    assert won.loc["y", "n"] == 3 and won.loc["y", "accuracy_raw"] == pytest.approx(2 / 3)


def test_consultancy_averages_orders_within_a_side_then_the_sides(sqlite_store) -> None:
    b = Builder(sqlite_store)
    q = b.question(correct=0, document="d")
    # Honest: right when the truth is shown first, wrong when second -> 0.5.
    b.debate(q, "consultancy", first=0, seats={"consultant": ("c", 0)}, verdicts=[("judge", 0.9)])
    b.debate(q, "consultancy", first=1, seats={"consultant": ("c", 0)}, verdicts=[("judge", 0.2)])
    # Deceptive: one order only, right -> 1.0. Side by side: 0.75 (a flat mean of cells: 2/3).
    b.debate(q, "consultancy", first=0, seats={"consultant": ("c", 1)}, verdicts=[("judge", 0.7)])
    result = analyze(sqlite_store, bootstrap=20)
    acc = result.tables["accuracy"].iloc[0]
    assert acc["accuracy"] == pytest.approx(0.75)
    assert acc["honest_consultant_accuracy"] == pytest.approx(0.5)
    # One document: every replicate draws it, so the interval collapses on the estimate.
    assert acc["boot_low"] == pytest.approx(0.75) and acc["boot_high"] == pytest.approx(0.75)
