"""The whole probe path on the tiny model: `debate run` with capture, `debate judge`,
`probes train` (side and instructed labels), `probes list`, `probes score` on another
experiment, `analyze --table probes`, `export` with the vectors; and the errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from engine_agents import debate_popen
from sqlalchemy import func, select

from debate.config import parse_config
from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Activation, Debate, ProbeScore, Question, Seat, Turn
from debate.store.turns import ACTIVATIONS as _ACTIVATIONS
from debate.store.turns import activation_columns
from debate.store.turns import bulk_insert as _bulk_insert
from debate.store.vectors import decode_vector

pytestmark = pytest.mark.slow


def write_config(path: Path, name: str, model: Path, protocol: str, limit: int = 6,
                 extra: str = "") -> Path:
    path.write_text(
        f"name: {name}\n"
        f"dataset: {{name: sample, limit: {limit}}}\n"
        f"protocol: {{name: {protocol}, rounds: 2, max_words: 20}}\n"
        "both_orders: true\n"
        "debater:\n"
        "  type: model\n"
        f"  model: {model}\n"
        "  cpu_threads: 1\n"
        "  temperature: 0\n"
        "  max_new_tokens: 24\n"
        "  activations: {layers: [0.5, -1], positions: [generated_mean, prompt_last]}\n"
        + extra,
        encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path, tiny_model_dir, capsys):
    url = f"sqlite:///{tmp_path / 'probes.db'}"
    debate_cfg = write_config(tmp_path / "a.yaml", "probe-debate", tiny_model_dir, "debate")
    consult_cfg = write_config(tmp_path / "b.yaml", "probe-consult", tiny_model_dir,
                               "consultancy", limit=4)
    code, out, err = run_cli(["run", str(debate_cfg), "--db", url, "--quiet"], capsys)
    assert code == 0, err
    # 6 questions x 2 orders x 2 rounds x 2 debaters = 48 turns, 2 layers x 2 positions each
    assert "48 turns" in out
    assert "activations: 192 vectors for 48 turns" in out and "bytes per turn" in out
    code, out, err = run_cli(["run", str(consult_cfg), "--db", url, "--quiet"], capsys)
    assert code == 0, err
    judge = tmp_path / "judge.yaml"
    judge.write_text(f"name: tiny-judge\ntype: logprob\nmodel: {tiny_model_dir}\n"
                     "cpu_threads: 1\nboth_orders: true\nstepped: true\n", encoding="utf-8")
    code, out, err = run_cli(["judge", "--experiment", "probe-debate", "--judge", str(judge),
                              "--db", url], capsys)
    assert code == 0, err
    return url, tmp_path


def test_the_whole_probe_path_on_the_tiny_model(runs, capsys):
    url, tmp_path = runs
    store = open_store(url)
    with store.session() as s:
        # 16-dim float16 vectors: 32 bytes each; stored for every debater turn
        sizes = s.execute(select(Activation.layer, Activation.position, Activation.dtype,
                                 func.length(Activation.data), func.count())
                          .group_by(Activation.layer, Activation.position, Activation.dtype,
                                    func.length(Activation.data))).all()
        turns = s.scalar(select(func.count()).select_from(Turn))
    # tiny model: 2 blocks -> hidden states 0..2; 0.5 -> 1, -1 -> 2; hidden size 32
    assert sorted((lay, pos, dt, n) for lay, pos, dt, n, _ in sizes) == [
        (1, "generated_mean", "float16", 64), (1, "prompt_last", "float16", 64),
        (2, "generated_mean", "float16", 64), (2, "prompt_last", "float16", 64)]
    assert sum(c for *_, c in sizes) == 4 * turns

    code, out, err = run_cli(["probes", "train", "side-l1", "--experiment", "probe-debate",
                              "--layer", "1", "--bootstrap", "200", "--db", url], capsys)
    assert code == 0, err
    assert "48 examples (24 deceptive) in 6 groups, 5 grouped folds" in out
    assert "grouped CV AUROC" in out and "stored 48 scores of 'probe-debate'" in out
    code, out, err = run_cli(["probes", "train", "instr-l2", "--experiment", "probe-debate",
                              "--layer", "2", "--labels", "instructed", "--method", "mean-diff",
                              "--position", "prompt_last", "--bootstrap", "200", "--db", url],
                             capsys)
    assert code == 0, err
    assert "96 examples (48 deceptive) in 48 groups" in out and "transfer AUROC" in out
    code, out, err = run_cli(["probes", "list", "--db", url], capsys)
    assert code == 0 and "side-l1" in out and "instr-l2" in out and "mean-diff" in out

    code, out, err = run_cli(["probes", "score", "side-l1", "--experiment", "probe-consult",
                              "--db", url], capsys)
    assert code == 0, err
    # consultancy: 4 questions x 2 orders x honest/deceptive consultant = 16 debates, 2 rounds
    assert "scored 32 turns of 'probe-consult'" in out
    code, out, err = run_cli(["probes", "score", "side-l1", "--experiment", "probe-debate",
                              "--db", url], capsys)
    assert code == 2 and "training experiment" in err and "\n" not in err.strip()

    out_dir = tmp_path / "analysis"
    code, out, err = run_cli(["analyze", "--table", "probes", "--format", "json", "--out",
                              str(out_dir), "--bootstrap", "200", "--db", url], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["tables"]) == {"probes", "probes_judges", "probes_rounds"}
    rows = doc["tables"]["probes"]
    assert {(r["probe"], r["protocol"], r["side"]) for r in rows} >= {
        ("side-l1", "debate", "all"), ("side-l1", "debate", "A"), ("side-l1", "debate", "B"),
        ("side-l1", "consultancy", "all"), ("instr-l2", "debate", "all")}
    for r in rows:
        assert r["auroc_low"] <= r["auroc"] <= r["auroc_high"]
        assert r["shuffled_low"] <= r["shuffled_auroc"] <= r["shuffled_high"]
        assert r["position_auroc"] is not None
    judges = [r for r in doc["tables"]["probes_judges"] if r["probe"] == "side-l1"]
    assert judges and judges[0]["judge"] == "tiny-judge" and judges[0]["debates"] == 12
    cells = ("judge_right_probe_right", "judge_right_probe_wrong", "judge_wrong_probe_right",
             "judge_wrong_probe_wrong", "judge_ties")
    assert sum(judges[0][c] for c in cells) == 12
    rounds = [r for r in doc["tables"]["probes_rounds"]
              if r["probe"] == "side-l1" and r["protocol"] == "debate"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["judgments"] > 0 and r["judge_accuracy"] is not None for r in rounds)
    assert (out_dir / "probes_layers.png").stat().st_size > 1000
    assert (out_dir / "probes.csv").is_file()

    export = tmp_path / "export"
    code, out, err = run_cli(["export", "--out", str(export), "--experiment", "probe-debate",
                              "--db", url], capsys)
    assert code == 0, err
    index = [json.loads(line) for line in (export / "activations.jsonl").open()]
    arrays = np.load(export / "activations.npz")
    assert len(index) == 192 and sorted(arrays.files) == sorted(r["key"] for r in index)
    with store.session() as s:
        stored = {(a.turn_id, a.layer, a.position): decode_vector(a.data, a.shape, a.dtype)
                  for a in s.scalars(select(Activation))}
        n_scores = s.scalar(select(func.count()).select_from(ProbeScore))
    for r in index[:20]:
        np.testing.assert_array_equal(arrays[r["key"]],
                                      stored[(r["turn_id"], r["layer"], r["position"])])
    scores = [json.loads(line) for line in (export / "probe_scores.jsonl").open()]
    assert {s["experiment"] for s in scores} == {"probe-debate"} and len(scores) == 96
    assert n_scores == 96 + 32
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["arrays"]["activations"]["arrays"] == 192
    store.dispose()


def test_probe_errors_are_one_line(runs, capsys):
    url, _ = runs
    cases = [
        (["probes", "train", "x", "--experiment", "nope", "--layer", "1"], "--experiment: no experiment named 'nope'"),
        (["probes", "train", "x", "--experiment", "probe-debate", "--layer", "0"], "--layer: 'probe-debate' has no activations at layer 0; captured layers: 1, 2"),
        (["probes", "score", "missing", "--experiment", "probe-debate"], "NAME: no probe named 'missing'"),
    ]
    for argv, message in cases:
        code, _out, err = run_cli([*argv, "--db", url], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    assert run_cli(["probes", "train", "x", "--experiment", "probe-debate", "--layer", "1",
                    "--bootstrap", "50", "--db", url], capsys)[0] == 0
    code, _out, err = run_cli(["probes", "train", "x", "--experiment", "probe-debate", "--layer",
                               "1", "--db", url], capsys)
    assert code == 2 and "a probe named 'x' exists (use --replace)" in err


def test_capture_config_errors_are_one_line(tmp_path, tiny_model_dir, capsys):
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    openai = tmp_path / "openai.yaml"
    openai.write_text("name: o\ndataset: {name: sample, limit: 2}\nprotocol: debate\n"
                      "debater: {type: model, backend: openai, model: some-served-model,\n"
                      "          activations: {layers: [1]}}\n", encoding="utf-8")
    code, _out, err = run_cli(["run", str(openai), "--db", url, "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {openai}: debater.activations: the openai backend cannot give "
                          "activations")
    far = write_config(tmp_path / "far.yaml", "far", tiny_model_dir, "debate", limit=2)
    far.write_text(far.read_text().replace("layers: [0.5, -1]", "layers: [7]"))
    code, _out, err = run_cli(["run", str(far), "--db", url, "--quiet"], capsys)
    assert code == 2 and "debater.activations.layers: 7 is out of range; the model has hidden " \
        "states 0..2" in err
    frac = write_config(tmp_path / "frac.yaml", "frac", tiny_model_dir, "debate", limit=2)
    frac.write_text(frac.read_text().replace("layers: [0.5, -1]", "layers: [1.5]"))
    code, _out, err = run_cli(["run", str(frac), "--db", url, "--quiet"], capsys)
    assert code == 2 and "debater.activations.layers" in err and "[0, 1]" in err
    # nothing was written by the refused runs
    store = open_store(url)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Turn)) == 0
    store.dispose()


@pytest.mark.postgres
def test_two_workers_store_every_turns_vectors_once_on_postgresql(pg_url, tmp_path,
                                                                    tiny_model_dir):
    cfg = write_config(tmp_path / "w.yaml", "probe-workers", tiny_model_dir, "debate")
    procs = [debate_popen("run", str(cfg), "--worker", "--chunk", "2", "--quiet", "--db", pg_url,
                          "--worker-id", f"w{i}") for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out)
    store = open_store(pg_url)
    with store.session() as s:
        turns = s.scalar(select(func.count()).select_from(Turn))
        per_turn = s.execute(select(Activation.turn_id, func.count())
                             .group_by(Activation.turn_id)).all()
        workers = {t.meta["worker"] for t in s.scalars(select(Turn))}
    store.dispose()
    assert turns == 48 and len(per_turn) == 48 and {n for _, n in per_turn} == {4}
    assert workers and workers <= {"w0", "w1"}  # (how the work split depends on timing)
    # each worker's summary counts the experiment's vectors so far
    assert any("activations: 192 vectors for 48 turns" in o for o in outs)


def test_planted_direction_in_stored_activations_through_the_cli(tmp_path, capsys):
    """Labels come from the store (seat answer vs correct answer): vectors planted along a
    direction for the deceptive side only give AUROC near 1 through `probes train` and
    `analyze`, the shuffled control sits at 0.5, and a second experiment scores alike."""
    url = f"sqlite:///{tmp_path / 'planted.db'}"
    store = open_store(url)
    for name, protocol in (("planted-debate", "debate"), ("planted-consult", "consultancy")):
        cfg = parse_config({"name": name, "dataset": {"name": "sample"}, "both_orders": True,
                            "protocol": {"name": protocol, "rounds": 2},
                            "debater": {"type": "scripted"}})
        run_experiment(store, cfg, tmp_path, show_progress=False)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=24)
    with store.session() as s:
        rows = s.execute(select(Turn.id, Seat.answer_index, Question.correct_index)
                         .join(Debate, Debate.id == Turn.debate_id)
                         .join(Question, Question.id == Debate.question_id)
                         .join(Seat, (Seat.debate_id == Turn.debate_id) & (Seat.role == Turn.role))
                         ).all()
    vectors = [(tid, (3, "generated_mean"),
                (rng.normal(size=24) + 3.0 * (ans != correct) * direction).astype(np.float16))
               for tid, ans, correct in rows]
    with store.write_session() as s:
        _bulk_insert(s.connection(), _ACTIVATIONS, activation_columns(vectors))
    store.dispose()
    code, out, err = run_cli(["probes", "train", "planted", "--experiment", "planted-debate",
                              "--layer", "3", "--bootstrap", "200", "--db", url], capsys)
    assert code == 0, err
    auroc = float(re.search(r"grouped CV AUROC ([0-9.]+)", out).group(1))
    assert auroc > 0.97, out
    code, out, err = run_cli(["probes", "score", "planted", "--experiment", "planted-consult",
                              "--db", url], capsys)
    assert code == 0 and float(out.rsplit(" ", 1)[1]) > 0.97, out
    code, out, err = run_cli(["analyze", "--table", "probes", "--format", "json",
                              "--bootstrap", "300", "--db", url], capsys)
    rows = {(r["experiment"], r["side"]): r for r in json.loads(out)["tables"]["probes"]}
    for key in (("planted-debate", "all"), ("planted-consult", "all")):
        r = rows[key]
        assert r["auroc"] > 0.97 and r["auroc_low"] > 0.9
        assert r["shuffled_low"] <= 0.5 <= r["shuffled_high"]
        assert r["recall_1pct_fpr"] > 0.5
        assert r["mean_score_deceptive"] > 0 > r["mean_score_honest"]
    rounds = [r for r in json.loads(out)["tables"]["probes_rounds"]
              if r["experiment"] == "planted-debate"]
    assert [r["probe_side_accuracy"] for r in rounds] == [1.0, 1.0]
