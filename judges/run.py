"""Judging an experiment's finished debates with a model judge, resumably.

`judge_experiment` works out which judgments this judge (its agents row, from the model
and settings) still owes: one final judgment per finished debate and, in stepped mode,
one after each round. It judges them in batches and writes each batch in one
transaction, so a killed run keeps what it wrote and a rerun judges only what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from debate.backends.base import BackendError
from debate.backends.prompts import TemplateSet
from debate.backends.settings import build_backend_at, release_backend
from debate.errors import ModelFailure, UserError
from debate.protocols import Protocol
from debate.store.db import Store
from debate.store.experiments import agent_id
from debate.vocabulary import JudgmentKind
from judges.config import JudgeConfig, parse_judge_config
from judges.model import JudgeTask, ModelJudge
from judges.records import (
    DebateRecord,
    JudgmentWrite,
    find_experiment_id,
    finished_debate_ids,
    judged_keys,
    judgments_of,
    load_debates,
    write_judgments,
)

Progress = Callable[[int, int], None]
DEBATES_PER_BATCH = 64


def tasks_for(debate: DebateRecord, stepped: bool) -> list[JudgeTask]:
    tasks = [JudgeTask(debate, JudgmentKind.FINAL, None)]
    if stepped:
        rounds = Protocol.from_dict(debate.protocol_spec).rounds
        tasks += [JudgeTask(debate, JudgmentKind.STEPPED, r) for r in range(1, rounds + 1)]
    return tasks


def build_judge(config: JudgeConfig, config_dir: Path | None = None) -> ModelJudge:
    """The judge, with relative paths (model folder, templates) read from `config_dir`,
    the folder of the judge file or of the experiment's config."""
    base = config_dir or Path.cwd()
    templates_dir = None
    if config.templates is not None:
        p = Path(config.templates).expanduser()
        templates_dir = str(p if p.is_absolute() else base / p)
    templates = TemplateSet.load("judge", templates_dir, "judge.templates")
    backend = build_backend_at(config.backend_settings(), base, "judge")
    return ModelJudge(config, backend, templates)


def judge_experiment(
    store: Store,
    experiment_name: str,
    judge_config: dict[str, Any],
    progress: Progress | None = None,
    *,
    config_dir: Path | None = None,
    judge: ModelJudge | None = None,
) -> dict[str, Any]:
    """Judge every finished debate of the experiment that this judge has not judged yet.

    Returns a summary: judge name and agent id, debates, judgments written now and
    before, unknown verdicts, accuracy and mean P(correct) of the final judgments, mean
    position bias, seconds. `progress(done, total)` is called after each batch.
    """
    config = parse_judge_config(judge_config, "judge")
    exp_id = find_experiment_id(store, experiment_name)
    if exp_id is None:
        raise UserError(f"--experiment: no experiment named {experiment_name!r}")
    own = judge is None
    judge = judge or build_judge(config, config_dir)
    started = time.perf_counter()
    try:
        with store.session() as session:
            judge_id = agent_id(session, judge.identity)
        debate_ids = finished_debate_ids(store, exp_id)
        done = judged_keys(store, judge_id, debate_ids)
        # Without stepped judging, a debate with its final judgment is complete; with it,
        # the rounds owed are known only after loading the debate.
        todo_ids = [d for d in debate_ids if config.stepped or (d, JudgmentKind.FINAL, None) not in done]
        total_tasks = 0
        written = 0
        batches: list[list[JudgeTask]] = []
        for i in range(0, len(todo_ids), DEBATES_PER_BATCH):
            records = load_debates(store, todo_ids[i: i + DEBATES_PER_BATCH])
            tasks = [t for r in records for t in tasks_for(r, config.stepped)
                     if (t.debate.id, t.kind, t.after_round) not in done]
            if tasks:
                batches.append(tasks)
                total_tasks += len(tasks)
        owed = total_tasks
        if progress:
            progress(0, owed)
        for tasks in batches:
            try:
                verdicts = judge.judge(tasks)
            except (BackendError, TemplateError) as exc:
                raise judging_failed(judge, exc, written, owed) from exc
            rows = [
                JudgmentWrite(
                    debate_id=t.debate.id,
                    kind=t.kind,
                    after_round=t.after_round,
                    probabilities=v.probabilities,
                    shown_order=list(t.debate.answer_order),
                    explanation=v.explanation,
                    time_taken_ms=v.seconds * 1000,
                    meta=v.meta,
                )
                for t, v in zip(tasks, verdicts)
            ]
            write_judgments(store, judge_id, rows)
            written += len(rows)
            if progress:
                progress(written, owed)
        return summarise(store, judge, judge_id, debate_ids, written,
                         time.perf_counter() - started)
    finally:
        if own:
            release_backend(judge.backend)


def judging_failed(judge: ModelJudge, exc: Exception, written: int, owed: int) -> ModelFailure:
    """One line for a backend or template failure: what failed, what is kept, and whether
    a rerun can help."""
    if isinstance(exc, TemplateError):
        why = (f"the chat template of {judge.config.model!r} refused the prompt ({exc}); set "
               "chat_template: plain or a template file in the judge config")
        retryable = False
    else:
        why = str(exc)
        retryable = getattr(exc, "retryable", True)
    kept = (f"{written} of {owed} judgments were written and are kept" if written
            else "no judgments were written")
    advice = "rerun to judge the rest" if retryable else "a rerun will not fix this"
    return ModelFailure(f"judge {judge.config.display_name!r}: {why}; {kept}; {advice}",
                        retryable=retryable)


def summarise(store: Store, judge: ModelJudge, judge_id: int, debate_ids: list[int],
              written: int, seconds: float) -> dict[str, Any]:
    rows = judgments_of(store, judge_id, debate_ids)
    finals = [r for r in rows if r["kind"] == JudgmentKind.FINAL]
    known = [r for r in finals if r["probabilities"] is not None]
    p_correct = [float(r["probabilities"][r["correct_index"]]) for r in known]
    biases = [r["meta"].get("position_bias") for r in finals
              if isinstance(r["meta"], dict) and r["meta"].get("position_bias") is not None]
    return {
        "judge": judge.config.display_name,
        "judge_agent_id": judge_id,
        "debates": len(debate_ids),
        "judgments_written": written,
        "judgments_before": len(rows) - written,
        "final_judgments": len(finals),
        "unknown": len(finals) - len(known),
        "accuracy": (sum(p > 0.5 for p in p_correct) / len(p_correct)) if p_correct else None,
        "mean_p_correct": (sum(p_correct) / len(p_correct)) if p_correct else None,
        "position_bias": (sum(biases) / len(biases)) if biases else None,
        "seconds": round(seconds, 3),
    }
