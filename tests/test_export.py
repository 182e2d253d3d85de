"""Exports: one row per entity, stable ids, provenance, all three formats, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

import debate.export as export_module
from debate.demo.scripted import run
from debate.errors import UserError
from debate.export import COLUMNS, export_store
from debate.store.models import Agent, Debate, Experiment, Judgment, Quote, Turn


def add_judgment(store, debate_id: int, probabilities: list[float]) -> int:
    with store.session() as s:
        judge = Agent(fingerprint="f" * 64, name="judge-m", kind="model-judge",
                      model_id="tiny/model", backend="transformers",
                      settings={"temperature": 0.0})
        s.add(judge)
        s.flush()
        j = Judgment(debate_id=debate_id, judge_agent_id=judge.id, probabilities=probabilities,
                     shown_order=[1, 0], explanation="because", time_taken_ms=12.5)
        s.add(j)
        s.flush()
        return j.id


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def table_counts(store) -> dict[str, int]:
    with store.session() as s:
        return {
            "experiments": s.scalar(select(func.count()).select_from(Experiment)),
            "debates": s.scalar(select(func.count()).select_from(Debate)),
            "turns": s.scalar(select(func.count()).select_from(Turn)),
            "quotes": s.scalar(select(func.count()).select_from(Quote)),
            "judgments": s.scalar(select(func.count()).select_from(Judgment)),
        }


def test_jsonl_export_has_every_entity_with_ids_and_provenance(demo_store, tmp_path) -> None:
    store = demo_store
    judgment_id = add_judgment(store, 1, [0.25, 0.75])
    result = export_store(store, tmp_path / "out", "jsonl")
    out = result.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.jsonl" for t in COLUMNS] + ["manifest.json"]
    )
    tables = {t: read_jsonl(out / f"{t}.jsonl") for t in COLUMNS}
    counts = table_counts(store)
    for table, n in counts.items():
        assert len(tables[table]) == n == result.rows[table], table
        assert len({row["id"] for row in tables[table]}) == n  # one row per entity
        for row in tables[table]:
            assert list(row) == COLUMNS[table]
    assert len(tables["documents"]) == 20
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["turns"] == {"file": "turns.jsonl", "rows": counts["turns"]}

    debates = {d["id"]: d for d in tables["debates"]}
    turn_ids = {t["id"] for t in tables["turns"]}
    for t in tables["turns"]:
        d = debates[t["debate_id"]]
        assert (t["experiment"], t["protocol"]) == (d["experiment"], d["protocol"])
        assert t["agent_kind"] == "scripted" and t["agent_settings"]["template"]
        # the honest flag agrees with the seat and the correct answer
        seat = next(s for s in d["seats"] if s["role"] == t["role"])
        assert t["honest"] == (seat["answer_index"] == d["correct_index"])
        assert t["agent_name"] == ("scripted-honest" if t["honest"] else "scripted-deceptive")
    for q in tables["quotes"]:
        assert q["turn_id"] in turn_ids and q["debate_id"] in debates
        assert q["verified"] == (q["source_start"] is not None)
    for d in debates.values():
        assert d["answers"][d["answer_order"][d["correct_position"]]] == \
            d["answers"][d["correct_index"]]
    experiments = {e["experiment"]: e for e in tables["experiments"]}
    assert experiments["demo-debate"]["config"]["both_orders"] is True
    (j,) = tables["judgments"]
    assert j["id"] == judgment_id and j["debate_id"] == 1
    assert j["judge_model_id"] == "tiny/model" and j["judge_settings"] == {"temperature": 0.0}
    assert j["p_correct"] == [0.25, 0.75][debates[1]["correct_index"]]
    assert j["experiment"] == "demo-debate"


def test_exports_are_stable_and_formats_agree(demo_store, tmp_path) -> None:
    store = demo_store
    add_judgment(store, 2, [0.6, 0.4])
    first = export_store(store, tmp_path / "a", "jsonl").out_dir
    second = export_store(store, tmp_path / "b", "jsonl").out_dir
    for table in COLUMNS:
        assert (first / f"{table}.jsonl").read_bytes() == (second / f"{table}.jsonl").read_bytes()
    csv_dir = export_store(store, tmp_path / "c", "csv").out_dir
    parquet_dir = export_store(store, tmp_path / "p", "parquet").out_dir
    for table in COLUMNS:
        rows = read_jsonl(first / f"{table}.jsonl")
        for frame in (pd.read_csv(csv_dir / f"{table}.csv"),
                      pd.read_parquet(parquet_dir / f"{table}.parquet")):
            assert list(frame.columns) == COLUMNS[table]
            assert frame["id"].tolist() == [r["id"] for r in rows]
    turns = pd.read_parquet(parquet_dir / "turns.parquet")
    rows = read_jsonl(first / "turns.jsonl")
    assert turns["text"].tolist() == [r["text"] for r in rows]
    assert [json.loads(s) for s in turns["agent_settings"]] == [r["agent_settings"] for r in rows]
    debates = pd.read_csv(csv_dir / "debates.csv")
    assert [json.loads(s) for s in debates["answer_order"]] == \
        [r["answer_order"] for r in read_jsonl(first / "debates.jsonl")]


def test_export_of_one_experiment(demo_store, tmp_path) -> None:
    out = export_store(demo_store, tmp_path / "one", "jsonl",
                       experiment="demo-consultancy").out_dir
    debates = read_jsonl(out / "debates.jsonl")
    assert len(debates) == 40 and {d["experiment"] for d in debates} == {"demo-consultancy"}
    assert len(read_jsonl(out / "turns.jsonl")) == 80
    assert [e["experiment"] for e in read_jsonl(out / "experiments.jsonl")] == ["demo-consultancy"]
    labels = {d["variant"].split(",")[-1] for d in debates}
    assert labels == {"honest", "deceptive"}
    with pytest.raises(UserError, match="--experiment: no experiment named 'nope'"):
        export_store(demo_store, tmp_path / "none", "jsonl", experiment="nope")
    assert not (tmp_path / "none").exists()


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_export_is_all_or_nothing(sqlite_store, tmp_path, monkeypatch) -> None:
    import io

    from rich.console import Console

    run(sqlite_store, Console(file=io.StringIO()))
    out = tmp_path / "out"
    real_turn_rows = export_module._turn_rows

    def failing_turn_rows(session, ctx):  # the disk fills up half way through the turns
        for i, row in enumerate(real_turn_rows(session, ctx)):
            if i == 100:
                raise OSError("No space left on device")
            yield row

    monkeypatch.setattr(export_module, "_turn_rows", failing_turn_rows)
    with pytest.raises(OSError, match="No space left"):
        export_store(sqlite_store, out, "jsonl")
    assert not out.exists() and _leftovers(tmp_path) == []
    monkeypatch.undo()

    # an existing export is neither overwritten nor touched without --overwrite
    export_store(sqlite_store, out, "jsonl", experiment="demo-naive-judge")
    before = (out / "debates.jsonl").read_bytes()
    with pytest.raises(UserError, match="exists and is not empty"):
        export_store(sqlite_store, out, "csv")
    assert (out / "debates.jsonl").read_bytes() == before
    result = export_store(sqlite_store, out, "csv", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.csv" for t in COLUMNS] + ["manifest.json"]
    )
    assert result.rows["debates"] == 120 and _leftovers(tmp_path) == []
    # an empty directory is filled; a file is refused
    empty = tmp_path / "empty"
    empty.mkdir()
    export_store(sqlite_store, empty, "parquet", experiment="demo-expert-judge")
    assert len(pd.read_parquet(empty / "debates.parquet")) == 20
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        export_store(sqlite_store, tmp_path / "file", "jsonl")


def test_empty_store_exports_headers_only(sqlite_store, tmp_path) -> None:
    out = export_store(sqlite_store, tmp_path / "e", "csv").out_dir
    for table in COLUMNS:
        frame = pd.read_csv(out / f"{table}.csv")
        assert list(frame.columns) == COLUMNS[table] and frame.empty
