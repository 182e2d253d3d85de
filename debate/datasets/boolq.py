"""BoolQ (Clark et al. 2019): yes/no questions about a Wikipedia passage.

Official JSONL ({question, title, answer: true|false, passage}); the SuperGLUE layout
(`label` instead of `answer`) and the hub (`google/boolq`, split `validation`) work too.
The passage is the hidden source; the answers are "Yes" and "No", in that order, so the
distractor is always the opposite answer.
"""

from __future__ import annotations

from pathlib import Path

from debate.datasets import Loader
from debate.datasets.records import SourceSettings, require_text, source_records
from debate.errors import DatasetError
from debate.questions import Question

ANSWERS = ("Yes", "No")


class BoolqSettings(SourceSettings):
    pass


def as_question(text: str) -> str:
    """BoolQ questions are lower-case without a question mark; make them read as questions."""
    text = text[0].upper() + text[1:]
    return text if text.endswith("?") else text + "?"


def load_boolq(settings: BoolqSettings, base_dir: Path) -> list[Question]:
    rows = source_records(settings, base_dir, default_hub=("google/boolq", None, "validation"))
    out: list[Question] = []
    for n, (where, row) in enumerate(rows, 1):
        question = require_text(row, "question", where)
        passage = require_text(row, "passage", where)
        key = "answer" if "answer" in row else "label"
        answer = row.get(key)
        if answer is None:
            raise DatasetError(f"{where}: answer: missing")
        if answer not in (True, False, 0, 1):
            raise DatasetError(f"{where}: {key}: {answer!r} is not true/false")
        title = row.get("title")
        qid = str(row.get("idx")) if row.get("idx") is not None else str(n)
        out.append(
            Question(
                id=f"boolq-{qid}",
                question=as_question(question),
                answers=ANSWERS,
                correct_index=0 if bool(answer) else 1,
                source=passage,
                source_title=str(title) if title else None,
                dataset="boolq",
                metadata={"distractor_rule": "opposite", "original_question": question,
                          "where": where},
            )
        )
    return out


LOADER = Loader(
    "boolq",
    BoolqSettings,
    load_boolq,
    'BoolQ yes/no questions (official JSONL); passage hidden, answers "Yes" and "No"',
)
