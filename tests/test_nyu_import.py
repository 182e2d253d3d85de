"""`debate import nyu`: rooms into the store, idempotent, malformed rooms skipped and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from debate.cli import main
from debate.datasets.nyu_text import detokenize
from debate.importers.nyu import import_nyu
from debate.store.models import (
    Agent,
    Debate,
    Document,
    Feedback,
    Judgment,
    Question,
    Quote,
    Seat,
    Turn,
)

TOKENS = ["The", "cat", "sat", "on", "the", "mat", ".", "\n", "\n", "It", "was", "n't", "happy", "."]
RULES = {
    "fixedOpening": [
        {"JudgeFeedbackRound": {"reportBeliefs": True, "charLimit": 750}},
        {"SimultaneousSpeechesRound": {"charLimit": 750, "quoteLimit": 250, "assignedDebatersOnly": False}},
        {"JudgeFeedbackRound": {"reportBeliefs": True, "charLimit": 750}},
    ],
    "repeatingStructure": [
        {"SequentialSpeechesRound": {"charLimit": 750, "quoteLimit": 250, "assignedDebatersOnly": False}},
        {"JudgeFeedbackRound": {"reportBeliefs": True, "charLimit": 750}},
    ],
    "fixedClosing": None,
}


def _text(text: str) -> dict:
    return {"Text": {"text": text}}


def _quote(begin: int, end: int) -> dict:
    return {"Quote": {"span": [begin, end]}}


def _feedback(dist: list[float], speaker: str, text: str, end: bool = False, ts: int = 1) -> dict:
    content = [_text(text)] if text else []
    return {"distribution": dist, "feedback": {"speaker": speaker, "timestamp": ts, "content": content},
            "endDebate": end}


def _setup(roles: dict, answers: list[str], correct: int) -> dict:
    return {
        "rules": RULES,
        "sourceMaterial": {"QuALITYSourceMaterial": {"articleId": "1", "title": "Cat", "contents": TOKENS}},
        "question": "Was the cat happy?",
        "answers": answers,
        "correctAnswerIndex": correct,
        "roles": roles,
        "offlineJudges": {},
        "creationTime": 1,
    }


def debate_room() -> dict:
    """Shown answers [Yes, No], correct "No"; Alice (A) argues Yes, Bob (B) argues No."""
    return {
        "setup": {**_setup({"Debater A": "Alice", "Debater B": "Bob", "Judge": "Jude"}, ["Yes", "No"], 1),
                  "offlineJudges": {"Olga": "stepped"}},
        "rounds": [
            {"JudgeFeedback": _feedback([0.5, 0.5], "Jude", "")},
            {"SimultaneousSpeeches": {"speeches": {
                "0": {"speaker": "Alice", "timestamp": 2, "content": [_text("See "), _quote(0, 3), _text(" <quote>x</quote>")]},
                "1": {"speaker": "Bob", "timestamp": 3, "content": [_quote(9, 13)]},
            }}},
            {"JudgeFeedback": _feedback([0.4, 0.6], "Jude", "why?", ts=4)},
            {"SequentialSpeeches": {"speeches": {
                "0": {"speaker": "Alice", "timestamp": 5, "content": [_text("Trust me.")]},
                "1": {"speaker": "Bob", "timestamp": 6, "content": [_text("Read it: "), _quote(9, 13)]},
            }}},
            {"JudgeFeedback": _feedback([0.2, 0.8], "Jude", "B wins", end=True, ts=7)},
            {"OfflineJudgments": {"judgments": {"Olga": {"mode": "stepped", "startTimeMillis": 8, "judgments": [
                _feedback([0.5, 0.5], "Olga", ""), _feedback([0.3, 0.7], "Olga", "B", end=True)]}}}},
        ],
        "feedback": {"Jude": {"Judge": {"answers": {"clarity": 3, "reason for outcome": "quotes"}}},
                     "Alice": {"Debater": {"answers": {"clarity": 2}}}},
        "scratchpads": {},
    }


def consultancy_room() -> dict:
    """Bob (Debater A) argues shown answer "Yes"; the correct one is "No": a deceptive consultant."""
    return {
        "setup": _setup({"Debater A": "Bob", "Judge": "Jude"}, ["Yes", "No"], 1),
        "rounds": [
            {"JudgeFeedback": _feedback([0.5, 0.5], "Jude", "")},
            {"SimultaneousSpeeches": {"speeches": {"0": {"speaker": "Bob", "timestamp": 2, "content": [_quote(0, 3)]}}}},
            {"JudgeFeedback": _feedback([0.3, 0.7], "Jude", "not convinced", end=True)},
        ],
        "feedback": {},
        "scratchpads": {},
    }


def metadata_line(name: str, is_debate: bool, included: bool = True) -> dict:
    return {"name": name, "setting": {"isHuman": True, "isDebate": is_debate}, "includedInPaper": included,
            "status": {"Complete": {"result": {"endedBy": {"JudgeDecided": {}}}}}}


@pytest.fixture
def rooms_dir(tmp_path: Path) -> Path:
    root = tmp_path / "nyu"
    (root / "debates").mkdir(parents=True)
    (root / "debates" / "cat-debate-1.json").write_text(json.dumps(debate_room()))
    (root / "debates" / "cat-consult-1.json").write_text(json.dumps(consultancy_room()))
    lines = [metadata_line("cat-debate-1", True), metadata_line("cat-consult-1", False)]
    (root / "debates-metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def table_counts(store) -> dict[str, int]:
    with store.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Debate, Question, Document, Agent, Seat, Turn, Quote, Judgment, Feedback)}


def test_rooms_become_debates_with_turns_quotes_judgments_and_feedback(store, rooms_dir: Path) -> None:
    report = import_nyu(store, rooms_dir)
    assert (report.imported, report.skipped) == (2, [])
    text, _ = detokenize(TOKENS)
    with store.session() as s:
        debate = s.scalar(select(Debate).where(Debate.variant == "cat-debate-1"))
        question = s.get(Question, debate.question_id)
        assert question.answers == ["No", "Yes"]  # canonical order: sorted
        assert question.correct_index == 0 and debate.answer_order == [1, 0]
        assert s.get(Document, question.document_id).text == text
        assert debate.protocol == "nyu-debate" and debate.protocol_spec["family"] == "debate"
        assert debate.status == "done"
        meta = debate.meta
        assert (meta["setting"], meta["included_in_paper"], meta["status"]) == ("human debate", True, "complete")
        assert meta["char_limit"] == 750 and meta["quote_limit"] == 250
        seats = {seat.role: (seat.agent.name, seat.agent.kind, seat.answer_index) for seat in debate.seats}
        assert seats == {"A": ("Alice", "human", 1), "B": ("Bob", "human", 0), "judge": ("Jude", "human", None)}

        turns = s.scalars(select(Turn).where(Turn.debate_id == debate.id).order_by(Turn.step, Turn.role)).all()
        assert [(t.step, t.round, t.role, t.kind) for t in turns] == [
            (1, 1, "A", "speech"), (1, 1, "B", "speech"), (2, 1, "judge", "question"),
            (3, 2, "A", "speech"), (4, 2, "B", "speech"), (5, 2, "judge", "question")]
        # A quote tag typed by a debater is neutralised; only real quotes carry tags.
        assert turns[0].text == "See <quote>The cat sat</quote> \u2039quote>x\u2039/quote>"
        assert turns[1].text == "<quote>It wasn't happy</quote>"
        (quote,) = turns[0].quotes
        assert (quote.text, quote.verified, quote.fuzzy_score) == ("The cat sat", True, 1.0)
        assert text[quote.source_start:quote.source_end] == "The cat sat"

        judgments = s.scalars(select(Judgment).where(Judgment.debate_id == debate.id).order_by(Judgment.id)).all()
        got = [(j.judge_agent_id is not None, j.kind, j.after_round, j.probabilities) for j in judgments]
        # Shown [Yes, No] probabilities become canonical [No, Yes].
        assert got == [
            (True, "stepped", 0, [0.5, 0.5]), (True, "stepped", 1, [0.6, 0.4]),
            (True, "stepped", 2, [0.8, 0.2]), (True, "offline", 0, [0.5, 0.5]),
            (True, "offline", 1, [0.7, 0.3]), (True, "final", None, [0.8, 0.2])]
        assert judgments[-1].explanation == "B wins"
        feedback = s.scalars(select(Feedback).where(Feedback.debate_id == debate.id)).all()
        assert {f.respondent: f.answers["role"] for f in feedback} == {"Jude": "Judge", "Alice": "Debater"}

        consult = s.scalar(select(Debate).where(Debate.variant == "cat-consult-1"))
        assert consult.protocol == "nyu-consultancy" and consult.question_id == debate.question_id
        roles = {seat.role: seat.answer_index for seat in consult.seats}
        assert roles == {"consultant": 1, "judge": None}  # "Yes" (canonical 1) is wrong here


def test_reimport_changes_nothing_and_a_changed_room_replaces_its_import(sqlite_store, rooms_dir: Path) -> None:
    import_nyu(sqlite_store, rooms_dir)
    before = table_counts(sqlite_store)
    again = import_nyu(sqlite_store, rooms_dir)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 2)
    assert table_counts(sqlite_store) == before

    room = debate_room()
    room["rounds"][4]["JudgeFeedback"]["distribution"] = [0.9, 0.1]
    (rooms_dir / "debates" / "cat-debate-1.json").write_text(json.dumps(room))
    changed = import_nyu(sqlite_store, rooms_dir)
    assert (changed.imported, changed.updated, changed.unchanged) == (0, 1, 1)
    assert table_counts(sqlite_store) == before
    with sqlite_store.session() as s:
        final = s.scalar(select(Judgment.probabilities).where(Judgment.kind == "final").join(Debate)
                         .where(Debate.variant == "cat-debate-1"))
    assert final == [0.1, 0.9]


def test_malformed_rooms_are_named_by_file_and_field_and_the_rest_import(sqlite_store, rooms_dir: Path) -> None:
    debates = rooms_dir / "debates"
    no_question = debate_room()
    del no_question["setup"]["question"]
    (debates / "no-question.json").write_text(json.dumps(no_question))
    bad_span = consultancy_room()
    bad_span["rounds"][1]["SimultaneousSpeeches"]["speeches"]["0"]["content"] = [
        {"Quote": {"span": [3, "end"]}}]  # not a span at all (one out of range: imported)
    (debates / "bad-span.json").write_text(json.dumps(bad_span))
    bad_dist = consultancy_room()
    bad_dist["rounds"][2]["JudgeFeedback"]["distribution"] = [0.9, 0.9]
    (debates / "bad-dist.json").write_text(json.dumps(bad_dist))
    (debates / "truncated.json").write_text(json.dumps(debate_room())[:200])
    with (rooms_dir / "debates-metadata.jsonl").open("a") as fh:
        fh.write("{not json\n")

    report = import_nyu(sqlite_store, rooms_dir)
    assert report.imported == 2
    problems = "\n".join(report.skipped)
    assert "no-question.json: setup.question: missing" in problems
    assert "bad-span.json: rounds[1].SimultaneousSpeeches.speeches.0.content[0].Quote.span" in problems
    assert "bad-dist.json: rounds[2].JudgeFeedback.distribution: not a probability distribution" in problems
    assert "truncated.json: not JSON" in problems
    assert "debates-metadata.jsonl:3: not JSON" in problems
    assert len(report.skipped) == 5
    with sqlite_store.session() as s:
        assert s.scalar(select(func.count(Debate.id))) == 2


def test_a_quote_past_the_storys_end_is_kept_unverified_and_its_room_imported(
        sqlite_store, tmp_path: Path, capsys) -> None:
    """As in a-pail-of-air-7.json of the full set: a human consultancy included in the paper
    quotes tokens [6926, 6929) of a 6,927-token story. Here: tokens [12, 15) of 14."""
    root = tmp_path / "nyu"
    (root / "debates").mkdir(parents=True)
    room = consultancy_room()
    room["rounds"][1]["SimultaneousSpeeches"]["speeches"]["0"]["content"] = [
        _quote(0, 3), _text(" and "), _quote(12, 15), _text(" and "), _quote(20, 22)]
    (root / "debates" / "past-the-end-1.json").write_text(json.dumps(room))
    (root / "debates" / "cat-debate-1.json").write_text(json.dumps(debate_room()))
    lines = [metadata_line("past-the-end-1", False), metadata_line("cat-debate-1", True)]
    (root / "debates-metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    report = import_nyu(sqlite_store, root)
    assert (report.imported, report.skipped) == (2, [])
    where = "rounds[1].SimultaneousSpeeches.speeches.0.content"
    assert report.unverified_quotes == [
        (f"{root / 'debates' / 'past-the-end-1.json'}: {where}[2].Quote.span: token span "
        "[12, 15) is outside the story's 14 tokens; kept tokens [12, 14) as the quote, "
        "marked unverified"),
        (f"{root / 'debates' / 'past-the-end-1.json'}: {where}[4].Quote.span: token span "
        "[20, 22) is outside the story's 14 tokens; no token of it is in the story: kept as "
        "an empty quote, marked unverified"),
    ]
    assert report.summary().endswith("0 skipped, 2 quotes kept unverified")
    with sqlite_store.session() as s:
        debate = s.scalars(select(Debate).where(Debate.variant == "past-the-end-1")).one()
        assert debate.meta["included_in_paper"] is True  # the room counts in paper figures
        assert len(debate.meta["unverified_quotes"]) == 2
        turn = s.scalars(select(Turn).where(Turn.debate_id == debate.id,
                                            Turn.kind == "speech")).one()
        quotes = list(s.scalars(select(Quote).where(Quote.turn_id == turn.id)
                                .order_by(Quote.position)))
        story = s.scalar(select(Document.text))
    text, _ = detokenize(TOKENS)
    assert story == text
    assert [(q.text, q.verified) for q in quotes] == [
        ("The cat sat", True), ("happy.", False), ("", False)]
    assert turn.text == "<quote>The cat sat</quote> and <quote>happy.</quote> and <quote></quote>"
    assert [q["token_span"] for q in turn.meta["unverified_quotes"]] == [[12, 15], [20, 22]]
    assert all("outside the story's 14 tokens" in q["reason"]
               for q in turn.meta["unverified_quotes"])
    # the CLI names each such quote on its own line and counts them in the summary
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    main(["import", "nyu", str(root), "--db", url, "--quiet"])
    out = capsys.readouterr()
    assert "2 imported, 0 updated, 0 unchanged, 0 skipped, 2 quotes kept unverified" in out.out
    assert out.err.count("quote kept unverified: ") == 2 and "[12, 15)" in out.err


def test_cli_imports_and_reports_problems_on_one_line(tmp_path: Path, rooms_dir: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    main(["import", "nyu", str(rooms_dir), "--db", url, "--quiet"])
    assert "nyu-2023: 2 imported, 0 updated, 0 unchanged, 0 skipped" in capsys.readouterr().out
    main(["import", "nyu", str(rooms_dir / "debates"), "--db", url, "--quiet", "--experiment", "nyu-2023"])
    assert "0 imported, 0 updated, 2 unchanged" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["import", "nyu", str(tmp_path / "missing"), "--db", url])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DIR:") and err.count("\n") == 1


def test_the_whole_sample_imports_idempotently(sqlite_store, nyu_sample: Path, tmp_path: Path) -> None:
    rooms = sorted((nyu_sample / "debates").glob("*.json"))
    report = import_nyu(sqlite_store, nyu_sample)
    assert (report.imported, report.skipped) == (len(rooms), [])
    spans = 0
    for path in rooms:
        for rnd in json.loads(path.read_text())["rounds"]:
            for body in rnd.get("SimultaneousSpeeches", rnd.get("SequentialSpeeches", {})).get("speeches", {}).values():
                spans += sum(1 for seg in body["content"] if "Quote" in seg and seg["Quote"]["span"][0] < seg["Quote"]["span"][1])
    counts = table_counts(sqlite_store)
    assert counts["debates"] == len(rooms) and counts["quotes"] == spans
    assert import_nyu(sqlite_store, nyu_sample).unchanged == len(rooms)
    assert table_counts(sqlite_store) == counts


def test_a_copy_of_a_sample_room_with_a_broken_field_is_skipped(sqlite_store, nyu_sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "rooms"
    folder.mkdir()
    good = sorted((nyu_sample / "debates").glob("*.json"))[:2]
    for path in good:
        shutil.copy(path, folder / path.name)
    broken = json.loads(good[0].read_text())
    broken["setup"]["answers"] = ["only one"]
    (folder / "broken.json").write_text(json.dumps(broken))
    report = import_nyu(sqlite_store, folder)
    assert report.imported == 2
    assert report.skipped == [f"{folder / 'broken.json'}: setup.answers: expected two answer strings"]
