"""The scripted / replay debater: arguments read from a file or filled into a template.

Script file (JSONL), one turn per line:
    {"question_id": "q1", "role": "A", "round": 1, "text": "..."}
"role" (a seat: A, B, consultant, judge) may be omitted to match any seat.
A turn not in the script falls back to `template`, formatted with {answer}, {other},
{question}, {round}, {role}, {evidence} and {quote}. {evidence} is a sentence of the
source (when the speaker is shown it) chosen for the answer argued: the sentences are
ranked by the words they share with that answer and the question, and round r takes the
r-th best, so each round quotes something new. {quote} is the first twelve words of the
source. Both are verbatim slices of the source, at most 30 words long.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from debate.agents.base import AgentIdentity, Debater, TurnRequest, TurnResult
from debate.agents.registry import AgentType, BuildContext
from debate.errors import ConfigError
from debate.jsonl import iter_json_lines
from debate.quotes import QUOTE_TAG_RE, normalize

DEFAULT_TEMPLATE = (
    "Round {round}: the answer is \"{answer}\". The text says <quote>{evidence}</quote>, "
    "which supports my answer over \"{other}\"."
)
DEFAULT_QUESTION = "Debaters, what in the text most directly decides the question?"


class ScriptedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "scripted"
    script: str | None = None
    template: str = DEFAULT_TEMPLATE
    question_template: str = DEFAULT_QUESTION
    choose: str = "first"  # open protocols: "first" | "second" answer shown
    # Seconds each batched call takes, as a slow model would (tests of kills and leases).
    delay: float = Field(default=0.0, ge=0.0, le=3600.0)


EVIDENCE_MAX_WORDS = 30
# a sentence ends at . ! or ? (and any closing quotes or brackets) before a space,
# except after a title such as Mr.
_SENTENCE_END = re.compile(
    r"(?:(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])"
    r"|(?<=[.!?][\"'\u201d\u2019)]))\s+"
)
_STOPWORDS_TEXT = (
    "a an and are as at be but by did do does for from had has have he her him his how i "
    "in is it its of on or she that the their them they this to was were what when where "
    "which who why will with would you your not no"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split(" "))


def first_sentence(source: str | None, max_words: int = 12) -> str:
    """The first `max_words` words of the source, as a verbatim slice of it."""
    if not source:
        return ""
    return _first_words(source.strip(), max_words)


def _first_words(text: str, max_words: int) -> str:
    words = list(re.finditer(r"\S+", text))
    if len(words) <= max_words:
        return text
    return text[: words[max_words - 1].end()]


@lru_cache(maxsize=256)
def _sentences(source: str) -> tuple[str, ...]:
    parts = (p.strip() for p in _SENTENCE_END.split(source))
    # a sentence holding quote tags could not be quoted whole; leave it out
    return tuple(p for p in parts if p and not QUOTE_TAG_RE.search(p))


def _content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in normalize(text).split() if w not in _STOPWORDS and len(w) > 2)


@lru_cache(maxsize=4096)
def _ranked_sentences(source: str, answer: str, question: str) -> tuple[str, ...]:
    answer_words, question_words = _content_words(answer), _content_words(question)

    def score(item: tuple[int, str]) -> tuple[int, int]:
        pos, sentence = item
        words = _content_words(sentence)
        return (-(2 * len(words & answer_words) + len(words & question_words)), pos)

    return tuple(s for _, s in sorted(enumerate(_sentences(source)), key=score))


def evidence_sentence(source: str | None, answer: str, question: str, round_: int) -> str:
    """The source sentence that best matches `answer` (the next best in later rounds),
    cut to its first EVIDENCE_MAX_WORDS words; "" without a source."""
    if not source:
        return ""
    ranked = _ranked_sentences(source, answer, question)
    if not ranked:
        return first_sentence(source)
    return _first_words(ranked[(max(round_, 1) - 1) % len(ranked)], EVIDENCE_MAX_WORDS)


class ScriptedDebater(Debater):
    def __init__(self, settings: ScriptedSettings, script: dict[tuple[str, str, int], str]):
        self.settings = settings
        self.script = script

    @property
    def identity(self) -> AgentIdentity:
        s = self.settings
        return AgentIdentity(
            name=s.name,
            kind="scripted",
            settings={"script": s.script, "template": s.template, "choose": s.choose},
        )

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        if self.settings.delay:
            time.sleep(self.settings.delay)
        return [self._one(r) for r in requests]

    def _one(self, r: TurnRequest) -> TurnResult:
        if r.kind == "choice":
            pick = 0 if self.settings.choose == "first" else 1
            return TurnResult(text=f"I will argue for: {r.answers[pick]}", meta={"choice": pick})
        if r.kind == "question":
            return TurnResult(text=self.settings.question_template)
        scripted = self.script.get((r.question_id, r.role, r.round)) or self.script.get(
            (r.question_id, "", r.round)
        )
        if scripted is not None:
            return TurnResult(text=scripted, template_version="script")
        # without a final full stop, so that templates can put the answer mid-sentence
        mine = r.answers[r.my_answer].rstrip(". ") if r.my_answer is not None else ""
        other = r.answers[1 - r.my_answer].rstrip(". ") if r.my_answer is not None else ""
        text = self.settings.template.format(
            answer=mine,
            other=other,
            question=r.question,
            round=r.round,
            role=r.role,
            quote=first_sentence(r.source),
            evidence=evidence_sentence(r.source, mine, r.question, r.round),
        )
        return TurnResult(text=text, template_version="template")


def load_script(path: Path) -> dict[tuple[str, str, int], str]:
    if not path.is_file():
        raise ConfigError(f"script: no such file {path}")
    script: dict[tuple[str, str, int], str] = {}
    for where, obj in iter_json_lines(path, ConfigError):
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        for key in ("question_id", "round", "text"):
            if key not in obj:
                raise ConfigError(f"{where}: {key}: missing")
        if not isinstance(obj["round"], int):
            raise ConfigError(f"{where}: round: expected an integer")
        script[(str(obj["question_id"]), str(obj.get("role", "")), obj["round"])] = str(
            obj["text"]
        )
    return script


def _build(settings: ScriptedSettings, context: BuildContext) -> ScriptedDebater:
    script = {}
    if settings.script:
        path = Path(settings.script)
        if not path.is_absolute():
            path = context.config_dir / path
        script = load_script(path)
    return ScriptedDebater(settings, script)


AGENT_TYPE = AgentType("scripted", ScriptedSettings, _build)
