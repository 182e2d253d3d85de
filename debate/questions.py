"""The question record every data set turns into, and the project's JSONL format.

JSONL format, one object per line:

    {"id": "q1", "question": "...", "answers": ["...", "..."], "correct_index": 0,
     "source": "hidden source text" | null, "document_id": "doc-key" | null,
     "source_title": "..." | null, "metadata": {...}}

`source` holds the hidden text inline; `document_id` lets several questions share
one text given once in a line of the form {"document": {"id": ..., "text": ..., "title": ...}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from debate.errors import DatasetError


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    correct_index: int
    source: str | None = None
    source_title: str | None = None
    dataset: str = "jsonl"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.answers) < 2:
            raise ValueError("answers: need at least two answers")
        if not 0 <= self.correct_index < len(self.answers):
            raise ValueError(f"correct_index: {self.correct_index} is out of range")


def _require(obj: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise DatasetError(f"{where}: {key}: missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise DatasetError(f"{where}: {key}: expected {getattr(kind, '__name__', kind)}")
    return value


def parse_question_line(obj: Any, where: str, documents: dict[str, dict]) -> Question:
    """Validate one decoded JSONL object into a Question; errors name `where` and the field."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    qid = obj.get("id")
    if qid is None or not isinstance(qid, (str, int)) or str(qid).strip() == "":
        raise DatasetError(f"{where}: id: missing")
    text = _require(obj, "question", str, where)
    if not text.strip():
        raise DatasetError(f"{where}: question: empty")
    answers = _require(obj, "answers", list, where)
    if len(answers) < 2:
        raise DatasetError(f"{where}: answers: need at least two answers, got {len(answers)}")
    for i, a in enumerate(answers):
        if not isinstance(a, str) or not a.strip():
            raise DatasetError(f"{where}: answers[{i}]: must be a non-empty string")
    correct = _require(obj, "correct_index", int, where)
    if not 0 <= correct < len(answers):
        raise DatasetError(
            f"{where}: correct_index: {correct} is out of range for {len(answers)} answers"
        )
    source = obj.get("source")
    title = obj.get("source_title")
    doc_id = obj.get("document_id")
    if source is not None and not isinstance(source, str):
        raise DatasetError(f"{where}: source: expected a string")
    if doc_id is not None:
        if source is not None:
            raise DatasetError(f"{where}: document_id: give either source or document_id")
        doc = documents.get(str(doc_id))
        if doc is None:
            raise DatasetError(f"{where}: document_id: no document {doc_id!r} defined above")
        source, title = doc["text"], doc.get("title")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DatasetError(f"{where}: metadata: expected an object")
    return Question(
        id=str(qid),
        question=text,
        answers=tuple(answers),
        correct_index=correct,
        source=source,
        source_title=title,
        dataset=str(obj.get("dataset", "jsonl")),
        metadata=metadata,
    )


def read_questions_jsonl(path: str | Path) -> list[Question]:
    """Read the whole file; any bad line raises DatasetError naming `file:line: field`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    questions: list[Question] = []
    documents: dict[str, dict] = {}
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from None
            if isinstance(obj, dict) and "document" in obj:
                doc = obj["document"]
                if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
                    raise DatasetError(f"{where}: document.text: missing")
                if "id" not in doc:
                    raise DatasetError(f"{where}: document.id: missing")
                documents[str(doc["id"])] = doc
                continue
            q = parse_question_line(obj, where, documents)
            if q.id in seen:
                raise DatasetError(f"{where}: id: duplicate id {q.id!r}")
            seen.add(q.id)
            questions.append(q)
    return questions


def iter_sample_path() -> Path:
    return Path(__file__).parent / "data" / "sample_questions.jsonl"


def sample_questions() -> list[Question]:
    """The small bundled data set used by `debate demo` and the tests."""
    return read_questions_jsonl(iter_sample_path())


def questions_to_jsonl(questions: list[Question]) -> Iterator[str]:
    for q in questions:
        yield json.dumps(
            {
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "correct_index": q.correct_index,
                "source": q.source,
                "source_title": q.source_title,
                "dataset": q.dataset,
                "metadata": q.metadata,
            },
            ensure_ascii=False,
        )
