"""The question record every data set turns into, and the project's JSONL question format.

JSONL format
------------
A UTF-8 text file, one JSON object per line; blank lines are skipped. A question line:

    {"id": "lighthouse-1",
     "question": "Why did the keeper stop lighting the lamp?",
     "answers": ["The ships had stopped using the channel.", "He had lost his sight."],
     "correct_index": 0,
     "source": "The keeper climbed the tower every evening ...",
     "source_title": "The Last Lamp",
     "metadata": {"topic": "fiction", "difficulty": "easy"}}

Fields:
  id             required; a non-empty string (or an integer), unique within the file.
  question       required; a non-empty string.
  answers        required; a list of at least two distinct non-empty strings. The debate
                 protocols take exactly two; other loaders can pick a distractor.
  correct_index  required; an integer index into `answers` (0-based).
  source         optional; the hidden source text that debaters see and quote, and that
                 quotes are verified against. Without a source (and without a
                 `document_id`) quotes cannot be verified.
  document_id    optional, instead of `source`: the id of a document line earlier in the
                 file, so that many questions can share one long text.
  source_title   optional; a string shown with the source.
  dataset        optional; the data set's name (default "jsonl").
  metadata       optional; an object of anything else (topic, difficulty, ...), kept with
                 the question and exported with the debates.

A document line gives a shared source text once:

    {"document": {"id": "story-7", "text": "...", "title": "..."}}

Any other field is refused, so a misspelt field name is caught. A bad line raises
DatasetError with a one-line message `FILE:LINE: FIELD: PROBLEM`.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debate.errors import DatasetError
from debate.jsonl import iter_json_lines

QUESTION_FIELDS = (
    "id",
    "question",
    "answers",
    "correct_index",
    "source",
    "document_id",
    "source_title",
    "dataset",
    "metadata",
)
DOCUMENT_FIELDS = ("id", "text", "title")


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


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _require(
    obj: dict, key: str, kind: type | tuple[type, ...], where: str, prefix: str = ""
) -> Any:
    if key not in obj or obj[key] is None:
        raise DatasetError(f"{where}: {prefix}{key}: missing")
    return _check_type(obj[key], prefix + key, kind, where)


def _check_type(value: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise DatasetError(
            f"{where}: {key}: expected {_type_name(kind)}, got {type(value).__name__}"
        )
    return value


def _optional_str(obj: dict, key: str, where: str) -> str | None:
    value = obj.get(key)
    return None if value is None else _check_type(value, key, str, where)


def _refuse_unknown(obj: dict, known: tuple[str, ...], where: str, prefix: str = "") -> None:
    for key in obj:
        if key not in known:
            raise DatasetError(
                f"{where}: {prefix}{key}: unknown field (known: {', '.join(known)})"
            )


def parse_question_line(obj: Any, where: str, documents: dict[str, dict]) -> Question:
    """Validate one decoded JSONL object into a Question; errors name `where` and the field."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: (line): expected a JSON object, got {type(obj).__name__}")
    _refuse_unknown(obj, QUESTION_FIELDS, where)
    qid = _require(obj, "id", (str, int), where)
    if str(qid).strip() == "":
        raise DatasetError(f"{where}: id: empty")
    text = _require(obj, "question", str, where)
    if not text.strip():
        raise DatasetError(f"{where}: question: empty")
    answers = _require(obj, "answers", list, where)
    if len(answers) < 2:
        raise DatasetError(f"{where}: answers: need at least two answers, got {len(answers)}")
    for i, a in enumerate(answers):
        if not isinstance(a, str) or not a.strip():
            raise DatasetError(f"{where}: answers[{i}]: must be a non-empty string")
    if len({a.strip().casefold() for a in answers}) != len(answers):
        raise DatasetError(f"{where}: answers: two answers are the same")
    correct = _require(obj, "correct_index", int, where)
    if not 0 <= correct < len(answers):
        raise DatasetError(
            f"{where}: correct_index: {correct} is out of range for {len(answers)} answers"
        )
    source = _optional_str(obj, "source", where)
    title = _optional_str(obj, "source_title", where)
    doc_id = obj.get("document_id")
    if doc_id is not None:
        _check_type(doc_id, "document_id", (str, int), where)
        if source is not None:
            raise DatasetError(f"{where}: document_id: give either source or document_id")
        doc = documents.get(str(doc_id))
        if doc is None:
            raise DatasetError(f"{where}: document_id: no document {doc_id!r} defined above")
        source, title = doc["text"], title or doc.get("title")
    if source is not None and not source.strip():
        raise DatasetError(f"{where}: source: empty (leave it out when there is none)")
    dataset = _optional_str(obj, "dataset", where) or "jsonl"
    metadata = obj.get("metadata")
    metadata = {} if metadata is None else _check_type(metadata, "metadata", dict, where)
    return Question(
        id=str(qid),
        question=text,
        answers=tuple(answers),
        correct_index=correct,
        source=source,
        source_title=title,
        dataset=dataset,
        metadata=metadata,
    )


def parse_document_line(obj: dict, where: str) -> dict:
    doc = obj["document"]
    if len(obj) != 1:
        extra = next(k for k in obj if k != "document")
        raise DatasetError(f"{where}: {extra}: unknown field on a document line")
    if not isinstance(doc, dict):
        raise DatasetError(f"{where}: document: expected an object")
    _refuse_unknown(doc, DOCUMENT_FIELDS, where, "document.")
    doc_id = _require(doc, "id", (str, int), where, "document.")
    text = _require(doc, "text", str, where, "document.")
    if not text.strip():
        raise DatasetError(f"{where}: document.text: empty")
    title = doc.get("title")
    if title is not None and not isinstance(title, str):
        raise DatasetError(f"{where}: document.title: expected a string")
    return {"id": str(doc_id), "text": text, "title": title}


def read_questions_jsonl(path: str | Path) -> list[Question]:
    """Read the whole file; any bad line raises DatasetError naming `file:line: field`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    questions: list[Question] = []
    documents: dict[str, dict] = {}
    seen: set[str] = set()
    for where, obj in iter_json_lines(path, DatasetError, field="(line): "):
        if isinstance(obj, dict) and "document" in obj:
            doc = parse_document_line(obj, where)
            if doc["id"] in documents:
                raise DatasetError(f"{where}: document.id: duplicate id {doc['id']!r}")
            documents[doc["id"]] = doc
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
    """The small data set bundled for `debate demo` and the tests: 20 two-answer questions,
    each with a short hidden passage written for this project."""
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


def _key_text(text: object) -> str:
    return " ".join(unicodedata.normalize("NFKC", str(text)).split())


def question_content_key(text: str, answers: Sequence[object], document_id: int | None) -> str:
    """A question's identity across the whole store: its text, its answers (as a set) and
    its source document (documents are stored once per text, so the id names the text).
    Whitespace runs and Unicode compatibility forms do not make two questions differ."""
    payload = json.dumps(
        [_key_text(text), sorted(_key_text(a) for a in answers), document_id],
        ensure_ascii=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("ascii")).hexdigest()
