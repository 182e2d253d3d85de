"""The model debater: a language model behind a backend, prompted from template files.

Config (an agent entry; backend settings as in debate.backends.settings):

    debater:
      type: model
      model: Qwen/Qwen2.5-0.5B-Instruct
      temperature: 0.7
      best_of: 4               # sample 4, keep the one a preference judge likes best
      max_resamples: 2         # word limits: resample this often, then truncate (marked)
      templates: my_templates/ # optional: replaces built-in template files of the same name
      activations:             # transformers backend only: hidden states stored per turn
        layers: [0.5, -1]      # (see debate.backends.capture)
        positions: [generated_mean, prompt_last]
        dtype: float16

Every request of an engine step goes to the backend in one batched call. Word limits (the
request's: the protocol's, or the agent's own tighter `max_words`) are
enforced by resampling a turn that is empty, too long or too short, up to
`max_resamples` times, then by truncation that keeps quote tags whole and is marked (the
engine's: it stores the raw text in the turn's meta.raw_text).
Best-of-N: N candidates are sampled and each is scored by a log-probability preference
judge (this model, or `preference_judge`) that sees what the protocol's judge would see
with the candidate appended; the score is the judge's probability for the debater's own
answer. All candidates and their scores are stored with the turn.

Context length: every prompt is checked against the model's context before anything is
generated (debate.backends.context). With `context_policy: truncate_source` (the
default) a source too long for the model is cut, marked in the prompt, and the span kept
is stored in the turn's meta.source_kept; the cut leaves room for the rest of the debate
(up to a quarter of the context) and is kept for the debate's later turns while it fits,
so they share one prefix. Quotes are verified against the full source all the same.
`context_policy: refuse` fails the turn with one line instead (so does a prompt that
does not fit even without its source).

Model output is stored raw. Empty output, unclosed <quote> tags and text imitating
verified-quote marks are recorded in the turn's meta; rendering escapes them. A backend
failure (a server down after its retries) becomes a failed turn; the engine marks the
debate failed and `debate run` retries it on the next run.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from debate.agents.base import (
    OPERATIONAL_SETTINGS,
    AgentIdentity,
    Debater,
    TranscriptTurn,
    TurnRequest,
    TurnResult,
)
from debate.agents.registry import AgentType, BuildContext
from debate.backends.base import (
    Backend,
    BackendError,
    Chat,
    Generation,
    SamplingSettings,
    continuous_unsupported,
)
from debate.backends.capture import ActivationSettings, CaptureSpec, depth, resolve_layers
from debate.backends.context import Fitted, fit_prompt
from debate.backends.prompts import (
    LABELS,
    TemplateSet,
    debater_prompt,
    judge_prompt,
)
from debate.backends.settings import BackendSettings, build_backend_at, release_backend
from debate.errors import UserError
from debate.protocols import BUILTIN
from debate.quotes import count_words, parse_segments, truncate_words
from debate.view import DebateFacts, FactTurn, blind_view
from debate.vocabulary import SeatRole, TurnStatus

# Left out of a model debater's identity: the shared operational settings, what it captures,
# and the generation path. A model judge's identity keeps `generation` and
# `continuous_max_batch_tokens` (they joined this set only when the setting came; leaving
# them out there now would make every stored model judge a new agent).
OPERATIONAL = OPERATIONAL_SETTINGS | {"activations", "generation", "continuous_max_batch_tokens"}
FORGED_MARKUP = re.compile(r"[\u27e6\u27e7\u2713\u2717]|quote-(?:un)?verified|<\s*span\b", re.IGNORECASE)


class ModelDebaterSettings(BackendSettings):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str | None = None
    templates: str | None = None
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.0, gt=0)
    max_new_tokens: int | None = Field(default=None, ge=1)
    min_new_tokens: int = Field(default=0, ge=0)  # benchmarks: fixed-length turns
    tokens_per_word: float = Field(default=2.0, gt=0)
    max_resamples: int = Field(default=2, ge=0)
    best_of: int = Field(default=1, ge=1, le=64)
    preference_judge: BackendSettings | None = None
    activations: ActivationSettings | None = None

    @field_validator("activations")
    @classmethod
    def _capture_needs_transformers(cls, v: ActivationSettings | None,
                                    info: ValidationInfo) -> ActivationSettings | None:
        if v is not None and info.data.get("backend") != "transformers":
            raise PydanticCustomError(
                "activations",
                "the {backend} backend cannot give activations (a server returns text, not "
                "hidden states); capture needs backend: transformers",
                {"backend": info.data.get("backend")})
        return v

    @field_validator("best_of")
    @classmethod
    def _best_of_needs_sampling(cls, v: int, info: ValidationInfo) -> int:
        if v > 1 and info.data.get("temperature", 0.7) == 0:
            raise PydanticCustomError(
                "best_of", "best_of > 1 needs temperature > 0 (greedy candidates are identical)")
        return v

    @model_validator(mode="after")
    def _continuous_needs_greedy(self) -> ModelDebaterSettings:
        if self.generation == "continuous":
            reason = continuous_unsupported(SamplingSettings(
                temperature=self.temperature, repetition_penalty=self.repetition_penalty,
                min_new_tokens=self.min_new_tokens))
            if reason is None and self.activations is not None:
                reason = "activations (captured by hooks on the own generation loop only)"
            if reason:
                raise PydanticCustomError(
                    "generation", "generation: continuous cannot run with {reason}; use "
                    "generation: own or auto", {"reason": reason})
        return self

    def backend_settings(self) -> BackendSettings:
        return BackendSettings(**{k: getattr(self, k) for k in BackendSettings.model_fields})


def _seed(base: int, candidate: int, attempt: int) -> int:
    return (base * 1_000_003 + candidate * 7_919 + attempt * 104_729) % (2**31)


def output_flags(text: str) -> dict[str, Any]:
    """What is odd about a model's raw output (it is stored as it is)."""
    flags: dict[str, Any] = {}
    if not text.strip():
        flags["empty"] = True
    if any(s.kind == "quote" and not s.closed for s in parse_segments(text)):
        flags["unclosed_quote"] = True
    if FORGED_MARKUP.search(text):
        flags["forged_markup"] = True
    return flags


class ModelDebater(Debater):
    def __init__(self, settings: ModelDebaterSettings, backend: Backend, templates: TemplateSet,
                 judge_backend: Backend | None = None, judge_templates: TemplateSet | None = None,
                 capture: CaptureSpec | None = None):
        self.settings = settings
        self.capture = capture
        self.backend = backend
        self.templates = templates
        self.judge_backend = judge_backend or backend
        self.judge_templates = judge_templates or TemplateSet.load("judge")
        # where each source was cut (by its digest), so later turns keep the same cut
        self._cuts: OrderedDict[str, int] = OrderedDict()

    @property
    def identity(self) -> AgentIdentity:
        s = self.settings
        stored = s.model_dump(mode="json", exclude=OPERATIONAL)
        if s.preference_judge is not None:
            stored["preference_judge"] = s.preference_judge.model_dump(
                mode="json", exclude=OPERATIONAL)
        stored["template_version"] = self.templates.version
        if self.backend.prompt_format():
            stored["prompt_format"] = self.backend.prompt_format()
        if self.judge_backend is not self.backend and self.judge_backend.prompt_format():
            stored["preference_judge_prompt_format"] = self.judge_backend.prompt_format()
        return AgentIdentity(
            name=s.name or f"model:{s.model}",
            kind="model",
            model_id=s.model,
            backend=s.backend,
            settings=stored,
        )

    def sampling(self, max_words: int) -> SamplingSettings:
        s = self.settings
        budget = s.max_new_tokens or int(max_words * s.tokens_per_word) + 16
        return SamplingSettings(
            max_new_tokens=budget,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            repetition_penalty=s.repetition_penalty,
            min_new_tokens=min(s.min_new_tokens, budget),
            capture=self.capture,
        )

    # ------------------------------------------------------------------ respond
    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        results: list[TurnResult | None] = [None] * len(requests)
        # Requests with different word limits get different token budgets.
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.limits.max_words, []).append(i)
        for max_words, idx in groups.items():
            batch = [requests[i] for i in idx]
            try:
                out = self._respond_batch(batch, self.sampling(max_words))
            except BackendError as exc:
                out = self._failed(batch, str(exc), exc.retryable)
            except TemplateError as exc:
                out = self._failed(batch, f"the chat template of {self.settings.model!r} "
                                   f"refused the prompt ({exc}); set chat_template: plain or "
                                   "a template file in the debater config", False)
            except UserError as exc:  # found only now (e.g. a prompt over the context)
                out = self._failed(batch, str(exc), False)
            for i, res in zip(idx, out):
                results[i] = res
        return [r for r in results if r is not None]

    def _failed(self, batch: list[TurnRequest], error: str, retryable: bool) -> list[TurnResult]:
        meta = {} if retryable else {"retryable": False}
        return [TurnResult(text="", status=TurnStatus.FAILED, error=error, meta=dict(meta),
                           template_version=self.templates.version) for _ in batch]

    def _respond_batch(self, requests: list[TurnRequest],
                       sampling: SamplingSettings) -> list[TurnResult]:
        fitted = [self._fit(r, sampling) for r in requests]
        prompts = [f.chat for f in fitted]
        n_of = [self.settings.best_of if r.kind == "speech" else 1 for r in requests]
        if any(n > 1 for n in n_of):
            # known from an earlier call: no candidates are generated only to be thrown away
            why = self.judge_backend.scoring_unavailable()
            if why:
                raise BackendError(why, retryable=False)
        # candidate slots: (request index, candidate index)
        slots = [(i, k) for i, n in enumerate(n_of) for k in range(n)]
        chats = [self._chat(prompts[i], requests[i].seed, k, 0) for i, k in slots]
        gens = self.backend.generate(chats, sampling)
        cands: list[dict[str, Any]] = [
            {"gen": g, "attempts": 1, "rejected": []} for g in gens
        ]
        self._resample(requests, prompts, slots, cands, sampling)
        for (i, _), c in zip(slots, cands):
            r = requests[i]
            text = c["gen"].text
            c["raw"] = text
            c["truncated"] = False
            if r.kind in ("speech", "question"):
                cut, was_cut = truncate_words(text, r.limits.max_words)
                if was_cut:
                    c["truncated"] = True
                    text = cut
            c["text"] = text
        if any(n > 1 for n in n_of):
            self._score_candidates(requests, slots, cands)
        results = [self._result(i, r, slots, cands) for i, r in enumerate(requests)]
        for res, f in zip(results, fitted):
            if f.kept is not None:
                res.meta["source_kept"] = f.kept
        return results

    def _fit(self, r: TurnRequest, sampling: SamplingSettings) -> Fitted:
        """This request's chat, fitted to the model's context (see the module doc)."""
        def build(source: str | None) -> Chat:
            return debater_prompt(self.templates, replace(r, source=source), self._family(r),
                                  self._simultaneous(r)).chat

        key = hashlib.sha256((r.source or "").encode()).hexdigest() if r.source else None
        # room for the speeches still to come (each with its heading), so that the cut
        # made now still fits the debate's later turns and they share one prefix
        speakers = 1 if r.role == SeatRole.CONSULTANT else 2
        reserve = (r.rounds - r.round + 1) * speakers * (sampling.max_new_tokens + 16)
        fitted = fit_prompt(self.backend, build, r.source, sampling.max_new_tokens,
                            self.settings.context_policy, "debater", reserve=reserve,
                            hint=self._cuts.get(key) if key else None)
        if key and fitted.kept is not None:
            self._cuts[key] = fitted.kept["end"]
            self._cuts.move_to_end(key)
            while len(self._cuts) > 4096:
                self._cuts.popitem(last=False)
        return fitted

    def _chat(self, chat: Chat, seed: int, candidate: int, attempt: int) -> Chat:
        return Chat(chat.messages, chat.cache_prefix, chat.assistant_prefix,
                    _seed(seed, candidate, attempt))

    @staticmethod
    def _family(r: TurnRequest) -> str:
        p = BUILTIN.get(r.protocol)
        return p.family if p else ("consultancy" if r.role == SeatRole.CONSULTANT else "debate")

    @staticmethod
    def _simultaneous(r: TurnRequest) -> bool:
        p = BUILTIN.get(r.protocol)
        return bool(p and p.simultaneous)

    @staticmethod
    def _violation(r: TurnRequest, text: str) -> str | None:
        if r.kind == "choice":
            return None
        if not text.strip():
            return "empty"
        words = count_words(text)
        if words > r.limits.max_words:
            return f"over {r.limits.max_words} words ({words})"
        if r.kind == "speech" and words < r.limits.min_words:
            return f"under {r.limits.min_words} words ({words})"
        return None

    def _resample(self, requests, prompts, slots, cands, sampling) -> None:
        for attempt in range(1, self.settings.max_resamples + 1):
            redo = [j for j, (i, _) in enumerate(slots)
                    if self._violation(requests[i], cands[j]["gen"].text)]
            if not redo:
                return
            chats = [
                self._chat(prompts[slots[j][0]], requests[slots[j][0]].seed, slots[j][1],
                           attempt)
                for j in redo
            ]
            # Greedy decoding would repeat itself: resample at least a little.
            resampling = sampling if not sampling.greedy else SamplingSettings(
                **{**sampling.__dict__, "temperature": 0.7})
            for j, gen in zip(redo, self.backend.generate(chats, resampling)):
                old = cands[j]["gen"]
                cands[j]["rejected"].append(
                    {"text": old.text, "reason": self._violation(requests[slots[j][0]], old.text)}
                )
                cands[j]["gen"] = gen
                cands[j]["attempts"] += 1

    def _score_candidates(self, requests, slots, cands) -> None:
        todo = [j for j, (i, _) in enumerate(slots) if requests[i].kind == "speech"
                and requests[i].my_answer is not None]
        chats = []
        for j in todo:
            r = requests[slots[j][0]]
            p = BUILTIN.get(r.protocol)
            # The preference judge reads the blind view a real judge would get after
            # this turn: the transcript so far plus the candidate (not stored yet, so
            # its quotes are verified now; a verified quote shows the source's words).
            turns = tuple(FactTurn(t.role, t.round, t.kind, t.text, None)
                          for t in (*r.transcript,
                                    TranscriptTurn(r.role, r.round, r.kind, cands[j]["text"])))
            order = tuple(range(len(r.answers)))
            facts = DebateFacts(
                debate_id=r.debate_id, protocol=r.protocol, family=self._family(r),
                rounds=r.rounds, judge_sees_source=bool(p and p.judge_sees_source),
                question=r.question, answers=tuple(r.answers), answer_order=order,
                seats=(), turns=turns, source=r.source, source_title=r.source_title,
            )
            view = blind_view(facts, after_round=r.round)
            policy = (self.settings.preference_judge or self.settings).context_policy
            chats.append(fit_prompt(
                self.judge_backend,
                lambda src, v=view: judge_prompt(self.judge_templates, replace(v, source=src),
                                                 "logprob"),
                view.source, 0, policy, "debater.preference_judge").chat)
        scores = self.judge_backend.score(chats, list(LABELS)) if chats else []
        for j, probs in zip(todo, scores):
            mine = requests[slots[j][0]].my_answer
            cands[j]["score"] = None if probs is None else float(probs[mine])

    def _result(self, i: int, r: TurnRequest, slots, cands) -> TurnResult:
        mine = [cands[j] for j, (ri, _) in enumerate(slots) if ri == i]
        best = max(range(len(mine)), key=lambda k: (
            mine[k].get("score") is not None, mine[k].get("score") or 0.0,
            not mine[k]["truncated"], -k))
        chosen = mine[best]
        gen: Generation = chosen["gen"]
        meta: dict[str, Any] = {"finish_reason": gen.finish_reason, "attempts": chosen["attempts"]}
        meta.update(output_flags(chosen["raw"]))
        meta.update({k: v for k, v in gen.meta.items() if k == "prefix_reused_tokens"})
        if chosen["rejected"]:
            meta["resampled"] = chosen["rejected"]
        # A speech over the limit goes out raw: the engine cuts it with the same
        # truncate_words (marked, tags kept whole) and keeps the raw text in meta.raw_text.
        # Other turn kinds are not cut by the engine, so they are cut here.
        text, status = chosen["raw"], TurnStatus.OK
        if chosen["truncated"] and r.kind != "speech":
            text, status = chosen["text"], TurnStatus.TRUNCATED
            meta["raw_text"] = chosen["raw"]
        if r.kind == "choice":
            m = re.search(r"answer\s*[:\-]?\s*\(?([AB])\b", chosen["raw"], re.IGNORECASE)
            if m:
                meta["choice"] = LABELS.index(m.group(1).upper())
        candidates = None
        if len(mine) > 1:
            candidates = [
                {"text": c["text"], "raw_text": c["raw"], "score": c.get("score"),
                 "chosen": k == best, "attempts": c["attempts"], "truncated": c["truncated"],
                 "completion_tokens": c["gen"].completion_tokens}
                for k, c in enumerate(mine)
            ]
        return TurnResult(
            text=text,
            status=status,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=sum(c["gen"].completion_tokens for c in mine),
            shown=gen.prompt,
            template_version=self.templates.version,
            candidates=candidates,
            meta=meta,
            activations=gen.activations,
        )

    def close(self) -> None:
        release_backend(self.backend)
        if self.judge_backend is not self.backend:
            release_backend(self.judge_backend)


def _build(settings: ModelDebaterSettings, context: BuildContext) -> ModelDebater:
    templates_dir = None
    if settings.templates:
        p = Path(settings.templates).expanduser()
        templates_dir = p if p.is_absolute() else context.config_dir / p
    templates = TemplateSet.load("debater", templates_dir, "debater.templates")
    judge_templates = TemplateSet.load("judge", templates_dir if templates_dir and (
        templates_dir / "judge").is_dir() else None, "debater.templates")
    backend = build_backend_at(settings.backend_settings(), context.config_dir, "debater")
    judge_backend = None
    if settings.preference_judge is not None:
        judge_backend = build_backend_at(settings.preference_judge, context.config_dir,
                                         "debater.preference_judge")
    capture = None
    if settings.activations is not None:
        capture = resolve_layers(settings.activations, depth(backend.model), "debater")
    return ModelDebater(settings, backend, templates, judge_backend, judge_templates, capture)


AGENT_TYPE = AgentType("model", ModelDebaterSettings, _build)
