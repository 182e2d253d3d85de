"""Turning a multiple-choice question into a two-answer one: the correct answer plus a
distractor chosen by a configurable rule, recorded on every question.

Rules (a loader accepts those its data set supports):
  best    the annotators' best distractor: QuALITY's `untimed_best_distractor`, the most
          common vote (votes for the gold answer are ignored; ties go to the lower option)
  first   the first incorrect option in the file's order
  random  an incorrect option drawn at random, seeded by (seed, question id), so the choice
          does not depend on which other questions are loaded or in what order

The two answers are then placed by a seeded coin flip on (seed, question id), so that the
correct answer is not always first; the engine shows them in its own random order anyway.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Any, Literal

from debate.questions import Question

DistractorRule = Literal["best", "first", "random"]
ClosedRule = Literal["first", "random"]


def stable_rng(seed: int, purpose: str, question_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{purpose}\x00{question_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def best_voted(votes: list[int], correct: int) -> int | None:
    """The most common vote that is not the correct option; ties go to the lower option."""
    counts = Counter(v for v in votes if v != correct)
    if not counts:
        return None
    top = max(counts.values())
    return min(option for option, n in counts.items() if n == top)


def choose_distractor(
    rule: str,
    options: list[str],
    correct: int,
    *,
    seed: int,
    question_id: str,
    votes: list[int] | None = None,
) -> int | None:
    """The 0-based option to use as the distractor, or None when the rule finds none
    (`best` with no vote for an incorrect option). Options whose text equals the correct
    answer's are never chosen."""
    same = options[correct].strip().casefold()
    incorrect = [i for i, t in enumerate(options) if i != correct and t.strip().casefold() != same]
    if not incorrect:
        return None
    if rule == "best":
        best = best_voted(votes or [], correct)
        return best if best in incorrect else None
    if rule == "first":
        return incorrect[0]
    if rule == "random":
        return stable_rng(seed, "distractor", question_id).choice(incorrect)
    raise ValueError(f"distractor: unknown rule {rule!r}")


def place_pair(
    correct: str, distractor: str, *, seed: int, question_id: str
) -> tuple[tuple[str, str], int]:
    """The two answers in a seeded coin-flip order, and the index of the correct one."""
    if stable_rng(seed, "order", question_id).random() < 0.5:
        return (correct, distractor), 0
    return (distractor, correct), 1


def rule_metadata(rule: str, seed: int, distractor_option: Any = None) -> dict[str, Any]:
    """What every question records about how its distractor was chosen; `distractor_option`
    is the chosen option's label in the source (a letter, a number, a column name)."""
    meta: dict[str, Any] = {"distractor_rule": rule}
    if rule == "random":
        meta["distractor_seed"] = seed
    if distractor_option is not None:
        meta["distractor_option"] = distractor_option
    return meta


def two_answer_question(
    *,
    qid: str,
    question: str,
    options: list[str],
    correct: int,
    labels: list[Any],
    rule: str,
    seed: int,
    dataset: str,
    where: str,
    source: str | None = None,
    source_title: str | None = None,
    metadata: dict[str, Any] | None = None,
    votes: list[int] | None = None,
) -> Question | None:
    """A two-answer Question from a multiple-choice one, or None when the rule finds no
    distractor (for `first`/`random` that means every option repeats the correct one)."""
    chosen = choose_distractor(rule, options, correct, seed=seed, question_id=qid, votes=votes)
    if chosen is None:
        return None
    answers, correct_index = place_pair(options[correct], options[chosen], seed=seed, question_id=qid)
    given = {k: v for k, v in (metadata or {}).items() if v is not None}
    meta = {**given, **rule_metadata(rule, seed, labels[chosen])}
    meta["correct_option"] = labels[correct]
    meta["n_options"] = len(options)
    meta["where"] = where
    return Question(
        id=qid,
        question=question,
        answers=answers,
        correct_index=correct_index,
        source=source,
        source_title=source_title,
        dataset=dataset,
        metadata=meta,
    )
