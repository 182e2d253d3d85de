"""Prompt templates: text files in the package (debate/templates/{debater,judge}/*.txt).

A template is plain text with `{placeholders}` (Python format fields). A config may give
`templates: DIR`; files in DIR named like the built-in ones replace them, the rest stay.
The template version stored with each turn names the set and a digest of the files used.

Debater prompts are two messages: a system message (format, question, both answers, the
source when the protocol shows it, then this speaker's side and limits) and a user
message (the transcript as this speaker may see it, the round). Everything before the
side-specific part is the same for every turn of a debate and for both debaters; it is
marked as the chat's `cache_prefix` so a backend can keep its key/value cache.

Judge prompts show what the protocol shows a judge: the question and the answers (as
A/B in the shown order), the transcript up to the round being judged with quotes marked
verified or not (never the source, except for the expert-judge protocol): the one blind
view of debate.view, rendered; a verified quote is the source's own characters.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from debate.agents.base import TranscriptTurn, TurnRequest
from debate.backends.base import Chat
from debate.errors import ConfigError
from debate.quotes import segments_plain
from debate.view import BlindView
from debate.vocabulary import SeatRole

LABELS = ("A", "B")
FORMAT_NAMES = {"debate": "debate", "consultancy": "consultancy", "naive": "question",
                "expert": "question", "pixel": "debate"}
_CUT = "\x00cache-prefix-end\x00"
DEBATER_FIELDS = frozenset({
    "format_name", "format_rules", "question", "answer_a", "answer_b", "role", "speaker_name",
    "round", "rounds", "max_words", "min_words", "max_quoted_words", "min_words_clause",
    "simultaneous_clause", "source", "source_title", "protocol", "my_label", "my_answer",
    "other_label", "other_answer", "transcript", "transcript_block", "source_block",
    "role_block",
})
JUDGE_FIELDS = frozenset({
    "format_name", "question", "answer_a", "answer_b", "rounds", "rounds_shown", "source",
    "source_title", "transcript", "max_words", "evidence_rules", "source_block",
    "transcript_block", "instruction",
})
FIELDS = {"debater": DEBATER_FIELDS | JUDGE_FIELDS, "judge": JUDGE_FIELDS | DEBATER_FIELDS}


def _builtin_dir(kind: str) -> Path:
    return Path(str(resources.files("debate") / "templates" / kind))


@dataclass(frozen=True)
class TemplateSet:
    kind: str  # debater | judge
    files: dict[str, str]  # part name -> text
    origin: dict[str, str]  # part name -> file it came from
    label: str

    @staticmethod
    def load(kind: str, custom_dir: str | Path | None = None, where: str = "templates") -> TemplateSet:
        files: dict[str, str] = {}
        origin: dict[str, str] = {}
        for path in sorted(_builtin_dir(kind).glob("*.txt")):
            files[path.stem] = path.read_text(encoding="utf-8")
            origin[path.stem] = f"builtin:{kind}/{path.name}"
        label = "builtin"
        if custom_dir is not None:
            d = Path(custom_dir).expanduser()
            if not d.is_dir():
                raise ConfigError(f"{where}: no such directory {str(custom_dir)!r}")
            sub = d / kind if (d / kind).is_dir() else d
            custom = sorted(sub.glob("*.txt"))
            if not custom:
                raise ConfigError(f"{where}: no .txt template files in {str(sub)!r}")
            for path in custom:
                files[path.stem] = path.read_text(encoding="utf-8")
                origin[path.stem] = str(path)
            label = d.name
        for name, text in files.items():
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ConfigError(f"{origin[name]}: bad template ({exc})") from None
            unknown = sorted(f for f in fields if f.split(".")[0].split("[")[0] not in FIELDS[kind])
            if unknown:
                raise ConfigError(
                    f"{origin[name]}: unknown placeholder {{{unknown[0]}}}; known: "
                    + ", ".join(sorted(FIELDS[kind]))
                )
        return TemplateSet(kind, files, origin, label)

    @property
    def version(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\x00" + self.files[name].encode() + b"\x00")
        return f"{self.kind}-{self.label}@{h.hexdigest()[:12]}"

    def render(self, part: str, values: dict[str, Any]) -> str:
        if part not in self.files:
            raise ConfigError(f"templates: missing template {self.kind}/{part}.txt")
        try:
            return self.files[part].format_map(values)
        except KeyError as exc:
            known = ", ".join(sorted(values))
            raise ConfigError(
                f"{self.origin[part]}: unknown placeholder {{{exc.args[0]}}}; known: {known}"
            ) from None
        except (ValueError, IndexError) as exc:
            raise ConfigError(f"{self.origin[part]}: bad template ({exc})") from None


def speaker_name(role: str) -> str:
    if role in (SeatRole.A, SeatRole.B):
        return f"Debater {role}"
    if role == SeatRole.CONSULTANT:
        return "The consultant"
    if role == SeatRole.JUDGE:
        return "The judge"
    return role


def turn_heading(role: str, round_: int, kind: str) -> str:
    """'Debater A (round 1)', '... (choosing a side)', '... (question after round 1)'."""
    if kind == "choice":
        return f"{speaker_name(role)} (choosing a side)"
    if kind == "question":
        return f"{speaker_name(role)} (question after round {round_})"
    return f"{speaker_name(role)} (round {round_})"


def transcript_text(turns: tuple[TranscriptTurn, ...] | list[TranscriptTurn]) -> str:
    """One block per turn: 'Debater A (round 1): text' (what a debater is shown)."""
    blocks = []
    for t in turns:
        text = t.text
        blocks.append(f"{turn_heading(t.role, t.round, t.kind)}: {text.strip()}")
    return "\n\n".join(blocks)


def _family(protocol_family: str) -> str:
    return protocol_family if protocol_family in FORMAT_NAMES else "debate"


@dataclass(frozen=True)
class DebaterPrompt:
    chat: Chat
    shown: str  # system + user text, what the speaker was shown


def debater_prompt(templates: TemplateSet, request: TurnRequest, family: str,
                   simultaneous: bool = False) -> DebaterPrompt:
    """The chat for one turn request (speech, choice, or an interactive judge's question)."""
    fam = _family(family)
    limits = request.limits
    values: dict[str, Any] = {
        "format_name": FORMAT_NAMES[fam],
        "question": request.question,
        "answer_a": request.answers[0],
        "answer_b": request.answers[1],
        "role": request.role,
        "speaker_name": speaker_name(request.role),
        "round": request.round,
        "rounds": request.rounds,
        "max_words": limits.max_words,
        "min_words": limits.min_words,
        "max_quoted_words": limits.max_quoted_words if limits.max_quoted_words is not None
        else limits.max_words,
        "min_words_clause": f" and at least {limits.min_words}" if limits.min_words else "",
        "simultaneous_clause": " (both speak at once each round)" if simultaneous else "",
        "source": request.source or "",
        "source_title": request.source_title or "",
        "protocol": request.protocol,
    }
    mine = request.my_answer
    values.update(
        my_label=LABELS[mine] if mine is not None else "",
        my_answer=request.answers[mine] if mine is not None else "",
        other_label=LABELS[1 - mine] if mine is not None else "",
        other_answer=request.answers[1 - mine] if mine is not None else "",
    )
    values["format_rules"] = templates.render(
        "format_consultancy" if fam == "consultancy" else "format_debate", values
    ).strip()
    values["transcript"] = transcript_text(request.transcript)
    values["transcript_block"] = (
        templates.render("transcript", values) if request.transcript
        else templates.render("no_transcript", values)
    )
    if request.kind == "question":
        return _judge_question_prompt(request, values)
    source_block = (
        templates.render("source", values) if request.source is not None
        else templates.render("no_source", values)
    )
    if request.kind == "choice":
        values["role_block"] = ""
    else:
        values["role_block"] = templates.render(
            "role_consultancy" if request.role == SeatRole.CONSULTANT else "role_debate", values
        ).strip()
    values["source_block"] = source_block + _CUT
    system = templates.render("system", values)
    cut = system.index(_CUT)
    system = system.replace(_CUT, "")
    user = templates.render("choice" if request.kind == "choice" else "user", values)
    chat = Chat(
        messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
        cache_prefix=system[:cut],
        seed=request.seed,
    )
    return DebaterPrompt(chat, shown_text(chat))


def _judge_question_prompt(request: TurnRequest, values: dict[str, Any]) -> DebaterPrompt:
    """An interactive judge (a model in the judge seat) asks its question."""
    judge = TemplateSet.load("judge")
    fam = "consultancy" if "consultancy" in request.protocol else "debate"
    values = dict(values, format_name=FORMAT_NAMES[fam],
                  evidence_rules=judge.render(f"evidence_{fam}", values).strip(),
                  rounds_shown=request.round, source_block="",
                  transcript=transcript_text(request.transcript))
    values["transcript_block"] = judge.render("transcript", values) if request.transcript else ""
    values["instruction"] = judge.render("question", values).strip()
    chat = Chat(
        messages=({"role": "system", "content": judge.render("system", values)},
                  {"role": "user", "content": judge.render("user", values)}),
        seed=request.seed,
    )
    return DebaterPrompt(chat, shown_text(chat))


def shown_text(chat: Chat) -> str:
    parts = [f"[{m['role']}]\n{m['content']}" for m in chat.messages]
    if chat.assistant_prefix:
        parts.append(f"[assistant]\n{chat.assistant_prefix}")
    return "\n\n".join(parts)


def view_transcript(view: BlindView) -> str:
    """The judge's transcript: one block per turn of the blind view, quotes marked
    verified (shown in the source's own characters, exactly) or unverified (the
    debater's text, with the reserved marks removed)."""
    blocks = []
    for t in view.turns:
        text = segments_plain(t.segments, terminal=False)
        blocks.append(f"{turn_heading(t.role, t.round, t.kind)}: {text.strip()}")
    return "\n\n".join(blocks)


def judge_prompt(templates: TemplateSet, view: BlindView, mode: str) -> Chat:
    """mode: 'logprob' (reply is one letter, after 'Answer:') or 'text' (reasons, then Answer: X)."""
    fam = _family(view.family)
    values: dict[str, Any] = {
        "format_name": FORMAT_NAMES[fam],
        "question": view.question,
        "answer_a": view.answers[0],
        "answer_b": view.answers[1],
        "rounds": view.rounds,
        "rounds_shown": view.rounds_shown,
        "source": view.source or "",
        "source_title": view.source_title or "",
        "transcript": view_transcript(view),
        "max_words": 60,
    }
    values["evidence_rules"] = templates.render(
        f"evidence_{'debate' if fam == 'pixel' else fam}", values
    ).strip()
    values["source_block"] = templates.render("source", values) if view.source else ""
    values["transcript_block"] = (
        templates.render("transcript", values) if view.turns and fam not in ("naive", "expert")
        else ""
    )
    values["instruction"] = templates.render(f"instruction_{mode}", values).strip()
    return Chat(
        messages=({"role": "system", "content": templates.render("system", values)},
                  {"role": "user", "content": templates.render("user", values)}),
        assistant_prefix="Answer:" if mode == "logprob" else "",
    )
