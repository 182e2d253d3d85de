"""Bad data set files: one line `file:line: field: problem`, and nothing stored."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from debate.config import parse_config
from debate.datasets import load_questions, validate_dataset_settings
from debate.errors import DatasetError
from debate.run import run_experiment
from debate.store.models import Document, Experiment
from debate.store.models import Question as QuestionRow

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


def load(name: str, path: Path, **cfg):
    return load_questions(validate_dataset_settings({"name": name, "path": str(path), **cfg}))


def broken_quality(tmp_path: Path, edit) -> Path:
    """The QuALITY fixture with its second article's first question edited."""
    lines = (FIXTURES / "quality.jsonl").read_text().splitlines()
    article = json.loads(lines[1])
    edit(article["questions"][0])
    lines[1] = json.dumps(article)
    path = tmp_path / "quality.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def expect(path: Path, field: str, problem: str, line: int | str, call) -> None:
    with pytest.raises(DatasetError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg
    assert re.fullmatch(rf"{re.escape(str(path))}:{line}: {re.escape(field)}: .*{problem}.*", msg), msg


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (lambda q: q.pop("gold_label"), "questions[0].gold_label", "missing"),
        (lambda q: q.update(gold_label=5), "questions[0].gold_label", "out of range"),
        (lambda q: q.update(options=[]), "questions[0].options", "empty"),
        (lambda q: q.update(question="  "), "questions[0].question", "empty"),
        (lambda q: q["validation"][1].update(untimed_best_distractor=0),
         "questions[0].validation[1].untimed_best_distractor", "out of range"),
        (lambda q: q["speed_validation"][0].pop("speed_answer"),
         "questions[0].speed_validation[0].speed_answer", "missing"),
    ],
)
def test_bad_quality_line(tmp_path: Path, edit, field, problem):
    path = broken_quality(tmp_path, edit)
    expect(path, field, problem, 2, lambda: load("quality", path))


def test_quality_bad_json_names_the_line(tmp_path: Path):
    path = tmp_path / "quality.jsonl"
    path.write_text((FIXTURES / "quality.jsonl").read_text() + "{not json\n")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))}:4: not valid JSON"):
        load("quality", path)


def write_gpqa(tmp_path: Path, edit) -> Path:
    with (FIXTURES / "gpqa.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    edit(rows)
    path = tmp_path / "gpqa.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_gpqa_empty_answer_names_the_starting_line(tmp_path: Path):
    # Row 1's explanation spans two lines, so row 2 starts on line 4 of the file.
    path = write_gpqa(tmp_path, lambda rows: rows[1].update({"Correct Answer": ""}))
    expect(path, "Correct Answer", "empty", 4, lambda: load("gpqa", path))


def test_gpqa_missing_column(tmp_path: Path):
    path = write_gpqa(tmp_path, lambda rows: [r.pop("Incorrect Answer 1") for r in rows])
    expect(path, "Incorrect Answer 1", "missing", 2, lambda: load("gpqa", path))


def test_gpqa_extractive_needs_an_explanation(tmp_path: Path):
    path = write_gpqa(tmp_path, lambda rows: rows[2].update({"Explanation": " "}))
    load("gpqa", path)  # closed mode does not need it
    expect(path, "Explanation", "empty", 5, lambda: load("gpqa", path, mode="extractive"))


def test_mmlu_answer_out_of_range(tmp_path: Path):
    folder = tmp_path / "mmlu"
    shutil.copytree(FIXTURES / "mmlu", folder)
    path = folder / "college_physics_test.csv"
    text = path.read_text().splitlines()
    text[1] = text[1][:-1] + "E"
    path.write_text("\n".join(text) + "\n")
    expect(path, "answer", "out of range", 2, lambda: load("mmlu", folder))


def test_mmlu_short_row(tmp_path: Path):
    path = tmp_path / "virology_test.csv"
    path.write_text("What is a virion?,A particle,A cell,B\n")
    expect(path, "row", "expected 6 columns", 1, lambda: load("mmlu", path))


def test_truthfulqa_empty_answer_list_names_the_item_line(tmp_path: Path):
    items = json.loads((FIXTURES / "truthfulqa_mc_task.json").read_text())
    items[1]["mc1_targets"] = {}
    path = tmp_path / "mc_task.json"
    path.write_text(json.dumps(items, indent=2))
    starts = [i for i, text in enumerate(json.dumps(items, indent=2).splitlines()) if text == "  {"]
    line = starts[1] + 1  # the second item's opening brace
    expect(path, "mc1_targets", "empty answer list", line, lambda: load("truthfulqa", path))


def test_truthfulqa_needs_exactly_one_true_answer(tmp_path: Path):
    path = tmp_path / "tqa.jsonl"
    row = {"question": "Q?", "mc1_targets": {"choices": ["a", "b"], "labels": [1, 1]}}
    path.write_text(json.dumps(row) + "\n")
    expect(path, "mc1_targets", "exactly one true answer", 1, lambda: load("truthfulqa", path))


def test_boolq_missing_passage(tmp_path: Path):
    lines = (FIXTURES / "boolq.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    del row["passage"]
    lines[2] = json.dumps(row)
    path = tmp_path / "boolq.jsonl"
    path.write_text("\n".join(lines) + "\n")
    expect(path, "passage", "missing", 3, lambda: load("boolq", path))


def test_arc_answer_key_out_of_range(tmp_path: Path):
    lines = (FIXTURES / "arc.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["answerKey"] = "E"
    path = tmp_path / "arc.jsonl"
    path.write_text("\n".join([lines[1], json.dumps(row)]) + "\n")
    expect(path, "answerKey", "out of range", 2, lambda: load("arc", path))


def test_nyu_room_with_empty_answer_list(tmp_path: Path):
    folder = tmp_path / "debates"
    shutil.copytree(FIXTURES / "nyu_rooms" / "debates", folder)
    room_path = folder / "keepers-daughter-3.json"
    room = json.loads(room_path.read_text())
    room["setup"]["answers"] = []
    room_path.write_text(json.dumps(room))
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(room_path))}: setup.answers: empty"):
        load("nyu_stories", tmp_path)


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"nope\.jsonl: no such file"):
        load("arc", tmp_path / "nope.jsonl")


def test_a_bad_line_late_in_the_file_stores_nothing(store, tmp_path: Path):
    """The good articles before the bad one are not half-stored."""
    lines = (FIXTURES / "quality.jsonl").read_text().splitlines()
    article = json.loads(lines[2])
    article["questions"][0]["gold_label"] = 9
    path = tmp_path / "quality.jsonl"
    path.write_text("\n".join([*lines[:2], json.dumps(article)]) + "\n")
    cfg = parse_config(
        {
            "name": "bad-quality",
            "dataset": {"name": "quality", "path": "quality.jsonl", "gutenberg_only": False},
            "protocol": {"name": "debate", "rounds": 1},
            "debater": {"type": "scripted"},
        }
    )
    with pytest.raises(DatasetError, match=r"quality\.jsonl:3: questions\[0\]\.gold_label"):
        run_experiment(store, cfg, tmp_path, show_progress=False)
    with store.session() as s:
        for table in (Experiment, QuestionRow, Document):
            assert s.scalar(select(func.count()).select_from(table)) == 0
