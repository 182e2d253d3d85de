"""QuALITY (Pang et al. 2022): long stories with four-option questions, in the official
JSONL layout (one article a line, its questions in `questions`), e.g. the release's
`QuALITY.v1.0.1.htmlstripped.dev`; a hub copy in the same layout can be named with `hub`.

Filters as Khan et al. 2024 use them for their hard, unambiguous subset, each switchable
(the thresholds are settings too, defaulting to the strict reading):
  gutenberg_only             the article's `source` is Project Gutenberg
  hard_only                  at most `max_speed_accuracy` (0.5) of the speed annotators chose
                             the gold answer (`speed_validation`; QuALITY's `difficult` flag
                             when a question has no speed annotations)
  untimed_correct_answerable at least `min_untimed_accuracy` (1.0: all) of the untimed
                             annotators chose the gold answer, and their mean answerability
                             rating is at most `max_answerability` (1.0: all rated it
                             "single correct answer")
  writer_equals_gold         the question writer's label equals the gold label
  min_context_required       optional: mean `untimed_eval2_context` rating at least this
The distractor is the annotators' best distractor (`untimed_best_distractor`, the most
common vote) by default. `max_per_story` caps the questions kept per story (article id,
across both writer sets), taken after a seeded shuffle within the story when `shuffle` is
on. The article is the hidden source: debaters see it, the judge does not.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from debate.datasets import Loader
from debate.datasets.distractors import DistractorRule, stable_rng, two_answer_question
from debate.datasets.records import (
    Record,
    SourceSettings,
    answer_texts,
    one_based_label,
    require,
    require_int,
    require_list,
    require_text,
    source_records,
)
from debate.errors import DatasetError
from debate.questions import Question

log = logging.getLogger(__name__)


class QualitySettings(SourceSettings):
    distractor: DistractorRule = "best"
    gutenberg_only: bool = True
    hard_only: bool = True
    untimed_correct_answerable: bool = True
    writer_equals_gold: bool = True
    max_speed_accuracy: float = Field(default=0.5, ge=0, le=1)
    min_untimed_accuracy: float = Field(default=1.0, ge=0, le=1)
    max_answerability: float = Field(default=1.0, ge=1, le=3)
    min_context_required: float | None = Field(default=None, ge=1, le=4)
    max_per_story: int | None = Field(default=None, ge=1)


def speed_accuracy(q: dict, gold: int, where: str, prefix: str) -> float | None:
    """The share of speed annotators who chose the gold answer (None: no annotations)."""
    runs = q.get("speed_validation") or []
    if not isinstance(runs, list):
        raise DatasetError(f"{where}: {prefix}speed_validation: expected a list")
    answers = [
        require_int(run, "speed_answer", where, f"{prefix}speed_validation[{i}].")
        for i, run in enumerate(runs)
    ]
    if not answers:
        return None
    return sum(a - 1 == gold for a in answers) / len(answers)


@dataclass
class Untimed:
    """The untimed annotators' answers and best-distractor votes (0-based options) and
    their answerability (1-3) and context-required (1-4) ratings."""

    answers: list[int]
    answerability: list[int]
    context: list[int]
    votes: list[int]

    def accuracy(self, gold: int) -> float:
        return sum(a == gold for a in self.answers) / len(self.answers)


def untimed_annotations(q: dict, n_options: int, where: str, prefix: str) -> Untimed:
    runs = q.get("validation") or []
    if not isinstance(runs, list):
        raise DatasetError(f"{where}: {prefix}validation: expected a list")
    out = Untimed([], [], [], [])
    for i, run in enumerate(runs):
        p = f"{prefix}validation[{i}]."
        out.answers.append(one_based_label(run, "untimed_answer", n_options, where, p))
        out.answerability.append(require_int(run, "untimed_eval1_answerability", where, p))
        if run.get("untimed_eval2_context") is not None:
            out.context.append(require_int(run, "untimed_eval2_context", where, p))
        if run.get("untimed_best_distractor") is not None:
            out.votes.append(one_based_label(run, "untimed_best_distractor", n_options, where, p))
    return out


def mean(values: list[int]) -> float:
    return sum(values) / len(values)


def filtered_out(
    settings: QualitySettings,
    source_name: str,
    q: dict,
    gold: int,
    writer: int | None,
    untimed: Untimed,
    speed: float | None,
    where: str,
    prefix: str,
) -> str | None:
    """The first filter that drops this question, or None when it passes them all."""
    if settings.gutenberg_only and source_name.lower() != "gutenberg":
        return "gutenberg_only"
    if settings.hard_only:
        if speed is None:
            if q.get("difficult") is None:
                raise DatasetError(
                    f"{where}: {prefix}speed_validation: missing (needed by hard_only; "
                    "set hard_only: false to keep every question)"
                )
            hard = bool(q["difficult"])
        else:
            hard = speed <= settings.max_speed_accuracy
        if not hard:
            return "hard_only"
    needs_untimed = settings.untimed_correct_answerable or settings.min_context_required
    if needs_untimed and not untimed.answers:
        raise DatasetError(
            f"{where}: {prefix}validation: missing (needed by untimed_correct_answerable "
            "and min_context_required)"
        )
    if settings.untimed_correct_answerable and (
        untimed.accuracy(gold) < settings.min_untimed_accuracy
        or mean(untimed.answerability) > settings.max_answerability
    ):
        return "untimed_correct_answerable"
    if settings.min_context_required is not None:
        if len(untimed.context) != len(untimed.answers):
            raise DatasetError(
                f"{where}: {prefix}validation: untimed_eval2_context missing (needed by "
                "min_context_required)"
            )
        if mean(untimed.context) < settings.min_context_required:
            return "min_context_required"
    if settings.writer_equals_gold:
        if writer is None:
            raise DatasetError(
                f"{where}: {prefix}writer_label: missing (needed by writer_equals_gold)"
            )
        if writer != gold:
            return "writer_equals_gold"
    return None


def article_questions(
    where: str, article: Any, settings: QualitySettings, dropped: Counter
) -> list[Question]:
    """The questions of one article line that pass the filters."""
    article_id = str(require(article, "article_id", where))
    text = require_text(article, "article", where)
    title = article.get("title")
    source_name = str(article.get("source") or "")
    questions = require_list(article, "questions", where)
    kept: list[Question] = []
    for i, q in enumerate(questions):
        prefix = f"questions[{i}]."
        question_text = require_text(q, "question", where, prefix)
        options = answer_texts(require_list(q, "options", where, prefix, 2), where, prefix + "options")
        gold = one_based_label(q, "gold_label", len(options), where, prefix)
        writer = q.get("writer_label")
        writer = None if writer is None else one_based_label(q, "writer_label", len(options), where, prefix)
        untimed = untimed_annotations(q, len(options), where, prefix)
        accuracy = speed_accuracy(q, gold, where, prefix)
        qid = str(q.get("question_unique_id") or f"{article_id}_{i + 1}")

        reason = filtered_out(settings, source_name, q, gold, writer, untimed, accuracy, where,
                              prefix)
        if reason is not None:
            dropped[reason] += 1
            continue
        if settings.distractor == "best" and not q.get("validation"):
            raise DatasetError(
                f"{where}: {prefix}validation: missing (needed by distractor: best; "
                "use distractor: first or random)"
            )
        made = two_answer_question(
            qid=qid,
            question=question_text,
            options=options,
            correct=gold,
            labels=list(range(1, len(options) + 1)),
            rule=settings.distractor,
            seed=settings.seed,
            dataset="quality",
            where=where,
            source=text,
            source_title=str(title) if title else None,
            votes=untimed.votes,
            metadata={
                "article_id": article_id,
                "set_unique_id": article.get("set_unique_id"),
                "source": source_name or None,
                "author": article.get("author"),
                "speed_accuracy": accuracy,
                "difficult": q.get("difficult"),
                "untimed_accuracy": untimed.accuracy(gold) if untimed.answers else None,
                "best_distractor_votes": [v + 1 for v in untimed.votes],
            },
        )
        if made is None:
            dropped["no_distractor"] += 1
            continue
        kept.append(made)
    return kept


def cap_per_story(
    questions: list[Question], settings: QualitySettings, dropped: Counter
) -> list[Question]:
    """At most `max_per_story` questions per story (article id, so both writer sets of an
    article count together), in file order; chosen by a seeded shuffle within each story
    when `shuffle` is on."""
    cap = settings.max_per_story
    if cap is None:
        return questions
    by_story: dict[str, list[Question]] = {}
    for q in questions:
        by_story.setdefault(str(q.metadata["article_id"]), []).append(q)
    chosen: set[int] = set()
    for article, group in by_story.items():
        if settings.shuffle:
            group = list(group)
            stable_rng(settings.seed, "per-story", article).shuffle(group)
        chosen.update(id(q) for q in group[:cap])
        dropped["max_per_story"] += max(0, len(group) - cap)
    return [q for q in questions if id(q) in chosen]


def quality_questions(
    rows: Iterable[Record], settings: QualitySettings
) -> tuple[list[Question], Counter]:
    """The filtered questions in file order, and how many each filter dropped.

    The whole input is checked before anything is returned: a bad line anywhere raises
    DatasetError (file:line: field: problem)."""
    out: list[Question] = []
    dropped: Counter = Counter()
    seen: dict[str, str] = {}
    for where, article in rows:
        for q in article_questions(where, article, settings, dropped):
            if q.id in seen:
                raise DatasetError(
                    f"{where}: question_unique_id: {q.id!r} repeats the one at {seen[q.id]}"
                )
            seen[q.id] = where
            out.append(q)
    return cap_per_story(out, settings, dropped), dropped


def load_quality(settings: QualitySettings, base_dir: Path) -> list[Question]:
    rows = source_records(settings, base_dir, default_hub=None, other_suffix_jsonl=True)
    questions, dropped = quality_questions(rows, settings)
    if dropped:
        log.info("quality: kept %d questions; dropped %s", len(questions), dict(dropped))
    return questions


LOADER = Loader(
    "quality",
    QualitySettings,
    load_quality,
    "QuALITY long-story questions (official JSONL); Khan et al. 2024 hard-subset filters, "
    "best-distractor rule, article hidden from the judge",
)
