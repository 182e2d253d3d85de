"""The NYU 2023 human debate data (Michael et al. 2023) as a question source.

Reads the room files (`debates/NAME.json`; give the folder holding `debates/`, the
`debates/` folder itself, or one room file). Each room's setup gives a QuALITY story as a
Penn-Treebank token list, turned back into text with `nyu_text.detokenize`, the question,
its two answers and the correct index. Many rooms share a question (debate, consultancy,
AI and human settings); each question is kept once, from the first room by name, with
every room it came from recorded. Stories are stored once however many questions use
them. The story is the hidden source. An offline, real, long-context data set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from debate.datasets import DatasetSettings, Loader, resolve_path
from debate.datasets.nyu_text import detokenize
from debate.errors import DatasetError
from debate.questions import Question


class NyuStoriesSettings(DatasetSettings):
    pass


def room_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    folder = path / "debates" if (path / "debates").is_dir() else path
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DatasetError(f"{folder}: no room files (*.json) in this folder")
    return files


def _read_room(file: Path) -> dict[str, Any]:
    try:
        room = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{file}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(room, dict) or not isinstance(room.get("setup"), dict):
        raise DatasetError(f"{file}: setup: missing")
    return room["setup"]


def room_question(file: Path) -> tuple[tuple, dict[str, Any]]:
    """The dedup key and the checked fields of one room."""
    setup = _read_room(file)
    where = str(file)
    material = setup.get("sourceMaterial")
    if not isinstance(material, dict) or len(material) != 1:
        raise DatasetError(f"{where}: setup.sourceMaterial: missing")
    kind, story = next(iter(material.items()))
    tokens = story.get("contents") if isinstance(story, dict) else None
    if not isinstance(tokens, list) or not tokens:
        raise DatasetError(f"{where}: setup.sourceMaterial.{kind}.contents: empty story")
    if not all(isinstance(t, str) for t in tokens):
        raise DatasetError(f"{where}: setup.sourceMaterial.{kind}.contents: expected tokens")
    question = setup.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: setup.question: missing")
    answers = setup.get("answers")
    if not isinstance(answers, list) or not answers:
        raise DatasetError(f"{where}: setup.answers: empty answer list")
    if len(answers) != 2 or not all(isinstance(a, str) and a.strip() for a in answers):
        raise DatasetError(f"{where}: setup.answers: expected two non-empty answers")
    correct = setup.get("correctAnswerIndex")
    if not isinstance(correct, int) or isinstance(correct, bool):
        raise DatasetError(f"{where}: setup.correctAnswerIndex: missing")
    if not 0 <= correct < 2:
        raise DatasetError(f"{where}: setup.correctAnswerIndex: {correct} is out of range 0..1")
    article = str(story.get("articleId") or story.get("title") or "")
    answers = [a.strip() for a in answers]
    key = (article, " ".join(question.split()), frozenset(answers))
    fields = {
        "article_id": article,
        "title": story.get("title"),
        "tokens": tokens,
        "question": question.strip(),
        "answers": answers,
        "correct": correct,
        "room": file.stem,
    }
    return key, fields


def load_nyu_stories(settings: NyuStoriesSettings, base_dir: Path) -> list[Question]:
    files = room_files(resolve_path(settings.path, base_dir))
    firsts: dict[tuple, dict[str, Any]] = {}
    rooms: dict[tuple, list[str]] = {}
    disagree: set[tuple] = set()
    for file in files:
        key, fields = room_question(file)
        if key in firsts:
            first = firsts[key]
            if first["answers"][first["correct"]] != fields["answers"][fields["correct"]]:
                disagree.add(key)
        else:
            firsts[key] = fields
        rooms.setdefault(key, []).append(fields["room"])
    stories: dict[tuple[str, ...], str] = {}
    out: list[Question] = []
    for key, f in firsts.items():
        tokens = tuple(f["tokens"])
        if tokens not in stories:
            stories[tokens] = detokenize(f["tokens"])[0]
        meta: dict[str, Any] = {
            "article_id": f["article_id"],
            "rooms": rooms[key],
            "distractor_rule": "the room's other answer",
        }
        if key in disagree:
            meta["rooms_disagree_on_correct_answer"] = True
        out.append(
            Question(
                id=f"nyu-{f['room']}",
                question=f["question"],
                answers=tuple(f["answers"]),
                correct_index=f["correct"],
                source=stories[tokens],
                source_title=str(f["title"]) if f["title"] else None,
                dataset="nyu_stories",
                metadata=meta,
            )
        )
    return out


LOADER = Loader(
    "nyu_stories",
    NyuStoriesSettings,
    load_nyu_stories,
    "questions and QuALITY stories from the NYU 2023 debate rooms (deduplicated); "
    "story hidden from the judge",
)
