"""MMLU (Hendrycks et al. 2021): closed four-option questions, no hidden source.

Reads the official headerless CSV files (`question,A,B,C,D,answer`, one subject a file,
named like `abstract_algebra_test.csv`; give one file or the folder holding them), or the
Hugging Face layout (`question`, `subject`, `choices`, `answer` as 0-3) in .jsonl/.parquet
files or from the hub (`cais/mmlu`, config `all`, split `test`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from debate.datasets import Loader, resolve_path
from debate.datasets.distractors import ClosedRule, two_answer_question
from debate.datasets.records import (
    SourceSettings,
    answer_texts,
    records,
    require,
    require_list,
    require_text,
    source_records,
)
from debate.errors import DatasetError
from debate.questions import Question

LETTERS = "ABCDEFGHIJ"
_SPLIT_SUFFIX = re.compile(r"_(test|dev|val|validation|train|auxiliary_train)$")


class MmluSettings(SourceSettings):
    distractor: ClosedRule = "first"
    subjects: list[str] | None = None


def subject_of(path: Path) -> str:
    return _SPLIT_SUFFIX.sub("", path.stem)


def _answer_index(value: Any, n_options: int, where: str) -> int:
    if isinstance(value, str) and value.strip().upper() in LETTERS[:n_options]:
        return LETTERS.index(value.strip().upper())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n_options:
        return value
    allowed = ", ".join(LETTERS[:n_options])
    raise DatasetError(
        f"{where}: answer: {value!r} is out of range; expected one of {allowed} or 0-{n_options - 1}"
    )


# (where, subject, question, options, answer) for one question, before any checks but shape.
Item = tuple[str, str, Any, list, Any]


def _csv_items(path: Path) -> Iterator[Item]:
    subject = subject_of(path)
    for where, row in records(path, csv_header=False):
        if not isinstance(row, list) or len(row) != 6:
            got = len(row) if isinstance(row, list) else "a record"
            raise DatasetError(
                f"{where}: row: expected 6 columns (question, A, B, C, D, answer), got {got}"
            )
        yield where, subject, row[0], row[1:5], row[5]


def _layout_items(rows: Iterator[tuple[str, Any]], default_subject: str) -> Iterator[Item]:
    for where, row in rows:
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: row: expected a record with question, choices, answer")
        subject = str(row.get("subject") or default_subject)
        question = require(row, "question", where)
        choices = require_list(row, "choices", where)
        yield where, subject, question, choices, require(row, "answer", where)


def mmlu_items(settings: MmluSettings, base_dir: Path) -> Iterator[Item]:
    if not settings.path:
        yield from _layout_items(
            source_records(settings, base_dir, default_hub=("cais/mmlu", "all", "test")), "mmlu"
        )
        return
    path = resolve_path(settings.path, base_dir)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"{path}: no .csv files in this folder")
    for file in files:
        if file.suffix.lower() == ".csv":
            yield from _csv_items(file)
        else:
            yield from _layout_items(records(file), subject_of(file))


def load_mmlu(settings: MmluSettings, base_dir: Path) -> list[Question]:
    wanted = set(settings.subjects) if settings.subjects else None
    out: list[Question] = []
    counters: dict[str, int] = {}
    for where, subject, question, choices, answer in mmlu_items(settings, base_dir):
        text = require_text({"question": question}, "question", where)
        if len(choices) < 2:
            raise DatasetError(f"{where}: choices: need at least two options, got {len(choices)}")
        options = answer_texts(choices, where, "choices")
        correct = _answer_index(answer, len(options), where)
        counters[subject] = counters.get(subject, 0) + 1
        if wanted is not None and subject not in wanted:
            continue
        qid = f"mmlu-{subject}-{counters[subject]}"
        made = two_answer_question(
            qid=qid,
            question=text,
            options=options,
            correct=correct,
            labels=list(LETTERS[: len(options)]),
            rule=settings.distractor,
            seed=settings.seed,
            dataset="mmlu",
            where=where,
            metadata={"subject": subject},
        )
        if made is None:
            raise DatasetError(f"{where}: choices: every option repeats the correct answer")
        out.append(made)
    if wanted is not None:
        missing = wanted - set(counters)
        if missing:
            raise DatasetError(
                f"dataset.subjects: no questions for {', '.join(sorted(missing))}; "
                f"the files hold {', '.join(sorted(counters)) or 'none'}"
            )
    return out


LOADER = Loader(
    "mmlu",
    MmluSettings,
    load_mmlu,
    "MMLU closed multiple-choice (official headerless CSV, or the hub layout); no hidden source",
)
