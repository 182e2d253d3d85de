"""Tournaments: configs, expansion into experiments, resuming, adding debaters, swiss
rounds, and the CLI; the analysis recovering planted strengths is in
test_strength_curve.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_runner import run_cli
from engine_agents import debate_popen, run_until_killed
from sqlalchemy import delete, func, select

from debate.analysis.strength import strength_analysis
from debate.errors import ConfigError
from debate.quotes import TRUNCATION_MARK, count_words
from debate.store import open_store
from debate.store.models import (
    Agent,
    Debate,
    Experiment,
    Judgment,
    Tournament,
    TournamentGame,
    Turn,
)
from debate.store.models import Question as QuestionRow
from debate.store.tournaments import tournament_games
from debate.tournaments.config import expand_debaters, load_tournament, parse_tournament
from debate.tournaments.run import plan_tournament, run_tournament
from debate.tournaments.schedule import swiss_pairs
from judges.tournament import judge_games_with


def config(**over) -> dict:
    base = {
        "tournament": "t",
        "seed": 3,
        "dataset": {"name": "planted", "count": 6},
        "protocols": [{"name": "debate", "rounds": 1}, {"name": "consultancy", "rounds": 1}],
        "debaters": [{"type": "planted", "name": "p{strength}", "sweep": {"strength": [0.2, 0.8]}}],
        "judges": [{"type": "rule"}],
    }
    base.update(over)
    return base


def run(store, data: dict, tmp_path: Path):
    cfg = parse_tournament(data, "t.yaml")
    return run_tournament(store, cfg, tmp_path, judge_games=judge_games_with(cfg.judges, tmp_path),
                          show_progress=False)


def count(store, model, *where) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_sweeps_expand_into_named_debaters():
    cfg = parse_tournament(config(debaters=[
        {"type": "model", "model": "m", "name": "m-bo{best_of}-t{temperature}",
         "sweep": {"best_of": [1, 4, 16], "temperature": [0.7, 1.0]}},
        {"type": "planted", "name": "fixed", "strength": 0.5},
        {"type": "planted", "name": "plain", "sweep": {"strength": [0.1, 0.9]}},
    ]))
    names = [d.name for d in expand_debaters(cfg)]
    assert names[:2] == ["m-bo1-t0.7", "m-bo1-t1.0"] and len(names) == 9
    assert "fixed" in names and "plain-strength=0.1" in names and "plain-strength=0.9" in names
    spec = next(d.spec for d in expand_debaters(cfg) if d.name == "m-bo16-t1.0")
    assert spec == {"type": "model", "model": "m", "name": "m-bo16-t1.0", "best_of": 16,
                    "temperature": 1.0}


@pytest.mark.parametrize(("change", "message"), [
    ({"debaters": [{"type": "planted", "strength": 0.5}]}, "debaters.0.name: missing"),
    ({"debaters": [{"type": "planted", "name": "a", "strength": 0.5},
                   {"type": "planted", "name": "a", "strength": 0.6}]},
     "debaters.1.name: 'a' is also the name of a debater in debaters.0"),
    ({"debaters": [{"type": "planted", "name": "a", "sweep": {"strength": 0.5}}]},
     "debaters.0.sweep.strength: expected a non-empty list"),
    ({"protocols": ["naive-judge"]}, "protocols.0: 'naive-judge' cannot be played"),
    ({"protocols": ["open-debate"]}, "cannot be played in a tournament"),
    ({"schedule": {"type": "swiss", "rounds": 2}, "judges": []}, "needs a judge"),
    ({"schedule": {"type": "knockout"}}, "schedule"),
    ({"rounds": 3}, "rounds: unknown field"),
    ({"tournament": "a/b"}, "tournament: a name without '/'"),
])
def test_bad_configs_name_the_field(change, message):
    with pytest.raises(ConfigError, match="t.yaml: .*" + message.replace("(", r"\(")):
        parse_tournament(config(**change), "t.yaml")


def test_bad_agent_settings_are_caught_before_anything_is_written(sqlite_store, tmp_path):
    cfg = parse_tournament(config(debaters=[{"type": "planted", "name": "x", "strength": 1.5}]),
                           "t.yaml")
    with pytest.raises(ConfigError, match=r"t.yaml: debaters.0.strength"):
        plan_tournament(cfg, tmp_path, "t.yaml")
    assert count(sqlite_store, Experiment) == 0 and count(sqlite_store, Tournament) == 0


def test_round_robin_expands_once_and_resumes(store, tmp_path):
    first = run(store, config(), tmp_path)
    # 2 debaters: 4 ordered debate pairs (2 self-play) + 2 consultancies
    assert (first.games, first.created) == (6, 6)
    games = tournament_games(store, "t")
    kinds = sorted((g.kind, g.honest, g.deceptive) for g in games)
    assert kinds == [("consultancy", "p0.2", "p0.2"), ("consultancy", "p0.8", "p0.8"),
                     ("cross", "p0.2", "p0.8"), ("cross", "p0.8", "p0.2"),
                     ("self", "p0.2", "p0.2"), ("self", "p0.8", "p0.8")]
    assert {g.experiment for g in games} >= {"t/debate/p0.2~p0.8", "t/consultancy/p0.8"}
    # 6 questions x 2 orders per debate game; x 2 (honest, deceptive) per consultancy
    assert first.debates == {"done": 4 * 12 + 2 * 24}
    judged = count(store, Judgment)
    assert judged == 96
    again = run(store, config(), tmp_path)
    assert (again.games, again.created, again.stats.turns) == (6, 0, 0)
    assert count(store, Judgment) == judged and count(store, Debate) == 96


def test_adding_a_debater_adds_only_its_games(sqlite_store, tmp_path):
    run(sqlite_store, config(), tmp_path)
    with sqlite_store.session() as s:
        before = dict(s.execute(select(Experiment.name, Experiment.id)).all())
    more = config(debaters=[{"type": "planted", "name": "p{strength}",
                             "sweep": {"strength": [0.2, 0.8, 0.5]}}])
    result = run(sqlite_store, more, tmp_path)
    # 3 debaters: 9 debate games + 3 consultancies; 5 + 1 of them new
    assert (result.games, result.created) == (12, 6)
    with sqlite_store.session() as s:
        after = dict(s.execute(select(Experiment.name, Experiment.id)).all())
        stored = s.scalar(select(Tournament.config).where(Tournament.name == "t"))
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == [
        "t/consultancy/p0.5", "t/debate/p0.2~p0.5", "t/debate/p0.5~p0.2", "t/debate/p0.5~p0.5",
        "t/debate/p0.5~p0.8", "t/debate/p0.8~p0.5"]
    assert len(stored["debaters"][0]["sweep"]["strength"]) == 3
    assert count(sqlite_store, Judgment) == count(sqlite_store, Debate)  # new games judged too


def test_a_changed_game_config_is_refused_before_any_write(sqlite_store, tmp_path):
    run(sqlite_store, config(), tmp_path)
    n_exp, n_debates = count(sqlite_store, Experiment), count(sqlite_store, Debate)
    changed = config(seed=4, debaters=[{"type": "planted", "name": "p{strength}",
                                        "sweep": {"strength": [0.2, 0.8, 0.5]}}])
    with pytest.raises(ConfigError, match="already exists with a different config"):
        run(sqlite_store, changed, tmp_path)
    assert (count(sqlite_store, Experiment), count(sqlite_store, Debate)) == (n_exp, n_debates)
    with sqlite_store.session() as s:
        assert s.scalar(select(Tournament.seed)) == 3


# ---------------------------------------------------------------- debaters' own word limits


def spoken(store) -> list[tuple[str, int, str, str, str, dict]]:
    """(agent name, debate id, role, text, status, meta) of every stored turn."""
    with store.session() as s:
        return [tuple(r) for r in s.execute(
            select(Agent.name, Turn.debate_id, Turn.role, Turn.text, Turn.status, Turn.meta)
            .join(Agent, Agent.id == Turn.agent_id)).all()]


def words(text: str) -> int:
    return count_words(text.removesuffix(TRUNCATION_MARK))


def test_a_word_limit_sweep_expands_into_distinct_rated_debaters(sqlite_store, tmp_path):
    data = config(protocols=[{"name": "debate", "rounds": 1, "max_words": 40}],
                  debaters=[{"type": "planted", "name": "p-w{max_words}", "strength": 0.9,
                             "sweep": {"max_words": [6, 12]}},
                            {"type": "planted", "name": "free", "strength": 0.9}])
    entries = expand_debaters(parse_tournament(data))
    assert [(d.name, d.spec.get("max_words")) for d in entries] == [
        ("p-w6", 6), ("p-w12", 12), ("free", None)]
    result = run(sqlite_store, data, tmp_path)
    assert (result.games, result.debates) == (9, {"done": 9 * 12})
    with sqlite_store.session() as s:
        agents = {a.name: a for a in s.scalars(select(Agent).where(Agent.kind == "planted"))}
    # same type, strength and seed: only the word limit tells them apart, and it is kept
    assert {n: a.settings.get("max_words") for n, a in agents.items()} == {
        "p-w6": 6, "p-w12": 12, "free": None}
    assert len({a.fingerprint for a in agents.values()}) == 3
    turns = spoken(sqlite_store)
    most = {n: max(words(t[3]) for t in turns if t[0] == n) for n in agents}
    assert most["p-w6"] <= 6 and most["p-w12"] <= 12 and 12 < most["free"] <= 40
    ratings = strength_analysis(sqlite_store, bootstrap=0).tables["side_ratings"]
    assert {"p-w6", "p-w12", "free"} <= set(ratings["debater"])


def test_a_seat_keeps_its_own_word_limit_while_the_other_seat_has_the_protocols(
        sqlite_store, tmp_path):
    """Scripted debaters: one with its own limit of 7 words, one with the protocol's 20;
    each seat of a cross game is cut to its own limit, with the engine's mark and the raw
    text kept."""
    data = config(protocols=[{"name": "debate", "rounds": 2, "max_words": 20},
                             {"name": "consultancy", "rounds": 1, "max_words": 20}],
                  debaters=[{"type": "scripted", "name": "tight", "max_words": 7},
                            {"type": "scripted", "name": "loose"}])
    run(sqlite_store, data, tmp_path)
    turns = spoken(sqlite_store)
    by_debate: dict[int, dict[str, set[str]]] = {}
    for name, debate_id, role, *_ in turns:
        by_debate.setdefault(debate_id, {}).setdefault(name, set()).add(role)
    cross = {d for d, seats in by_debate.items() if len(seats) == 2}
    assert len(cross) == 2 * 12  # tight~loose and loose~tight, 6 questions x 2 orders
    for name, limit in (("tight", 7), ("loose", 20)):
        mine = [t for t in turns if t[0] == name]
        assert all(words(t[3]) <= limit for t in mine), name
        cut = [t for t in mine if t[4] == "truncated"]
        assert cut and all(t[3].endswith(TRUNCATION_MARK) and words(t[5]["raw_text"]) > limit
                           for t in cut)
        in_cross = [t for t in mine if t[1] in cross]
        assert in_cross and max(words(t[3]) for t in in_cross) == limit
    # the scripted template is longer than 7 words: every one of tight's turns was cut
    assert all(t[4] == "truncated" for t in turns if t[0] == "tight")


def test_a_model_debater_is_told_its_own_word_limit(sqlite_store, tmp_path, tiny_model_dir):
    """The prompt states the seat's limit, and the model's turns are resampled against it
    and then cut, as the protocol's limit would be."""
    model = {"type": "model", "name": "m-w3", "model": str(tiny_model_dir), "cpu_threads": 1,
             "max_words": 3, "max_resamples": 1, "max_new_tokens": 40, "temperature": 0.9}
    data = config(dataset={"name": "planted", "count": 1}, both_orders=False,
                  protocols=[{"name": "debate", "rounds": 1, "max_words": 30}],
                  debaters=[model, {"type": "planted", "name": "free", "strength": 0.9}])
    assert run(sqlite_store, data, tmp_path).debates == {"done": 4}
    with sqlite_store.session() as s:
        rows = s.execute(select(Agent.name, Turn.shown, Turn.text, Turn.status, Turn.meta)
                         .join(Agent, Agent.id == Turn.agent_id)).all()
    mine = [r for r in rows if r.name == "m-w3"]
    assert len(mine) == 4  # self-play (2 seats) + 2 cross games
    for r in mine:
        assert "at most 3 words" in r.shown and "30 words" not in r.shown
        assert r.status == "truncated" and words(r.text) <= 3
        assert [x["reason"].startswith("over 3 words") for x in r.meta["resampled"]] == [True]
    assert max(words(r.text) for r in rows if r.name == "free") > 3


@pytest.mark.parametrize(("debater", "field", "problem"), [
    ({"type": "planted", "name": "p", "strength": 0.5, "max_words": 151},
     "debaters.0.max_words", "151 is looser than the max_words 150 of protocol 'debate'"),
    ({"type": "scripted", "name": "s{max_words}", "sweep": {"max_words": [50, 200]}},
     "debaters.0.sweep.max_words", "200 is looser than the max_words 150"),
    ({"type": "planted", "name": "p", "strength": 0.5, "max_words": "short"},
     "debaters.0.max_words", "expected a whole number of words >= 1, got 'short'"),
    ({"type": "planted", "name": "p", "strength": 0.5, "max_words": 0},
     "debaters.0.max_words", "expected a whole number"),
])
def test_a_looser_or_bad_word_limit_is_refused_in_one_line(tmp_path, capsys, debater, field,
                                                            problem):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config(debaters=[debater])))
    db_file = tmp_path / "bad.db"
    code, out, err = run_cli(["run", str(path), "--db", f"sqlite:///{db_file}"], capsys)
    assert code == 2 and not db_file.exists(), out + err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"bad.yaml: {field}: {problem}" in err


def test_a_word_limit_under_the_protocols_minimum_is_refused():
    data = config(protocols=[{"name": "debate", "rounds": 1, "min_words": 10}],
                  debaters=[{"type": "planted", "name": "p", "strength": 0.5, "max_words": 9}])
    with pytest.raises(ConfigError, match=r"^t.yaml: debaters.0.max_words: 9 is below the "
                                          r"min_words 10 of protocol 'debate'$"):
        parse_tournament(data, "t.yaml")


def test_word_limited_debaters_join_an_existing_tournament_leaving_it_as_it_was(
        sqlite_store, tmp_path):
    run(sqlite_store, config(), tmp_path)
    before = tournament_snapshot(sqlite_store)
    with sqlite_store.session() as s:
        agents_before = dict(s.execute(select(Agent.id, Agent.fingerprint)).all())
    again = run(sqlite_store, config(), tmp_path)  # a plain rerun plays and stores nothing
    assert (again.created, again.stats.turns) == (0, 0)
    more = config(debaters=[{"type": "planted", "name": "p{strength}",
                             "sweep": {"strength": [0.2, 0.8]}},
                            {"type": "planted", "name": "p0.8-w8", "strength": 0.8,
                             "max_words": 8}])
    result = run(sqlite_store, more, tmp_path)
    assert (result.games, result.created) == (12, 6)  # only the new debater's games
    with sqlite_store.session() as s:
        agents_after = dict(s.execute(select(Agent.id, Agent.fingerprint)).all())
    assert {k: agents_after[k] for k in agents_before} == agents_before
    assert len(agents_after) == len(agents_before) + 1
    after = tournament_snapshot(sqlite_store)
    assert before <= after
    assert {row for row in after - before if "p0.8-w8" not in row[0]} == set()


def test_swiss_pairs_by_rating_without_repeats():
    ratings = {"a": 1600.0, "b": 1550.0, "c": 1500.0, "d": 1450.0, "e": 1400.0}
    assert swiss_pairs(ratings, set(), 0, 1) == [("a", "b"), ("c", "d")]
    played = {frozenset("ab"), frozenset("cd")}
    assert swiss_pairs(ratings, played, 0, 2) == [("a", "c"), ("b", "d")]


def test_swiss_tournament_runs_rounds_and_resumes(sqlite_store, tmp_path):
    data = config(schedule={"type": "swiss", "rounds": 2}, protocols=[{"name": "debate", "rounds": 1}],
                  dataset={"name": "planted", "count": 10},
                  debaters=[{"type": "planted", "name": "p{strength}",
                             "sweep": {"strength": [0.1, 0.3, 0.5, 0.7, 0.9, 0.95]}}])
    result = run(sqlite_store, data, tmp_path)
    assert result.rounds == 3
    games = tournament_games(sqlite_store, "t")
    by_round = {r: [g for g in games if g.round == r] for r in range(3)}
    assert [len(by_round[r]) for r in range(3)] == [6, 6, 6]  # self-play; 3 pairs x 2 sides
    assert all(g.kind == "self" for g in by_round[0])
    pairs = [frozenset((g.honest, g.deceptive)) for r in (1, 2) for g in by_round[r]]
    assert len(set(pairs)) == 6  # each pair plays both sides once; no pair meets twice
    for r in (1, 2):  # every debater plays once a round, on both sides
        names = [g.honest for g in by_round[r]]
        assert sorted(names) == sorted({d for p in pairs for d in p} & set(names))
        assert len(set(names)) == 6
    again = run(sqlite_store, data, tmp_path)
    assert (again.created, again.stats.turns) == (0, 0)
    assert tournament_games(sqlite_store, "t") == games
    # a run killed while storing round 2: one pair's links lost; the rerun pairs the two
    # free debaters again, finds their experiments and plays nothing twice
    lost = by_round[2][0]
    with sqlite_store.session() as s:
        s.execute(delete(TournamentGame).where(TournamentGame.experiment_id.in_(
            [g.experiment_id for g in by_round[2]
             if {g.honest, g.deceptive} == {lost.honest, lost.deceptive}])))
    assert len(tournament_games(sqlite_store, "t")) == 16
    healed = run(sqlite_store, data, tmp_path)
    assert (healed.created, healed.stats.turns) == (0, 0)
    assert sorted(g.experiment for g in tournament_games(sqlite_store, "t")) == \
        sorted(g.experiment for g in games)


def test_cli_runs_tournaments_and_the_strength_table(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(config()))
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    code, out, err = run_cli(["run", str(path), "--db", db, "--quiet"], capsys)
    assert code == 0, err
    assert "tournament 't'" in out and "6 games (6 new)" in out and "96 done" in out
    code, out, _ = run_cli(["run", str(path), "--db", db, "--quiet"], capsys)
    assert code == 0 and "6 games (0 new)" in out
    out_dir = tmp_path / "results"
    code, out, err = run_cli(["analyze", "--db", db, "--tournament", "t", "--table", "strength",
                              "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "strength_fit" in out and "side_ratings" in out and "accuracy" in out
    assert (out_dir / "strength.png").stat().st_size > 10_000
    assert (out_dir / "strength_fit.csv").read_text().count("\n") == 5  # 2 protocols x 2 metrics
    code, _, err = run_cli(["analyze", "--db", db, "--tournament", "nope"], capsys)
    assert code == 2 and "--tournament: no tournament named 'nope'; known: t" in err


def test_cli_refuses_a_bad_tournament_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config(debaters=[{"type": "planted", "name": "x",
                                                     "strength": "strong"}])))
    db_file = tmp_path / "bad.db"
    code, _, err = run_cli(["run", str(path), "--db", f"sqlite:///{db_file}"], capsys)
    assert code == 2 and not db_file.exists()  # refused before the database is opened
    assert err.strip().count("\n") == 0 and "bad.yaml: debaters.0.strength" in err
    assert "Traceback" not in err


def test_the_example_tournament_is_valid():
    path = Path(__file__).resolve().parent.parent / "examples" / "tournament-planted.yaml"
    plan = plan_tournament(load_tournament(path), path.parent, str(path))
    assert plan.debaters[0].name == "planted-0.2" and len(plan.questions) == 100


def test_model_judges_judge_tournament_rounds(sqlite_store, tmp_path, tiny_model_dir):
    """A model judge in the tournament's `judges:` judges every round's games, and its
    verdicts give it its own ratings and curve."""
    judge = {"type": "logprob", "name": "tiny-judge", "model": str(tiny_model_dir),
             "both_orders": False}
    data = config(dataset={"name": "planted", "count": 2}, protocols=[{"name": "debate", "rounds": 1}],
                  judges=[judge, {"type": "rule"}])
    result = run(sqlite_store, data, tmp_path)
    assert result.debates == {"done": 16}
    with sqlite_store.session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 32  # both judges
    t = strength_analysis(sqlite_store, bootstrap=0).tables
    assert {"tiny-judge", "rule-judge"} <= set(t["side_ratings"]["judge"])
    assert set(t["strength"]["judge"]) == {"tiny-judge", "rule-judge"}


def tournament_snapshot(store) -> set[tuple]:
    with store.session() as s:
        return set(s.execute(
            select(Experiment.name, QuestionRow.external_id, Debate.variant, Turn.round, Turn.role,
                   Turn.text)
            .join(Debate, Debate.experiment_id == Experiment.id)
            .join(QuestionRow, QuestionRow.id == Debate.question_id)
            .join(Turn, Turn.debate_id == Debate.id)).all())


@pytest.mark.slow
def test_kill_9_mid_tournament_then_rerun_loses_and_duplicates_nothing(tmp_path):
    data = config(dataset={"name": "planted", "count": 3}, protocols=[{"name": "debate", "rounds": 3}],
                  debaters=[{"type": "scripted", "name": "s{delay}",
                             "sweep": {"delay": [0.05, 0.06]}}])
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    db = tmp_path / "killed.db"
    url = f"sqlite:///{db}"
    run_until_killed(path, url, db, min_turns=30)  # 4 games x 6 debates x 6 turns = 144
    rerun = debate_popen("run", str(path), "--db", url, "--quiet")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "4 games (0 new)" in out and "24 done" in out
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    clean = debate_popen("run", str(path), "--db", clean_url, "--quiet")
    assert clean.wait(timeout=300) == 0
    killed_store, clean_store = open_store(url), open_store(clean_url)
    try:
        assert count(killed_store, Judgment) == 24  # each debate judged once
        snapshot = tournament_snapshot(killed_store)
        assert len(snapshot) == 144 and snapshot == tournament_snapshot(clean_store)
    finally:
        killed_store.dispose()
        clean_store.dispose()
