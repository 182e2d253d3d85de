"""Preference pairs (prompt, chosen, rejected) from what the store already holds.

Two sources, both read-only over the store:

- **candidates** (best-of-N): a model debater with `best_of: N` stores every candidate
  speech of a turn with its score, the preference judge's probability for the speaker's own
  answer after reading the transcript with that candidate appended (Arnesen et al. 2024's
  signal). The candidates of a turn were sampled from one prompt, the turn's stored `shown`
  text, so each pair has the exact prompt the model saw.
- **rollouts** (paired rollouts): speeches of different debates that were generated from
  the *same* prompt (same `shown` text, hence the same question, side, and transcript so
  far), scored by the final judgments of their debates: the mean probability the judges
  gave the speaker's answer.

The selection rule (`SelectionRule`) picks chosen = highest score, rejected = lowest
(`pairs: best_worst`), or every ordered pair (`pairs: all`), and keeps a pair only when
chosen_score - rejected_score > min_margin. A truncated (over-long) candidate is never
chosen unless `chosen_may_be_truncated` (training on it would teach over-long speeches);
it may be rejected. Nor is a speech chosen whose quotes the source does not contain or
whose text imitates verified-quote marks or leaves a <quote> open, unless
`chosen_must_be_clean` is false (then the judge alone decides, to study exploits). The
completion is the model's raw output (what it generated from the prompt), not the engine's
marked truncation.

Left out and counted (never silently): turns whose candidates tie (no pair clears the
margin), whose every choosable candidate is cut or unclean, failed turns or candidates (no score, empty text, failed status), prompts that
are not the exact model input (an OpenAI-compatible server's prompt is stored as a
readable rendering), and rollouts without a final judgment.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from debate.agents.model import output_flags
from debate.errors import UserError
from debate.quotes import verify_quotes
from debate.store.db import Store
from debate.store.models import Agent, Debate, Experiment, Judgment, Question, Seat, Turn
from debate.vocabulary import JudgmentKind, TurnStatus

Source = Literal["candidates", "rollouts"]


class SelectionRule(BaseModel):
    """How chosen and rejected are picked; stored in the data folder's manifest."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Source] = Field(default_factory=lambda: ["candidates", "rollouts"],
                                  min_length=1)
    pairs: Literal["best_worst", "all"] = "best_worst"
    min_margin: float = Field(default=0.0, ge=0.0, lt=1.0)
    chosen_may_be_truncated: bool = False
    # A chosen speech must not quote what the source does not say, imitate verified-quote
    # marks or leave a <quote> open (false: let the judge alone decide, to study exploits).
    chosen_must_be_clean: bool = True
    judge: str | None = None  # rollouts: only this judge's final judgments (agent name)

    def describe(self) -> str:
        return (
            "score = judge probability of the speaker's own answer (candidates: the "
            "preference judge stored with the candidate; rollouts: mean of the debate's "
            f"final judgments{' by ' + self.judge if self.judge else ''}); "
            f"pairs = {'highest vs lowest score' if self.pairs == 'best_worst' else 'every pair'}"
            f" per prompt, kept when chosen - rejected > {self.min_margin}; truncated "
            f"candidates {'may' if self.chosen_may_be_truncated else 'are never'} chosen; "
            + ("speeches with unverified quotes or quote-markup tricks are never chosen; "
               if self.chosen_must_be_clean else "")
            + "completion = the model's raw output"
        )


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    source: Source
    experiment: str
    debate_id: int
    turn_id: int
    rejected_debate_id: int
    rejected_turn_id: int
    round: int
    role: str
    protocol: str
    family: str
    side: str  # honest | deceptive: the speaker argued the correct answer or not
    agent: str

    @property
    def margin(self) -> float:
        return self.chosen_score - self.rejected_score

    def record(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["margin"] = round(self.margin, 6)
        return d


@dataclass
class PreferenceData:
    pairs: list[PreferencePair]
    rule: SelectionRule
    experiments: list[str]
    # per source: prompts seen, prompts that gave pairs, ties, failed (+ reasons)
    counts: dict[str, Counter] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "pairs": len(self.pairs),
            "by_source": {src: dict(sorted(c.items())) for src, c in self.counts.items()},
            "by_side": dict(Counter(p.side for p in self.pairs)),
        }


@dataclass
class _Speech:
    """One scored speech generated from a prompt."""

    text: str
    score: float | None
    truncated: bool
    debate_id: int
    turn_id: int
    failure: str | None = None
    unclean: str | None = None  # why it may not be chosen under chosen_must_be_clean


@dataclass
class _TurnInfo:
    turn: Turn
    experiment: str
    protocol: str
    family: str
    side: str
    answer: int | None
    agent: str
    exact_prompt: bool
    source: str | None = None


def _experiment_ids(store: Store, names: list[str]) -> dict[int, str]:
    with store.session() as s:
        rows = dict(s.execute(select(Experiment.name, Experiment.id)
                              .where(Experiment.name.in_(names))).all())
    missing = [n for n in names if n not in rows]
    if missing:
        raise UserError(f"--experiment: no experiment named {missing[0]!r}")
    return {rows[n]: n for n in names}


def _speech_turns(store: Store, exp_names: dict[int, str]) -> list[_TurnInfo]:
    """Speech turns of the experiments' debates, with side, answer and agent."""
    out = []
    with store.session() as s:
        debates = {d.id: d for d in s.scalars(
            select(Debate).where(Debate.experiment_id.in_(exp_names)))}
        if not debates:
            return []
        seats = defaultdict(dict)
        for seat in s.scalars(select(Seat).where(Seat.debate_id.in_(debates))):
            seats[seat.debate_id][seat.role] = seat.answer_index
        correct, sources = {}, {}
        for q in s.scalars(select(Question).where(Question.experiment_id.in_(exp_names))):
            correct[q.id] = q.correct_index
            sources[q.id] = q.document.text if q.document is not None else None
        agents = {a.id: a for a in s.scalars(select(Agent))}
        turns = s.scalars(select(Turn).where(Turn.debate_id.in_(debates), Turn.kind == "speech")
                          .order_by(Turn.debate_id, Turn.step, Turn.role)).all()
        for t in turns:
            d = debates[t.debate_id]
            answer = seats[d.id].get(t.role)
            side = "unknown" if answer is None else (
                "honest" if answer == correct.get(d.question_id) else "deceptive")
            agent = agents.get(t.agent_id)
            family = (d.protocol_spec or {}).get("family", d.protocol)
            out.append(_TurnInfo(
                turn=t, experiment=exp_names[d.experiment_id], protocol=d.protocol,
                family=family, side=side, answer=answer,
                agent=agent.name if agent else "",
                # Only the transformers backend stores the exact text the model read.
                exact_prompt=bool(agent and agent.backend == "transformers" and t.shown),
                source=sources.get(d.question_id),
            ))
            s.expunge(t)
    return out


def _pairs_from(speeches: list[_Speech], rule: SelectionRule) -> tuple[list[tuple[_Speech, _Speech]], str | None]:
    """Chosen/rejected pairs among one prompt's speeches, or the reason there are none."""
    usable = [sp for sp in speeches if sp.failure is None]
    if len(usable) < 2:
        return [], "failed"
    can_choose = [sp for sp in usable if rule.chosen_may_be_truncated or not sp.truncated]
    if not can_choose:
        return [], "truncated"
    if rule.chosen_must_be_clean:
        can_choose = [sp for sp in can_choose if sp.unclean is None]
        if not can_choose:
            return [], "unclean"
    if rule.pairs == "best_worst":
        best = max(can_choose, key=lambda sp: sp.score)
        worst = min(usable, key=lambda sp: sp.score)
        candidates = [(best, worst)]
    else:
        candidates = [(a, b) for a, b in itertools.permutations(usable, 2) if a in can_choose]
    kept = [(a, b) for a, b in candidates
            if a.score - b.score > rule.min_margin and a.text.strip() != b.text.strip()]
    return kept, (None if kept else "tie")


def unclean_reason(text: str, source: str | None) -> str | None:
    """Why a speech may not be chosen: an unverified quote or a quote-markup trick."""
    flags = output_flags(text)
    if flags.get("forged_markup") or flags.get("unclosed_quote"):
        return "markup"
    if any(not c.verified for c in verify_quotes(text, source)):
        return "unverified_quote"
    return None


def _candidate_speeches(info: _TurnInfo) -> list[_Speech]:
    out = []
    for c in info.turn.candidates or []:
        raw = c.get("raw_text", c.get("text")) if isinstance(c, dict) else None
        score = c.get("score") if isinstance(c, dict) else None
        failure = None
        if not isinstance(raw, str) or not raw.strip():
            failure = "empty"
        elif not isinstance(score, int | float):
            failure = "unscored"
        out.append(_Speech(raw if isinstance(raw, str) else "",
                           float(score) if failure is None else None,
                           bool(c.get("truncated")) if isinstance(c, dict) else False,
                           info.turn.debate_id, info.turn.id, failure,
                           unclean_reason(raw, info.source) if failure is None else None))
    return out


def _final_scores(store: Store, debate_ids: list[int], judge: str | None) -> dict[int, list[list[float]]]:
    """Final judgments' probabilities (question's answer order) per debate."""
    out: dict[int, list[list[float]]] = defaultdict(list)
    with store.session() as s:
        q = (select(Judgment.debate_id, Judgment.probabilities)
             .where(Judgment.debate_id.in_(debate_ids), Judgment.kind == JudgmentKind.FINAL,
                    Judgment.probabilities.is_not(None)))
        if judge:
            q = q.join(Agent, Agent.id == Judgment.judge_agent_id).where(Agent.name == judge)
        for debate_id, probs in s.execute(q):
            out[debate_id].append(probs)
    return out


def build_preference_data(store: Store, experiments: list[str],
                          rule: SelectionRule | None = None) -> PreferenceData:
    """Every preference pair the rule finds in the experiments' stored debates."""
    rule = rule or SelectionRule()
    if not experiments:
        raise UserError("--experiment: give at least one experiment")
    exp_names = _experiment_ids(store, experiments)
    infos = _speech_turns(store, exp_names)
    data = PreferenceData([], rule, list(experiments))

    def emit(info: _TurnInfo, source: Source, chosen: _Speech, rejected: _Speech) -> None:
        data.pairs.append(PreferencePair(
            prompt=info.turn.shown, chosen=chosen.text, rejected=rejected.text,
            chosen_score=chosen.score, rejected_score=rejected.score, source=source,
            experiment=info.experiment, debate_id=chosen.debate_id, turn_id=chosen.turn_id,
            rejected_debate_id=rejected.debate_id, rejected_turn_id=rejected.turn_id,
            round=info.turn.round, role=info.turn.role, protocol=info.protocol,
            family=info.family, side=info.side, agent=info.agent,
        ))

    if "candidates" in rule.sources:
        counts = data.counts.setdefault("candidates", Counter())
        for info in infos:
            if len(info.turn.candidates or []) < 2:
                continue
            counts["turns"] += 1
            if not info.exact_prompt:
                counts["left_out_prompt_not_exact"] += 1
                continue
            if info.turn.status == TurnStatus.FAILED:
                counts["left_out_failed"] += 1
                continue
            speeches = _candidate_speeches(info)
            for sp in speeches:
                if sp.failure:
                    counts[f"candidates_{sp.failure}"] += 1
            pairs, why = _pairs_from(speeches, rule)
            if why:
                counts[f"left_out_{why}"] += 1
                continue
            counts["turns_with_pairs"] += 1
            for chosen, rejected in pairs:
                emit(info, "candidates", chosen, rejected)

    if "rollouts" in rule.sources:
        counts = data.counts.setdefault("rollouts", Counter())
        groups: dict[tuple[str, int | None], list[_TurnInfo]] = defaultdict(list)
        for info in infos:
            if info.exact_prompt:
                groups[(info.turn.shown_sha256 or info.turn.shown, info.answer)].append(info)
        shared = {k: v for k, v in groups.items() if len({i.turn.debate_id for i in v}) > 1}
        judged = _final_scores(store, sorted({i.turn.debate_id for v in shared.values()
                                              for i in v}), rule.judge)
        for members in shared.values():
            counts["prompts"] += 1
            speeches = []
            for info in members:
                t = info.turn
                probs = judged.get(t.debate_id)
                failure = None
                if t.status == TurnStatus.FAILED or not t.text.strip():
                    failure = "failed"
                elif info.answer is None:
                    failure = "no_side"
                elif not probs:
                    failure = "unjudged"
                score = (sum(float(p[info.answer]) for p in probs) / len(probs)
                         if failure is None else None)
                raw = (t.meta or {}).get("raw_text", t.text)
                speeches.append(_Speech(raw, score, t.status == TurnStatus.TRUNCATED
                                        or "raw_text" in (t.meta or {}), t.debate_id, t.id,
                                        failure, unclean_reason(raw, info.source)))
                if failure:
                    counts[f"speeches_{failure}"] += 1
            pairs, why = _pairs_from(speeches, rule)
            if why:
                counts[f"left_out_{why}"] += 1
                continue
            counts["prompts_with_pairs"] += 1
            by_turn = {i.turn.id: i for i in members}
            for chosen, rejected in pairs:
                emit(by_turn[chosen.turn_id], "rollouts", chosen, rejected)
    return data
