"""TruthfulQA (Lin et al. 2022), multiple-choice task `mc1_targets` (one true answer).

Reads the official `mc_task.json` (an array of {question, mc1_targets: {answer: 0|1}}),
or the Hugging Face layout (mc1_targets: {choices: [...], labels: [...]}) in .jsonl,
.json or .parquet files, or from the hub (`truthfulqa/truthful_qa`, config
`multiple_choice`, split `validation`). Closed questions: no hidden source.
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
    require_text,
    source_records,
)
from debate.errors import DatasetError
from debate.questions import Question

FIELD = "mc1_targets"


class TruthfulQaSettings(SourceSettings):
    distractor: ClosedRule = "first"


def mc1_options(targets: Any, where: str) -> tuple[list[str], list[int]]:
    """Options and 0/1 labels from either layout of `mc1_targets`."""
    if isinstance(targets, dict) and "choices" in targets:
        choices, labels = targets.get("choices"), targets.get("labels")
        if not isinstance(choices, list) or not choices:
            raise DatasetError(f"{where}: {FIELD}.choices: empty answer list")
        if not isinstance(labels, list) or len(labels) != len(choices):
            raise DatasetError(f"{where}: {FIELD}.labels: need one 0/1 label per choice")
        return answer_texts(choices, where, f"{FIELD}.choices"), labels
    if isinstance(targets, dict):
        if not targets:
            raise DatasetError(f"{where}: {FIELD}: empty answer list")
        return answer_texts(list(targets), where, FIELD), list(targets.values())
    raise DatasetError(f"{where}: {FIELD}: expected an object of answers and labels")


def load_truthfulqa(settings: TruthfulQaSettings, base_dir: Path) -> list[Question]:
    rows = source_records(
        settings, base_dir, default_hub=("truthfulqa/truthful_qa", "multiple_choice", "validation")
    )
    out: list[Question] = []
    for n, (where, row) in enumerate(rows, 1):
        question = require_text(row, "question", where)
        options, labels = mc1_options(require(row, FIELD, where), where)
        for i, label in enumerate(labels):
            if label not in (0, 1) or isinstance(label, bool):
                raise DatasetError(f"{where}: {FIELD}[{i}]: label {label!r} is not 0 or 1")
        true = [i for i, label in enumerate(labels) if label == 1]
        if len(true) != 1:
            raise DatasetError(
                f"{where}: {FIELD}: expected exactly one true answer (label 1), got {len(true)}"
            )
        if len(options) < 2:
            raise DatasetError(f"{where}: {FIELD}: need at least two answers, got {len(options)}")
        made = two_answer_question(
            qid=f"truthfulqa-{n}",
            question=question,
            options=options,
            correct=true[0],
            labels=list(range(len(options))),
            rule=settings.distractor,
            seed=settings.seed,
            dataset="truthfulqa",
            where=where,
            metadata={"category": row.get("category"), "type": row.get("type")},
        )
        if made is None:
            raise DatasetError(f"{where}: {FIELD}: every answer repeats the true one")
        out.append(made)
    return out


LOADER = Loader(
    "truthfulqa",
    TruthfulQaSettings,
    load_truthfulqa,
    "TruthfulQA mc1_targets (official mc_task.json, or the hub layout); no hidden source",
)
