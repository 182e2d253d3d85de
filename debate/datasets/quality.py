"""QuALITY (Pang et al. 2022): long stories with four-option questions, in the official
JSONL layout (one article a line, its questions in `questions`), e.g. the release's
`QuALITY.v1.0.1.htmlstripped.dev`; a hub copy in the same layout can be named with `hub`.

Filters as Khan et al. 2024 use them for their hard, unambiguous subset, each switchable:
  gutenberg_only             the article's `source` is Project Gutenberg
  hard_only                  at most half of the speed annotators chose the gold answer
                             (`speed_validation`; QuALITY's `difficult` flag when absent)
  untimed_correct_answerable every untimed annotator chose the gold answer and rated the
                             question answerable (`untimed_eval1_answerability` == 1)
  writer_equals_gold         the question writer's label equals the gold label
The distractor is the annotators' best distractor (`untimed_best_distractor`, the most
common vote) by default. `max_per_story` caps the questions kept per article (taken after
a seeded shuffle within the article when `shuffle` is on). The article is the hidden
source: debaters see it, the judge does not.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field

from debate.datasets import register_loader
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

FILTERS = ("gutenberg_only", "hard_only", "untimed_correct_answerable", "writer_equals_gold")


class QualitySettings(SourceSettings):
    distractor: DistractorRule = "best"
    gutenberg_only: bool = True
    hard_only: bool = True
    untimed_correct_answerable: bool = True
    writer_equals_gold: bool = True
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


def untimed_votes(
    q: dict, n_options: int, where: str, prefix: str
) -> tuple[list[int], list[int], list[int]]:
    """Each untimed annotator's answer, answerability rating and best-distractor vote
    (answers and votes 0-based)."""
    runs = q.get("validation") or []
    if not isinstance(runs, list):
        raise DatasetError(f"{where}: {prefix}validation: expected a list")
    answers, answerable, votes = [], [], []
    for i, run in enumerate(runs):
        p = f"{prefix}validation[{i}]."
        answers.append(one_based_label(run, "untimed_answer", n_options, where, p))
        answerable.append(require_int(run, "untimed_eval1_answerability", where, p))
        if run.get("untimed_best_distractor") is not None:
            votes.append(one_based_label(run, "untimed_best_distractor", n_options, where, p))
    return answers, answerable, votes


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
        answers, answerable, votes = untimed_votes(q, len(options), where, prefix)
        accuracy = speed_accuracy(q, gold, where, prefix)
        qid = str(q.get("question_unique_id") or f"{article_id}_{i + 1}")

        if settings.gutenberg_only and source_name.lower() != "gutenberg":
            dropped["gutenberg_only"] += 1
            continue
        if settings.hard_only:
            if accuracy is None:
                if q.get("difficult") is None:
                    raise DatasetError(
                        f"{where}: {prefix}speed_validation: missing (needed by hard_only; "
                        "set hard_only: false to keep every question)"
                    )
                hard = bool(q["difficult"])
            else:
                hard = accuracy <= 0.5
            if not hard:
                dropped["hard_only"] += 1
                continue
        if settings.untimed_correct_answerable:
            if not answers:
                raise DatasetError(
                    f"{where}: {prefix}validation: missing (needed by untimed_correct_answerable)"
                )
            if any(a != gold for a in answers) or any(r != 1 for r in answerable):
                dropped["untimed_correct_answerable"] += 1
                continue
        if settings.writer_equals_gold:
            if writer is None:
                raise DatasetError(
                    f"{where}: {prefix}writer_label: missing (needed by writer_equals_gold)"
                )
            if writer != gold:
                dropped["writer_equals_gold"] += 1
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
            votes=votes,
            metadata={
                "article_id": article_id,
                "set_unique_id": article.get("set_unique_id"),
                "source": source_name or None,
                "author": article.get("author"),
                "speed_accuracy": accuracy,
                "difficult": q.get("difficult"),
                "best_distractor_votes": [v + 1 for v in votes],
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
    if settings.max_per_story is None or len(questions) <= settings.max_per_story:
        return questions
    dropped["max_per_story"] += len(questions) - settings.max_per_story
    if settings.shuffle:
        article = str(questions[0].metadata.get("article_id"))
        questions = list(questions)
        stable_rng(settings.seed, "per-story", article).shuffle(questions)
    return questions[: settings.max_per_story]


def quality_questions(
    rows: Iterable[Record], settings: QualitySettings
) -> tuple[list[Question], Counter]:
    """Every article's filtered questions in file order, and how many each filter dropped.

    The whole input is checked before anything is returned: a bad line anywhere raises
    DatasetError (file:line: field: problem)."""
    out: list[Question] = []
    dropped: Counter = Counter()
    seen: dict[str, str] = {}
    for where, article in rows:
        kept = cap_per_story(article_questions(where, article, settings, dropped), settings, dropped)
        for q in kept:
            if q.id in seen:
                raise DatasetError(
                    f"{where}: question_unique_id: {q.id!r} repeats the one at {seen[q.id]}"
                )
            seen[q.id] = where
        out.extend(kept)
    return out, dropped


def load_quality(settings: QualitySettings, base_dir: Path) -> list[Question]:
    rows = source_records(settings, base_dir, default_hub=None, other_suffix_jsonl=True)
    questions, dropped = quality_questions(rows, settings)
    if dropped:
        log.info("quality: kept %d questions; dropped %s", len(questions), dict(dropped))
    return questions


register_loader(
    "quality",
    QualitySettings,
    load_quality,
    "QuALITY long-story questions (official JSONL); Khan et al. 2024 hard-subset filters, "
    "best-distractor rule, article hidden from the judge",
)
