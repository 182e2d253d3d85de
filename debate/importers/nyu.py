"""`debate import nyu DIR`: the NYU 2023 human-debate rooms (Michael et al. 2023) into the store.

Every room becomes a debate of one import experiment (default "nyu-2023", source "import"),
written in its own transaction: the story a Document, the question a question row (shared by
rooms on the same question), the rules a protocol, the speeches turns with verified quotes,
the live judge's distributions stepped judgments (plus a final one for a finished room), the
offline judges' distributions offline judgments, the survey answers feedback rows. The
rows are written by the store's row writers (store.experiments, store.turns,
store.judgments); this module decides what they hold.

Re-importing a room whose file (and metadata line) did not change does nothing; a changed
room replaces its earlier import. A malformed room is reported by file and field and skipped;
a quote whose token span leaves the story is kept unverified (with the reason in the turn's
meta.unverified_quotes) and reported, and its room is imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from debate.agents.base import AgentIdentity
from debate.errors import DatasetError
from debate.importers.nyu_rooms import GPT4_NAME, Room, RoomError, parse_room
from debate.protocols import Limits, Protocol
from debate.store.db import Store
from debate.store.experiments import (
    agent_id,
    delete_debate,
    document_ids,
    find_experiment,
    insert_debate,
    insert_experiment,
    insert_question,
    insert_seats,
    sha256_text,
)
from debate.store.judgments import insert_feedback, insert_judgment
from debate.store.models import Debate
from debate.store.models import Question as QuestionRow
from debate.store.turns import TurnWrite, write_turns
from debate.vocabulary import DebateStatus, JudgmentKind, TurnStatus

DEFAULT_EXPERIMENT = "nyu-2023"
DATASET = "nyu-debate-2023"
STATUS = {"complete": DebateStatus.DONE, "in_progress": DebateStatus.WAITING_HUMAN,
          "waiting_to_begin": DebateStatus.WAITING_HUMAN}


@dataclass
class ImportReport:
    experiment: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # "FILE: field: problem"
    # quotes kept unverified in rooms that were imported: "FILE: field: problem"
    unverified_quotes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        flagged = (f", {len(self.unverified_quotes)} quotes kept unverified"
                   if self.unverified_quotes else "")
        return (
            f"{self.experiment}: {self.imported} imported, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped{flagged}"
        )


def find_rooms(directory: Path) -> tuple[list[Path], Path | None]:
    """Room files and the metadata JSONL for DIR: a dataset root holding debates/ and the
    metadata, or the folder of rooms itself (metadata looked for there, then beside it)."""
    if not directory.is_dir():
        raise DatasetError(f"DIR: {directory} is not a directory")
    rooms_dir = directory / "debates" if (directory / "debates").is_dir() else directory
    rooms = sorted(rooms_dir.glob("*.json"))
    if not rooms:
        raise DatasetError(f"DIR: no room files (*.json) in {rooms_dir}")
    # The published layout keeps debates-metadata.jsonl beside the debates/ folder.
    places = [directory] if rooms_dir != directory else [directory, directory.parent]
    for place in places:
        candidates = sorted(place.glob("*metadata*.jsonl"))
        if candidates:
            return rooms, candidates[0]
    return rooms, None


def read_metadata(path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Metadata lines by room name, and one message per malformed line."""
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{lineno}: not JSON ({exc.msg})")
                continue
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                problems.append(f"{path}:{lineno}: name: missing")
                continue
            out[item["name"]] = item
    return out, problems


def _protocol(room: Room) -> Protocol:
    limit = room.char_limit if room.char_limit and room.char_limit > 0 else 750
    quote = room.quote_limit if room.quote_limit is not None and room.quote_limit >= 0 else None
    return Protocol(
        name="nyu-debate" if room.is_debate else "nyu-consultancy",
        family="debate" if room.is_debate else "consultancy",
        rounds=max(room.speech_rounds, 1),
        simultaneous=False,
        interactive=True,
        judge_sees_source=False,
        debaters_see_source=True,
        # The NYU limits are in characters; a word takes at least one, so these bound words.
        limits=Limits(min_words=0, max_words=limit, max_quoted_words=quote),
    )


def _identity(name: str) -> AgentIdentity:
    if name == GPT4_NAME:
        return AgentIdentity(name=name, kind="model", model_id="gpt-4", backend="nyu-2023")
    return AgentIdentity(name=name, kind="human")


def _experiment_id(store: Store, name: str, source_dir: Path) -> int:
    with store.write_session() as session:
        existing = find_experiment(session, name)
        if existing is not None:
            if existing.source != "import" or existing.config.get("import") != "nyu":
                raise DatasetError(f"--experiment: {name!r} exists and is not an NYU import")
            return existing.id
        config = {"import": "nyu", "source": str(source_dir)}
        return insert_experiment(
            session,
            name=name,
            protocol="nyu-debate+nyu-consultancy",
            config=config,
            config_hash=sha256_text("nyu-import"),
            seed=0,
            source="import",
        )


def _question_id(session: Session, experiment_id: int, room: Room) -> int:
    key = room.question_key
    found = session.scalar(
        select(QuestionRow.id).where(
            QuestionRow.experiment_id == experiment_id, QuestionRow.external_id == key
        )
    )
    if found is not None:
        return found
    doc = document_ids(session, [(room.story_text, room.story_title)])[sha256_text(room.story_text)]
    return insert_question(
        session,
        experiment_id=experiment_id,
        external_id=key,
        dataset=DATASET,
        text=room.question,
        answers=room.answers,
        correct_index=room.correct_index,
        document_id=doc,
        meta={"article_id": room.article_id, "story_title": room.story_title},
    )


def store_room(session: Session, experiment_id: int, room: Room) -> str:
    """Write one parsed room; returns "imported", "updated" or "unchanged"."""
    existing = session.execute(
        select(Debate.id, Debate.meta).where(
            Debate.experiment_id == experiment_id, Debate.variant == room.name
        )
    ).first()
    outcome = "imported"
    if existing is not None:
        if (existing.meta or {}).get("source_sha256") == room.sha256:
            return "unchanged"
        delete_debate(session, existing.id)
        outcome = "updated"
    question_id = _question_id(session, experiment_id, room)
    protocol = _protocol(room)
    people = {name: agent_id(session, _identity(name)) for name in
              {*room.roles.values(), *(t.speaker for t in room.turns), *(j.judge for j in room.judgments)}}
    debate_id = insert_debate(
        session,
        experiment_id=experiment_id,
        question_id=question_id,
        protocol=protocol.name,
        protocol_spec=protocol.to_dict(),
        variant=room.name,
        answer_order=room.answer_order,
        seed=0,
        status=STATUS[room.status],
        steps_done=max((t.step for t in room.turns), default=0),
        meta=room.meta,
    )
    seats = [
        {"debate_id": debate_id, "role": role, "agent_id": people[person],
         "answer_index": room.seat_answers.get(role)}
        for role, person in room.roles.items()
    ]
    insert_seats(session, seats)
    writes = []
    for turn in room.turns:
        meta: dict[str, Any] = {"speaker": turn.speaker, "timestamp": turn.timestamp}
        bad = [{"position": q.position, "token_span": list(q.token_span),
                "reason": q.problem} for q in turn.quotes if q.problem]
        if bad:
            meta["unverified_quotes"] = bad
        writes.append(TurnWrite(
            debate_id=debate_id,
            step=turn.step,
            round=turn.round,
            role=turn.role,
            kind=turn.kind,
            agent_id=people[turn.speaker],
            user_id=None,
            text=turn.text,
            status=TurnStatus.OK,
            meta=meta,
            quotes=[{"position": q.position, "text": q.text, "verified": q.problem is None,
                     "source_start": q.start, "source_end": q.end,
                     "fuzzy_score": 1.0 if q.problem is None else 0.0}
                    for q in turn.quotes],
        ))
    write_turns(session, writes)
    final_judgment_of: dict[str, int] = {}
    for j in room.judgments:
        judgment_id = insert_judgment(
            session,
            debate_id=debate_id,
            judge_agent_id=people[j.judge],
            kind=j.kind,
            after_round=j.after_round,
            probabilities=j.probabilities,
            shown_order=room.answer_order,
            explanation=j.explanation or None,
            meta={**j.meta, "timestamp": j.timestamp, "judge": j.judge},
        )
        if j.kind in (JudgmentKind.FINAL, JudgmentKind.OFFLINE):
            final_judgment_of[j.judge] = judgment_id
    for fb in room.feedback:
        insert_feedback(
            session,
            debate_id=debate_id,
            judgment_id=final_judgment_of.get(fb.respondent),
            respondent=fb.respondent,
            answers=fb.answers,
        )
    return outcome


def import_nyu(
    store: Store,
    directory: Path,
    experiment: str = DEFAULT_EXPERIMENT,
    metadata: Path | None = None,
    on_room: Callable[[str, str], None] | None = None,
) -> ImportReport:
    """Import every room file under `directory`; see the module docstring."""
    rooms, found_meta = find_rooms(directory)
    meta_path = metadata or found_meta
    report = ImportReport(experiment)
    meta_by_name: dict[str, dict[str, Any]] = {}
    if meta_path is not None:
        if not meta_path.is_file():
            raise DatasetError(f"--metadata: {meta_path} is not a file")
        meta_by_name, problems = read_metadata(meta_path)
        report.skipped.extend(problems)
    exp_id = _experiment_id(store, experiment, directory)
    for path in rooms:
        name = path.stem
        meta = meta_by_name.get(name)
        raw = path.read_bytes()
        fingerprint = raw + b"\n" + json.dumps(meta, sort_keys=True).encode()
        try:
            data = json.loads(raw)
            room = parse_room(name, fingerprint, data, meta)
        except json.JSONDecodeError as exc:
            report.skipped.append(f"{path}: not JSON (line {exc.lineno}: {exc.msg})")
            continue
        except RoomError as exc:
            report.skipped.append(f"{path}: {exc}")
            continue
        with store.write_session() as session:
            outcome = store_room(session, exp_id, room)
        setattr(report, outcome, getattr(report, outcome) + 1)
        report.unverified_quotes.extend(f"{path}: {p}" for p in room.quote_problems)
        if on_room is not None:
            on_room(name, outcome)
    return report
