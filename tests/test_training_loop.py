"""The self-play training loop end to end on the tiny offline model: two DPO rounds for a
debate track and a consultancy track, each round's debater its own agent, rated, with
exploit counts beside accuracy; a rerun resumes; bad configs are refused up front."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from cli_runner import run_cli
from sqlalchemy import func, select

from debate.store import open_store
from debate.store.models import Agent, Experiment, Judgment, Turn
from debate.training.exploits import FIELDS


def loop_config(model: Path, **over) -> dict:
    cfg = {
        "name": "sp",
        "rounds": 2,
        "dataset": {"name": "sample", "limit": 2},
        "eval_dataset": {"name": "sample", "offset": 2, "limit": 2},
        "both_orders": False,
        "protocols": [{"name": "debate", "rounds": 1, "max_words": 15},
                      {"name": "consultancy", "rounds": 1, "max_words": 15}],
        "debater": {"type": "model", "model": str(model), "best_of": 2, "temperature": 1.0,
                    "cpu_threads": 1},
        "judge": {"type": "logprob", "model": str(model), "cpu_threads": 1},
        "data": {"sources": ["candidates"], "chosen_must_be_clean": False},
        "dpo": {"max_steps": 2, "batch_size": 2, "learning_rate": 1.0e-3, "cpu_threads": 1,
                "save_steps": 100},
        "strength_bootstrap": 20,
        "out": "loop-out",
    }
    cfg.update(over)
    return cfg


def counts(url: str) -> tuple[int, int, int]:
    store = open_store(url)
    try:
        with store.session() as s:
            return (s.scalar(select(func.count()).select_from(Experiment)),
                    s.scalar(select(func.count()).select_from(Turn)),
                    s.scalar(select(func.count()).select_from(Judgment)))
    finally:
        store.dispose()


def test_two_round_loop_end_to_end(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(loop_config(tiny_model_dir)))
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    code, out, err = run_cli(["train", "loop", str(path), "--db", url, "--quiet"], capsys)
    assert code == 0, err
    assert "judge accuracy and exploit counts by training round" in out
    loop_out = tmp_path / "loop-out"
    with (loop_out / "report.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["track"], r["round"]) for r in rows] == [
        ("debate", "0"), ("debate", "1"), ("debate", "2"),
        ("consultancy", "0"), ("consultancy", "1"), ("consultancy", "2")]
    for r in rows:
        assert r["agent"] == f"sp-{r['track']}-r{r['round']}"
        assert r["experiment"] == r["agent"] + "-eval"    # measured on held-out questions
        assert r["train_accuracy"] != ""
        assert r["accuracy"] != "" and 0 <= float(r["accuracy"]) <= 1
        assert set(FIELDS) <= set(r) and int(r["speeches"]) == 4
        if r["round"] != "2":
            assert int(float(r["pairs"])) > 0 and int(float(r["dpo_steps"])) == 2
        if r["round"] != "0":
            model = Path(r["model"])
            assert model == loop_out / r["track"] / f"r{r['round']}" / "model"
            assert (model / "training.json").is_file()
    # round 1 of each track trained from round 0's model, round 2 from round 1's
    assert rows[1]["model"] != rows[2]["model"] and rows[0]["model"] == str(tiny_model_dir)
    store = open_store(url)
    try:
        with store.session() as s:
            agent_rows = list(s.scalars(select(Agent)))
            agents = {a.name: a.model_id for a in agent_rows}
            pref = {a.name: a.settings.get("preference_judge") for a in agent_rows}
            names = set(s.scalars(select(Experiment.name)))
    finally:
        store.dispose()
    for r in rows:
        assert agents[r["agent"]] == r["model"]   # each round's debater: its own agent row
        # its candidates were scored by the loop's judge model
        assert pref[r["agent"]]["model"] == str(tiny_model_dir)
    assert {"sp-debate-r1-vs-r0-honest", "sp-debate-r1-vs-r0-deceptive",
            "sp-debate-r2-vs-r1-honest", "sp-debate-r2-vs-r1-deceptive"} <= names
    with (loop_out / "ratings.csv").open() as fh:
        rated = {r["player"] for r in csv.DictReader(fh)}
    assert rated == {"sp-debate-r0", "sp-debate-r1", "sp-debate-r2"}
    assert all(r["elo"] != "" for r in rows if r["track"] == "debate")
    # the strength curve (judge accuracy against debater rating) over the loop's debaters
    with (loop_out / "strength.csv").open() as fh:
        points = list(csv.DictReader(fh))
    on_curve = {p["debater"] for p in points if p["protocol"] == "debate" and p["rating"]}
    assert on_curve == {"sp-debate-r0", "sp-debate-r1", "sp-debate-r2"}
    assert all(r["strength_rating"] != "" for r in rows if r["track"] == "debate")
    assert (loop_out / "strength.png").is_file() and (loop_out / "strength_fit.csv").is_file()
    assert (loop_out / "accuracy_by_round.png").stat().st_size > 1000

    # a rerun resumes: nothing is run, trained or judged twice
    before = counts(url)
    code, _, err = run_cli(["train", "loop", str(path), "--db", url, "--quiet"], capsys)
    assert code == 0, err
    assert counts(url) == before
    # ... and refuses to carry on under another data rule than its pairs were made with
    changed = loop_config(tiny_model_dir)
    changed["data"]["min_margin"] = 0.5
    path.write_text(yaml.safe_dump(changed))
    code, _, err = run_cli(["train", "loop", str(path), "--db", url, "--quiet"], capsys)
    assert code == 2 and "made with another selection rule" in err
    assert counts(url) == before


def test_bad_loop_configs_are_refused_before_anything_is_written(tiny_model_dir, tmp_path,
                                                                 capsys):
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    path = tmp_path / "loop.yaml"
    cases = [
        ({"round": 2}, "round: unknown field"),
        ({"protocols": ["naive-judge"]}, "protocols.0: naive-judge has no debater to train"),
        ({"debater": {"type": "scripted"}}, "debater: type: the loop trains a `type: model`"),
        ({"dpo": {"beta": -1}}, "dpo: beta: Input should be greater than 0"),
        ({"dpo": "missing.yaml"}, "dpo: no such file"),
        ({"judge": {"type": "logprob", "model": str(tiny_model_dir), "stepped": "x"}},
         "judge: stepped:"),
        ({"debater": {"type": "model", "model": str(tiny_model_dir), "best_of": 1}},
         "debater.best_of: needs >= 2 candidates"),
        ({"dataset": {"name": "no-such-set"}}, "experiment sp-debate-r0: dataset"),
        ({"eval_dataset": {"name": "sample", "offset": 1, "limit": 2}},
         "eval_dataset: 1 of its questions are also training questions"),
    ]
    for over, message in cases:
        cfg = loop_config(tiny_model_dir, **over)
        path.write_text(yaml.safe_dump(cfg))
        code, _, err = run_cli(["train", "loop", str(path), "--db", url, "--quiet"], capsys)
        assert code == 2, (over, err)
        assert err.startswith(f"error: {path}"), err
        assert message in err, (message, err)
    assert not (tmp_path / "loop-out").exists()
    assert counts(url)[0] == 0
