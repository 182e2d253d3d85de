"""Model judges: a log-probability judge and a text judge, both batched.

A task is one judgment of one debate: the final one (whole transcript) or, in stepped
mode, one after each round. The judge is shown what the protocol shows a judge: the
question and the two answers as A and B, the transcript up to that round with quotes
marked verified or not; the source only in the expert-judge protocol; no transcript in
the naive-judge protocol.

- logprob: one forward pass per prompt; P(A), P(B) of the next token after "Answer:".
- text: the judge reasons, then ends with "Answer: X". `samples` replies per order are
  drawn and the verdict is the majority; the probabilities are the vote shares among the
  parseable replies. A reply without a parseable verdict counts for nothing; when no
  reply has one the judgment is stored with probabilities None (unknown), never as right
  or wrong.

Context length: each prompt is checked against the model's context first
(debate.backends.context). Only the expert-judge protocol shows a source; with
`context_policy: truncate_source` it is cut to fit (marked; the span in the order's
meta.source_kept). Any other prompt too long (a transcript past the context) stops the
run with one line naming the model, its limit and the prompt's length (PromptTooLong).

With both_orders the debate is judged with the answers in the shown order and swapped;
the stored probabilities (question's own answer order) are the mean over the orders,
and meta.position_bias is mean P(the answer shown first) - 0.5 (0: no bias).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

from debate.agents.base import OPERATIONAL_SETTINGS, AgentIdentity
from debate.backends.base import Backend, Chat, SamplingSettings
from debate.backends.context import fit_prompt
from debate.backends.prompts import LABELS, TemplateSet, judge_prompt
from debate.view import BlindView, blind_view
from judges.config import JudgeConfig
from judges.records import DebateRecord

VERDICT = re.compile(r"answer\s*[:：]?\s*[*_\"'(\[]*\s*([AB])\b", re.IGNORECASE)


def parse_verdict(text: str) -> int | None:
    """Position (0 = A) named by the last 'Answer: X' in `text`; None if there is none."""
    matches = VERDICT.findall(text or "")
    if not matches:
        return None
    return LABELS.index(matches[-1].upper())


@dataclass(frozen=True)
class JudgeTask:
    debate: DebateRecord
    kind: str  # final | stepped
    after_round: int | None  # None: the whole transcript


@dataclass
class Verdict:
    probabilities: list[float] | None  # question's own answer order
    explanation: str | None
    meta: dict[str, Any]
    seconds: float


def judge_view(debate: DebateRecord, after_round: int | None, order: tuple[int, ...]) -> BlindView:
    """What a judge of this protocol is shown, with the answers in `order`: the one blind
    view (debate.view), the same as a person gets in the web app."""
    return blind_view(debate.facts, after_round=after_round, order=order)


class ModelJudge:
    def __init__(self, config: JudgeConfig, backend: Backend, templates: TemplateSet):
        self.config = config
        self.backend = backend
        self.templates = templates

    @property
    def identity(self) -> AgentIdentity:
        c = self.config
        settings = c.model_dump(mode="json", exclude=OPERATIONAL_SETTINGS)
        settings["template_version"] = self.templates.version
        if self.backend.prompt_format():
            settings["prompt_format"] = self.backend.prompt_format()
        return AgentIdentity(name=c.display_name, kind="model-judge", model_id=c.model,
                             backend=c.backend, settings=settings)

    def orders(self, debate: DebateRecord) -> list[tuple[int, ...]]:
        shown = tuple(debate.answer_order)
        return [shown, tuple(reversed(shown))] if self.config.both_orders else [shown]

    def judge(self, tasks: list[JudgeTask]) -> list[Verdict]:
        """One verdict per task; every prompt of the batch goes to the backend at once."""
        started = time.perf_counter()
        prompts: list[tuple[int, tuple[int, ...], Chat]] = []
        kept: list[dict[str, Any] | None] = []
        new_tokens = self.config.max_new_tokens if self.config.type == "text" else 0
        for i, task in enumerate(tasks):
            for order in self.orders(task.debate):
                view = judge_view(task.debate, task.after_round, order)
                fitted = fit_prompt(
                    self.backend,
                    lambda src, v=view: judge_prompt(self.templates, replace(v, source=src),
                                                     self.config.type),
                    view.source, new_tokens, self.config.context_policy,
                    f"judge (debate {task.debate.id})")
                prompts.append((i, order, fitted.chat))
                kept.append(fitted.kept)
        if self.config.type == "logprob":
            per_prompt = self._logprob([c for _, _, c in prompts])
        else:
            per_prompt = self._text([c for _, _, c in prompts])
        elapsed = time.perf_counter() - started
        per_task = elapsed / max(len(tasks), 1)
        grouped: dict[int, list[tuple[tuple[int, ...], dict[str, Any]]]] = {}
        for (i, order, _), result, span in zip(prompts, per_prompt, kept):
            if span is not None:
                result = dict(result, source_kept=span)
            grouped.setdefault(i, []).append((order, result))
        return [self._combine(grouped.get(i, []), per_task) for i in range(len(tasks))]

    def _logprob(self, chats: list[Chat]) -> list[dict[str, Any]]:
        scores = self.backend.score(chats, list(LABELS))
        return [{"shown_probabilities": s, "explanation": None} for s in scores]

    def _text(self, chats: list[Chat]) -> list[dict[str, Any]]:
        cfg = self.config
        n = cfg.samples
        expanded = [
            Chat(c.messages, c.cache_prefix, c.assistant_prefix, seed=cfg.seed * 7_919 + k + 1)
            for c in chats for k in range(n)
        ]
        gens = self.backend.generate(expanded, SamplingSettings(
            max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
            min_new_tokens=min(cfg.min_new_tokens, cfg.max_new_tokens)))
        out = []
        for j in range(len(chats)):
            samples = [{"text": g.text, "verdict": parse_verdict(g.text)}
                       for g in gens[j * n: (j + 1) * n]]
            votes = [s["verdict"] for s in samples if s["verdict"] is not None]
            probs = None
            explanation = samples[0]["text"] if samples else None
            if votes:
                probs = [votes.count(p) / len(votes) for p in range(len(LABELS))]
                majority = max(range(len(LABELS)), key=lambda p: probs[p])
                explanation = next(s["text"] for s in samples if s["verdict"] == majority)
            out.append({"shown_probabilities": probs, "explanation": explanation,
                        "samples": [{"verdict": None if s["verdict"] is None
                                     else LABELS[s["verdict"]], "text": s["text"]}
                                    for s in samples]})
        return out

    def _combine(self, results: list[tuple[tuple[int, ...], dict[str, Any]]],
                 seconds: float) -> Verdict:
        per_order = []
        in_question_order = []
        first_shown = []
        explanation = None
        for order, r in results:
            shown = r["shown_probabilities"]
            entry: dict[str, Any] = {"shown_order": list(order), "shown_probabilities": shown}
            if "samples" in r:
                entry["samples"] = r["samples"]
            if "source_kept" in r:
                entry["source_kept"] = r["source_kept"]
            per_order.append(entry)
            if shown is None:
                continue
            q = [0.0] * len(order)
            for pos, answer in enumerate(order):
                q[answer] = float(shown[pos])
            in_question_order.append(q)
            first_shown.append(float(shown[0]))
            if explanation is None:
                explanation = r["explanation"]
        if explanation is None and results:
            explanation = results[0][1]["explanation"]
        meta: dict[str, Any] = {"judge_type": self.config.type, "orders": per_order}
        probs = None
        if in_question_order:
            probs = [sum(col) / len(in_question_order) for col in zip(*in_question_order)]
            if len(first_shown) == 2:
                meta["position_bias"] = sum(first_shown) / 2 - 0.5
        else:
            meta["unparseable"] = True
        if self.config.type == "text":
            meta["samples_per_order"] = self.config.samples
        return Verdict(probs, explanation, meta, seconds)
