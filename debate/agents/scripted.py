"""The scripted / replay debater: arguments read from a file or filled into a template.

Script file (JSONL), one turn per line:
    {"question_id": "q1", "role": "A", "round": 1, "text": "..."}
"role" (a seat: A, B, consultant, judge) may be omitted to match any seat.
A turn not in the script falls back to `template`, formatted with {answer}, {other},
{question}, {round}, {role} and {quote} (the first sentence of the source, when shown).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from debate.agents.base import AgentIdentity, Debater, TurnRequest, TurnResult
from debate.agents.registry import BuildContext, register_agent_type
from debate.errors import ConfigError

DEFAULT_TEMPLATE = (
    "Round {round}: the answer is \"{answer}\". The text says <quote>{quote}</quote>, "
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


def first_sentence(source: str | None, max_words: int = 12) -> str:
    if not source:
        return ""
    words = source.split()[:max_words]
    return " ".join(words)


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
        mine = r.answers[r.my_answer] if r.my_answer is not None else ""
        other = r.answers[1 - r.my_answer] if r.my_answer is not None else ""
        text = self.settings.template.format(
            answer=mine,
            other=other,
            question=r.question,
            round=r.round,
            role=r.role,
            quote=first_sentence(r.source),
        )
        return TurnResult(text=text, template_version="template")


def load_script(path: Path) -> dict[tuple[str, str, int], str]:
    if not path.is_file():
        raise ConfigError(f"script: no such file {path}")
    script: dict[tuple[str, str, int], str] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
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


register_agent_type("scripted", ScriptedSettings, _build)
