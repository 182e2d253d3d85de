"""The JSONL question format and the bundled sample data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from debate.errors import DatasetError
from debate.questions import (
    Question,
    questions_to_jsonl,
    read_questions_jsonl,
    sample_questions,
)
from debate.quotes import verify_quote

GOOD = {
    "id": "q1",
    "question": "Which colour?",
    "answers": ["Red", "Blue"],
    "correct_index": 1,
    "source": "The door was painted blue.",
}


def write_lines(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "qs.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_sample_data_set_is_valid_and_as_documented() -> None:
    qs = sample_questions()
    assert len(qs) == 20
    assert len({q.id for q in qs}) == 20
    for q in qs:
        assert len(q.answers) == 2, q.id
        assert q.source and q.source_title and q.metadata.get("topic"), q.id
        assert 80 <= len(q.source.split()) <= 200, q.id
    # the correct answer is not always in the same position
    assert sum(q.correct_index for q in qs) == 10


def test_read_valid_file_with_shared_document(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        {"document": {"id": "d1", "text": "A long shared story.", "title": "Story"}},
        GOOD,
        "",
        {**GOOD, "id": 2, "source": None, "document_id": "d1", "metadata": {"k": 1}},
    )
    q1, q2 = read_questions_jsonl(path)
    assert q1 == Question("q1", "Which colour?", ("Red", "Blue"), 1, "The door was painted blue.")
    assert q2.id == "2" and q2.source == "A long shared story." and q2.source_title == "Story"
    assert q2.metadata == {"k": 1}
    # written back out, the questions read the same
    again = write_lines(tmp_path, *questions_to_jsonl([q1, q2]))
    assert read_questions_jsonl(again) == [q1, q2]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "(line): not valid JSON"),
        ("[1, 2]", "(line): expected a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "id"}, "id: missing"),
        ({**GOOD, "id": ""}, "id: empty"),
        ({**GOOD, "id": [1]}, "id: expected a string or an integer"),
        ({**GOOD, "question": "  "}, "question: empty"),
        ({**GOOD, "question": 3}, "question: expected a string"),
        ({k: v for k, v in GOOD.items() if k != "answers"}, "answers: missing"),
        ({**GOOD, "answers": "Red"}, "answers: expected a list"),
        ({**GOOD, "answers": ["Red"]}, "answers: need at least two answers, got 1"),
        ({**GOOD, "answers": ["Red", ""]}, "answers[1]: must be a non-empty string"),
        ({**GOOD, "answers": ["Red", " red"]}, "answers: two answers are the same"),
        ({k: v for k, v in GOOD.items() if k != "correct_index"}, "correct_index: missing"),
        ({**GOOD, "correct_index": 2}, "correct_index: 2 is out of range for 2 answers"),
        ({**GOOD, "correct_index": "1"}, "correct_index: expected an integer"),
        ({**GOOD, "correct_index": True}, "correct_index: expected an integer"),
        ({**GOOD, "source": 5}, "source: expected a string"),
        ({**GOOD, "source": " "}, "source: empty"),
        ({**GOOD, "source_title": []}, "source_title: expected a string"),
        ({**GOOD, "metadata": [1]}, "metadata: expected an object"),
        ({**GOOD, "corect_index": 0}, "corect_index: unknown field"),
        ({**GOOD, "source": None, "document_id": "nope"}, "document_id: no document 'nope'"),
        ({**GOOD, "document_id": "d1"}, "document_id: give either source or document_id"),
        ({"document": {"text": "x"}}, "document.id: missing"),
        ({"document": {"id": "d", "text": ""}}, "document.text: empty"),
        ({"document": {"id": "d", "txt": "x"}}, "document.txt: unknown field"),
        ({"document": "text"}, "document: expected an object"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path: Path, line: object, expected: str) -> None:
    path = write_lines(tmp_path, {"document": {"id": "d1", "text": "Shared."}}, GOOD, "", line)
    with pytest.raises(DatasetError) as info:
        read_questions_jsonl(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: "), message
    assert expected in message
    assert "\n" not in message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = write_lines(tmp_path, GOOD, GOOD)
    with pytest.raises(DatasetError, match=r":2: id: duplicate id 'q1'"):
        read_questions_jsonl(path)


def test_missing_file_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_questions_jsonl(tmp_path / "absent.jsonl")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"id": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_questions_jsonl(bad)


def test_sample_passages_hold_the_words_a_debater_would_quote() -> None:
    # each passage supports its correct answer with text an honest debater can quote
    evidence = {
        "lighthouse-1": "no ship came through the narrow channel any more",
        "orchard-1": "planted twelve cherry trees against the wall",
        "bakery-1": "without the twenty sacks of flour it carried",
        "owl-1": "it is the ears, not the eyes, that guide the strike",
    }
    by_id = {q.id: q for q in sample_questions()}
    for qid, quote in evidence.items():
        assert verify_quote(quote, by_id[qid].source).verified, qid
