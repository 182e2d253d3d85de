"""ARC (Clark et al. 2018): grade-school science multiple choice, no hidden source.

Official JSONL ({id, question: {stem, choices: [{text, label}]}, answerKey}) or the hub
layout ({id, question, choices: {text: [...], label: [...]}, answerKey}); hub default
`allenai/ai2_arc`, config `ARC-Challenge`, split `test`. Labels are letters or digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from debate.datasets import Loader
from debate.datasets.distractors import ClosedRule, two_answer_question
from debate.datasets.records import (
    SourceSettings,
    answer_texts,
    require,
    require_list,
    require_text,
    source_records,
)
from debate.errors import DatasetError
from debate.questions import Question


class ArcSettings(SourceSettings):
    distractor: ClosedRule = "first"


def stem_and_choices(row: Any, where: str) -> tuple[str, list[str], list[str]]:
    """The question text, option texts and option labels from either layout."""
    question = require(row, "question", where)
    if isinstance(question, dict):  # official: question.stem, question.choices[]
        stem = require_text(question, "stem", where, "question.")
        choices = require_list(question, "choices", where, "question.", 2)
        texts = [require(c, "text", where, f"question.choices[{i}].") for i, c in enumerate(choices)]
        labels = [str(require(c, "label", where, f"question.choices[{i}].")) for i, c in enumerate(choices)]
        return stem, answer_texts(texts, where, "question.choices"), labels
    stem = require_text(row, "question", where)
    choices = require(row, "choices", where)
    texts = require_list(choices, "text", where, "choices.", 2)
    labels = [str(x) for x in require_list(choices, "label", where, "choices.", 2)]
    if len(labels) != len(texts):
        raise DatasetError(f"{where}: choices.label: need one label per choice")
    return stem, answer_texts(texts, where, "choices.text"), labels


def load_arc(settings: ArcSettings, base_dir: Path) -> list[Question]:
    rows = source_records(settings, base_dir, default_hub=("allenai/ai2_arc", "ARC-Challenge", "test"))
    out: list[Question] = []
    seen: dict[str, str] = {}
    for n, (where, row) in enumerate(rows, 1):
        stem, options, labels = stem_and_choices(row, where)
        key = str(require(row, "answerKey", where)).strip()
        if key not in labels:
            raise DatasetError(
                f"{where}: answerKey: {key!r} is out of range; the choices are {', '.join(labels)}"
            )
        qid = str(row.get("id") or f"arc-{n}")
        if qid in seen:
            raise DatasetError(f"{where}: id: {qid!r} repeats the one at {seen[qid]}")
        seen[qid] = where
        made = two_answer_question(
            qid=qid,
            question=stem,
            options=options,
            correct=labels.index(key),
            labels=labels,
            rule=settings.distractor,
            seed=settings.seed,
            dataset="arc",
            where=where,
        )
        if made is None:
            raise DatasetError(f"{where}: choices: every option repeats the correct answer")
        out.append(made)
    return out


LOADER = Loader(
    "arc",
    ArcSettings,
    load_arc,
    "ARC science multiple choice (official JSONL, or the hub layout); no hidden source",
)
