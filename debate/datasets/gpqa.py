"""GPQA (Rein et al. 2023): graduate-level science questions, official CSV layout
(`Question`, `Correct Answer`, `Incorrect Answer 1`..`3`, `Explanation`, `Record ID`, ...).

mode: closed      no hidden source (the judge and debaters see only question and answers)
      extractive  the expert's `Explanation` is the hidden source the debaters may quote,
                  as in Kenton et al. 2024
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from debate.datasets import Loader
from debate.datasets.distractors import ClosedRule, two_answer_question
from debate.datasets.records import SourceSettings, require_text, source_records
from debate.errors import DatasetError
from debate.questions import Question

INCORRECT = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


class GpqaSettings(SourceSettings):
    distractor: ClosedRule = "first"
    mode: Literal["closed", "extractive"] = "closed"


def load_gpqa(settings: GpqaSettings, base_dir: Path) -> list[Question]:
    rows = source_records(
        settings, base_dir, default_hub=("Idavidrein/gpqa", "gpqa_main", "train"), csv_header=True
    )
    out: list[Question] = []
    seen: dict[str, str] = {}
    for n, (where, row) in enumerate(rows, 1):
        question = require_text(row, "Question", where)
        correct = require_text(row, "Correct Answer", where)
        incorrect = [require_text(row, INCORRECT[0], where)]
        incorrect += [require_text(row, name, where) for name in INCORRECT[1:] if name in row]
        explanation = row.get("Explanation")
        explanation = explanation.strip() if isinstance(explanation, str) else ""
        if settings.mode == "extractive" and not explanation:
            raise DatasetError(f"{where}: Explanation: empty (needed by mode: extractive)")
        qid = str(row.get("Record ID") or "").strip() or f"gpqa-{n}"
        if qid in seen:
            raise DatasetError(f"{where}: Record ID: {qid!r} repeats the one at {seen[qid]}")
        seen[qid] = where
        made = two_answer_question(
            qid=qid,
            question=question,
            options=[correct, *incorrect],
            correct=0,
            labels=["Correct Answer", *INCORRECT[: len(incorrect)]],
            rule=settings.distractor,
            seed=settings.seed,
            dataset="gpqa",
            where=where,
            source=explanation if settings.mode == "extractive" else None,
            source_title="Expert explanation" if settings.mode == "extractive" else None,
            metadata={
                "mode": settings.mode,
                "domain": row.get("High-level domain"),
                "subdomain": row.get("Subdomain"),
            },
        )
        if made is None:
            raise DatasetError(f"{where}: Incorrect Answer 1: repeats the correct answer")
        out.append(made)
    return out


LOADER = Loader(
    "gpqa",
    GpqaSettings,
    load_gpqa,
    "GPQA graduate-level science (official CSV); closed, or extractive with the expert "
    "explanation as the hidden source",
)
