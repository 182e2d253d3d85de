"""Parse one NYU 2023 debate room (Michael et al. 2023) into plain values, ready to store.

Pure code: no I/O beyond what it is given, no database. A field that is missing or of the
wrong shape raises RoomError naming it (e.g. `rounds[3].SequentialSpeeches.speeches.1`).

A quote whose token span does not lie inside the story (one room of the full set quotes
tokens [6926, 6929) of a 6,927-token story) does not drop the room: the quote keeps the
tokens that are in the story (as a list slice would, which is what a reader of the room
was most likely shown), is marked unverified with the reason, and is listed in
`Room.quote_problems` for the import report.

Answers are kept in a canonical order (sorted by text), so two rooms that show the same
question's answers in opposite orders share one question row; `answer_order[i]` is the
canonical index of the answer the room shows in position i, as in the debates table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from debate.datasets.nyu_text import char_span, detokenize
from debate.vocabulary import JudgmentKind, SeatRole

GPT4_NAME = "GPT-4"
_QUOTE_TAG = re.compile(r"<\s*/?\s*quote\s*>", re.IGNORECASE)


class RoomError(ValueError):
    """A room field is missing or malformed; the message names the field."""

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"{field_path}: {problem}")
        self.field_path = field_path


@dataclass
class QuoteValue:
    position: int
    text: str
    start: int
    end: int
    token_span: tuple[int, int]
    problem: str | None = None  # why the quote is not verified (its span is out of range)


@dataclass
class TurnValue:
    step: int
    round: int
    role: str
    kind: str  # speech | question
    speaker: str
    text: str
    timestamp: int | None
    quotes: list[QuoteValue] = field(default_factory=list)


@dataclass
class JudgmentValue:
    judge: str
    kind: str  # final | stepped | offline
    after_round: int | None
    probabilities: list[float]  # canonical (question) answer order
    explanation: str
    timestamp: int | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeedbackValue:
    respondent: str
    answers: dict[str, Any]


@dataclass
class Room:
    name: str
    sha256: str
    article_id: str
    story_title: str
    story_text: str
    question: str
    answers: list[str]  # canonical order
    correct_index: int  # canonical order
    answer_order: list[int]
    is_debate: bool
    is_human: bool
    status: str  # complete | in_progress | waiting_to_begin
    included_in_paper: bool | None
    roles: dict[str, str]  # seat role (A, B, consultant, judge) -> person
    seat_answers: dict[str, int]  # seat role -> canonical answer index
    turns: list[TurnValue]
    judgments: list[JudgmentValue]
    feedback: list[FeedbackValue]
    rules: dict[str, Any]
    char_limit: int | None
    quote_limit: int | None
    speech_rounds: int
    meta: dict[str, Any]
    quote_problems: list[str] = field(default_factory=list)  # "field: problem", kept unverified

    @property
    def setting(self) -> str:
        return f"{'human' if self.is_human else 'AI'} {'debate' if self.is_debate else 'consultancy'}"

    @property
    def question_key(self) -> str:
        blob = "\x1f".join([self.article_id, self.question, *self.answers, str(self.correct_index)])
        return "nyu-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _get(obj: Any, path: str, key: str | int, kind: type | tuple[type, ...]) -> Any:
    where = f"{path}.{key}" if path else str(key)
    try:
        value = obj[key]
    except (KeyError, IndexError, TypeError):
        raise RoomError(where, "missing") from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RoomError(where, f"expected {names}, got {type(value).__name__}")
    return value


def _distribution(value: Any, where: str, order: list[int]) -> list[float]:
    if not isinstance(value, list) or len(value) != len(order):
        raise RoomError(where, f"expected a list of {len(order)} probabilities")
    try:
        probs = [float(p) for p in value]
    except (TypeError, ValueError):
        raise RoomError(where, "probabilities must be numbers") from None
    if any(p < 0 or p > 1 for p in probs) or abs(sum(probs) - 1) > 1e-3:
        raise RoomError(where, f"not a probability distribution: {value}")
    canonical = [0.0] * len(order)
    for shown, p in enumerate(probs):
        canonical[order[shown]] = p
    return canonical


class _Speech:
    """Renders speech content segments into <quote>-tagged text with verified quotes."""

    def __init__(self, tokens: list[str]) -> None:
        self.text, self.spans = detokenize(tokens)
        self.problems: list[str] = []  # quotes kept unverified: "field: problem"

    def _clamped(self, begin: int, end: int, where: str) -> tuple[int, int, str | None]:
        """Character span of tokens [begin, end); a span outside the story keeps the
        tokens inside it (maybe none) and says why it is unverified."""
        try:
            start, stop = char_span(self.spans, begin, end)
            return start, stop, None
        except ValueError as exc:
            problem = str(exc)
        lo, hi = max(begin, 0), min(end, len(self.spans))
        if lo < hi:
            start, stop = char_span(self.spans, lo, hi)
            kept = f"kept tokens [{lo}, {hi}) as the quote"
        else:
            start = stop = len(self.text) if begin >= len(self.spans) else 0
            kept = "no token of it is in the story: kept as an empty quote"
        problem = f"{problem}; {kept}, marked unverified"
        self.problems.append(f"{where}: {problem}")
        return start, stop, problem

    def render(self, content: Any, where: str) -> tuple[str, list[QuoteValue]]:
        if not isinstance(content, list):
            raise RoomError(where, "expected a list of segments")
        parts: list[str] = []
        quotes: list[QuoteValue] = []
        for i, seg in enumerate(content):
            seg_where = f"{where}[{i}]"
            if isinstance(seg, dict) and "Text" in seg:
                text = _get(_get(seg, seg_where, "Text", dict), seg_where + ".Text", "text", str)
                parts.append(_QUOTE_TAG.sub(lambda m: m.group(0).replace("<", "\u2039"), text))
            elif isinstance(seg, dict) and "Quote" in seg:
                span = _get(_get(seg, seg_where, "Quote", dict), seg_where + ".Quote", "span", list)
                if len(span) != 2 or not all(isinstance(x, int) for x in span):
                    raise RoomError(seg_where + ".Quote.span", "expected [begin, endExclusive]")
                begin, end = span
                if begin == end:
                    continue
                start, stop, problem = self._clamped(begin, end, seg_where + ".Quote.span")
                quoted = self.text[start:stop]
                quotes.append(QuoteValue(len(quotes), quoted, start, stop, (begin, end), problem))
                parts.append(f"<quote>{quoted}</quote>")
            else:
                raise RoomError(seg_where, "expected a Text or Quote segment")
        return "".join(parts), quotes


def _feedback_text(fb: Any, where: str, speech: _Speech) -> tuple[str, int | None]:
    if not isinstance(fb, dict):
        raise RoomError(where, "expected an object")
    text, _ = speech.render(fb.get("content", []), where + ".content")
    ts = fb.get("timestamp")
    return text, ts if isinstance(ts, int) else None


def _char_limits(rules: dict[str, Any]) -> tuple[int | None, int | None]:
    for part in ("fixedOpening", "repeatingStructure", "fixedClosing"):
        for item in rules.get(part) or []:
            for kind in ("SimultaneousSpeechesRound", "SequentialSpeechesRound"):
                if isinstance(item, dict) and kind in item:
                    spec = item[kind]
                    return spec.get("charLimit"), spec.get("quoteLimit")
    return None, None


def _status(meta: dict[str, Any] | None, rounds: list[Any]) -> str:
    if meta is not None and isinstance(meta.get("status"), dict) and meta["status"]:
        key = next(iter(meta["status"]))
        return {"Complete": "complete", "InProgress": "in_progress"}.get(key, "waiting_to_begin")
    for r in reversed(rounds):
        if "JudgeFeedback" in r and r["JudgeFeedback"].get("endDebate"):
            return "complete"
        if "NegotiateEnd" in r and all(r["NegotiateEnd"].get("votes", {}).values()):
            return "complete"
    speeches = any("SimultaneousSpeeches" in r or "SequentialSpeeches" in r for r in rounds)
    return "in_progress" if speeches else "waiting_to_begin"


def parse_room(name: str, raw: bytes, data: Any, meta: dict[str, Any] | None) -> Room:
    """One room (its JSON already decoded) and its metadata line, if any."""
    if not isinstance(data, dict):
        raise RoomError("(top level)", "expected an object")
    setup = _get(data, "", "setup", dict)
    source = _get(setup, "setup", "sourceMaterial", dict)
    quality = _get(source, "setup.sourceMaterial", "QuALITYSourceMaterial", dict)
    tokens = _get(quality, "setup.sourceMaterial.QuALITYSourceMaterial", "contents", list)
    if not all(isinstance(t, str) for t in tokens):
        raise RoomError("setup.sourceMaterial.QuALITYSourceMaterial.contents", "tokens must be strings")
    speech = _Speech(tokens)
    question = _get(setup, "setup", "question", str)
    shown_answers = _get(setup, "setup", "answers", list)
    if len(shown_answers) != 2 or not all(isinstance(a, str) for a in shown_answers):
        raise RoomError("setup.answers", "expected two answer strings")
    if shown_answers[0] == shown_answers[1]:
        raise RoomError("setup.answers", "the two answers are identical")
    shown_correct = _get(setup, "setup", "correctAnswerIndex", int)
    if shown_correct not in (0, 1):
        raise RoomError("setup.correctAnswerIndex", f"must be 0 or 1, got {shown_correct}")
    answers = sorted(shown_answers)
    order = [answers.index(a) for a in shown_answers]
    roles_raw = _get(setup, "setup", "roles", dict)
    rules = _get(setup, "setup", "rules", dict)
    rounds = _get(data, "", "rounds", list)

    debaters = {k: v for k, v in roles_raw.items() if k in ("Debater A", "Debater B")}
    if not debaters:
        raise RoomError("setup.roles", "no Debater A or Debater B")
    is_debate = len(debaters) == 2
    setting = (meta or {}).get("setting")
    if isinstance(setting, dict) and {"isHuman", "isDebate"} <= set(setting):
        is_human, is_debate_meta = bool(setting["isHuman"]), bool(setting["isDebate"])
        if is_debate_meta != is_debate:
            raise RoomError("setup.roles", f"metadata says isDebate={is_debate_meta} but roles are {sorted(roles_raw)}")
    else:
        is_human = GPT4_NAME not in debaters.values()

    seat_of_index: dict[int, str] = {}
    roles: dict[str, str] = {}
    seat_answers: dict[str, int] = {}
    for label, index in (("Debater A", 0), ("Debater B", 1)):
        if label in debaters:
            seat = (SeatRole.A if index == 0 else SeatRole.B) if is_debate else SeatRole.CONSULTANT
            seat_of_index[index] = seat
            roles[seat] = _get(roles_raw, "setup.roles", label, str)
            seat_answers[seat] = order[index]
    if "Judge" in roles_raw:
        roles["judge"] = _get(roles_raw, "setup.roles", "Judge", str)

    turns: list[TurnValue] = []
    judgments: list[JudgmentValue] = []
    negotiate: list[dict[str, Any]] = []
    speech_round = 0
    step = 0
    for i, rnd in enumerate(rounds):
        where = f"rounds[{i}]"
        if not isinstance(rnd, dict) or len(rnd) != 1:
            raise RoomError(where, "expected an object with one round kind")
        kind, body = next(iter(rnd.items()))
        where = f"{where}.{kind}"
        if not isinstance(body, dict):
            raise RoomError(where, "expected an object")
        if kind in ("SimultaneousSpeeches", "SequentialSpeeches"):
            speech_round += 1
            speeches = _get(body, where, "speeches", dict)
            items = []
            for key, sp in speeches.items():
                sp_where = f"{where}.speeches.{key}"
                if key not in ("0", "1") or int(key) not in seat_of_index:
                    raise RoomError(sp_where, "speaker index is not a debater in setup.roles")
                if not isinstance(sp, dict):
                    raise RoomError(sp_where, "expected an object")
                text, quotes = speech.render(sp.get("content"), sp_where + ".content")
                ts = sp.get("timestamp")
                items.append((ts if isinstance(ts, int) else 0, int(key), sp, text, quotes))
            items.sort(key=lambda item: (item[0], item[1]) if kind == "SequentialSpeeches" else item[1])
            for ts, index, sp, text, quotes in items:
                if kind == "SequentialSpeeches" or not turns or turns[-1].round != speech_round:
                    step += 1
                speaker = sp.get("speaker")
                turns.append(TurnValue(step, speech_round, seat_of_index[index], "speech",
                                       speaker if isinstance(speaker, str) else roles[seat_of_index[index]],
                                       text, ts or None, quotes))
        elif kind == "JudgeFeedback":
            dist = _distribution(body.get("distribution"), where + ".distribution", order)
            fb = _get(body, where, "feedback", dict)
            text, ts = _feedback_text(fb, where + ".feedback", speech)
            judge = fb.get("speaker") if isinstance(fb.get("speaker"), str) else roles.get("judge")
            if judge is None:
                raise RoomError(where + ".feedback.speaker", "missing, and setup.roles has no Judge")
            end = bool(body.get("endDebate"))
            judgments.append(JudgmentValue(judge, JudgmentKind.STEPPED, speech_round, dist, text, ts,
                                           {"end_debate": end}))
            if text.strip():
                same = [t for t in turns if t.role == SeatRole.JUDGE and t.round == speech_round]
                if same:
                    same[0].text += "\n\n" + text
                else:
                    step += 1
                    turns.append(TurnValue(step, speech_round, SeatRole.JUDGE, "question", judge, text, ts))
        elif kind == "NegotiateEnd":
            votes = _get(body, where, "votes", dict)
            negotiate.append({"after_round": speech_round, "votes": votes})
        elif kind == "OfflineJudgments":
            by_judge = _get(body, where, "judgments", dict)
            for judge, record in by_judge.items():
                j_where = f"{where}.judgments.{judge}"
                mode = _get(record, j_where, "mode", str)
                entries = _get(record, j_where, "judgments", list)
                for k, entry in enumerate(entries):
                    e_where = f"{j_where}.judgments[{k}]"
                    if not isinstance(entry, dict):
                        raise RoomError(e_where, "expected an object")
                    dist = _distribution(entry.get("distribution"), e_where + ".distribution", order)
                    text, ts = _feedback_text(entry.get("feedback", {}), e_where + ".feedback", speech)
                    after = k if mode == "stepped" else None
                    judgments.append(JudgmentValue(judge, JudgmentKind.OFFLINE, after, dist, text, ts,
                                                   {"mode": mode, "end_debate": bool(entry.get("endDebate"))}))
        else:
            raise RoomError(where, f"unknown round kind {kind!r}")

    status = _status(meta, rounds)
    live = [j for j in judgments if j.kind == JudgmentKind.STEPPED]
    if status == "complete" and live and "judge" in roles:
        last = live[-1]
        judgments.append(JudgmentValue(last.judge, JudgmentKind.FINAL, None, last.probabilities,
                                       last.explanation, last.timestamp, dict(last.meta)))

    feedback: list[FeedbackValue] = []
    for person, by_role in (data.get("feedback") or {}).items():
        if not isinstance(by_role, dict):
            raise RoomError(f"feedback.{person}", "expected an object")
        for role, survey in by_role.items():
            survey_answers = survey.get("answers") if isinstance(survey, dict) else None
            if not isinstance(survey_answers, dict):
                raise RoomError(f"feedback.{person}.{role}.answers", "expected an object")
            feedback.append(FeedbackValue(person, {"role": role, **survey_answers}))

    char_limit, quote_limit = _char_limits(rules)
    included = (meta or {}).get("includedInPaper")
    room_meta: dict[str, Any] = {
        "room": name,
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "setting": f"{'human' if is_human else 'AI'} {'debate' if is_debate else 'consultancy'}",
        "is_human": is_human,
        "is_debate": is_debate,
        "included_in_paper": included if isinstance(included, bool) else None,
        "status": status,
        "rules": rules,
        "char_limit": char_limit,
        "quote_limit": quote_limit,
        "first_round_simultaneous": True,
        "offline_judges": setup.get("offlineJudges") or {},
        "creation_time": setup.get("creationTime"),
        "negotiate_end": negotiate,
    }
    if speech.problems:
        room_meta["unverified_quotes"] = list(speech.problems)
    if meta is not None and isinstance(meta.get("status"), dict):
        result = (meta["status"].get("Complete") or {}).get("result") or {}
        if isinstance(result.get("endedBy"), dict) and result["endedBy"]:
            room_meta["ended_by"] = next(iter(result["endedBy"]))
    return Room(
        name=name,
        sha256=room_meta["source_sha256"],
        article_id=str(quality.get("articleId", "")),
        story_title=str(quality.get("title", "")),
        story_text=speech.text,
        question=question,
        answers=answers,
        correct_index=order[shown_correct],
        answer_order=order,
        is_debate=is_debate,
        is_human=is_human,
        status=status,
        included_in_paper=room_meta["included_in_paper"],
        roles=roles,
        seat_answers=seat_answers,
        turns=turns,
        judgments=judgments,
        feedback=feedback,
        rules=rules,
        char_limit=char_limit if isinstance(char_limit, int) else None,
        quote_limit=quote_limit if isinstance(quote_limit, int) else None,
        speech_rounds=speech_round,
        meta=room_meta,
        quote_problems=list(speech.problems),
    )
