"""`debate run`: from a config file to stored, finished debates.

`plan_run` checks everything that can be checked without the database (protocol, data
set, agent settings) and writes nothing; `run_experiment` then stores the experiment (or
finds it, to resume) and runs the engine on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from debate.agents.base import Debater
from debate.agents.registry import BuildContext, build_agent, validate_agent_settings
from debate.config import ExperimentConfig
from debate.datasets import load_questions, validate_dataset_settings
from debate.engine import Engine, EngineOptions, RunStats
from debate.errors import ConfigError
from debate.protocols import Protocol
from debate.questions import Question
from debate.store.db import Store
from debate.store.experiments import store_experiment
from debate.store.faults import DEFAULT_RETRY_SECONDS, Reconnect
from debate.store.runs import (
    ActivationTotals,
    activation_totals,
    count_by_status,
    first_errors,
    reset_failed,
)
from debate.vocabulary import DebateStatus


@dataclass
class RunResult:
    experiment_id: int
    created: bool
    stats: RunStats
    counts: dict[str, int]
    reset: int = 0  # failed debates made runnable again at the start
    errors: list[tuple[int, str]] = field(default_factory=list)  # first failed debates
    activations: ActivationTotals | None = None  # captured hidden states, when any


@dataclass(frozen=True)
class RunPlan:
    """A validated config with its questions, ready to be stored and run."""

    cfg: ExperimentConfig
    config_dir: Path
    protocol: Protocol
    questions: list[Question]
    source: str = "config"  # the config file, named in errors


def _agent_specs(cfg: ExperimentConfig) -> list[tuple[str, str, dict | None]]:
    """(seat kind, config field, agent spec) for every seat kind the config fills."""
    if cfg.debater is not None:
        specs = [("honest", "debater", cfg.debater), ("deceptive", "debater", cfg.debater)]
    else:
        specs = [
            ("honest", "honest_debater", cfg.honest_debater),
            ("deceptive", "deceptive_debater", cfg.deceptive_debater),
        ]
    specs.append(("judge", "interactive_judge", cfg.interactive_judge))
    return [s for s in specs if s[2] is not None]


def plan_run(cfg: ExperimentConfig, config_dir: Path, source: str = "config") -> RunPlan:
    """Validate the config's protocol, data set and agent settings; write nothing.

    Errors are ConfigError / DatasetError naming `source` (the config file), the field,
    or the data set's file and line."""
    try:
        protocol = cfg.built_protocol()
        dataset = validate_dataset_settings(cfg.dataset)
        questions = load_questions(dataset, config_dir)
        if not questions:
            raise ConfigError("dataset: the slice selects no questions")
        for q in questions:
            if len(q.answers) != 2:
                raise ConfigError(
                    f"dataset: question {q.id!r} has {len(q.answers)} answers; protocols take "
                    "two (choose a distractor rule in the dataset settings)"
                )
        for _seat, where, spec in _agent_specs(cfg):
            validate_agent_settings(spec, where)
    except ConfigError as exc:
        raise _naming(exc, source) from None
    return RunPlan(cfg, config_dir, protocol, questions, source)


def _naming(exc: ConfigError, source: str) -> ConfigError:
    """The error with the config file in front, if it does not name it yet."""
    message = str(exc)
    return exc if message.startswith(source) else ConfigError(f"{source}: {message}")


def build_seat_agents(
    cfg: ExperimentConfig, context: BuildContext
) -> tuple[dict[str, Debater], list[Debater]]:
    """Agents per seat kind ('honest', 'deceptive', 'judge'), sharing one instance for
    identical settings so self-play loads a model once."""
    built: dict[str, Debater] = {}
    cache: dict[str, Debater] = {}
    for seat, where, spec in _agent_specs(cfg):
        fp = repr(sorted(spec.items()))
        if fp not in cache:
            cache[fp] = build_agent(spec, where, context)
        built[seat] = cache[fp]
    return built, list(cache.values())


def run_experiment(
    store: Store,
    cfg: ExperimentConfig,
    config_dir: Path,
    *,
    plan: RunPlan | None = None,
    worker: str | None = None,
    claim_size: int | None = None,
    lease_seconds: float | None = None,
    show_progress: bool = True,
    stop_after_steps: int | None = None,
    db_retry_seconds: float | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunResult:
    """Store the experiment (or find it, to resume: failed debates are retried) and run
    it to the end. Nothing is written if the config, data set or agents are refused."""
    plan = plan or plan_run(cfg, config_dir)
    context = BuildContext(config_dir=config_dir, db_url=store.url, seed=cfg.seed)
    try:
        seat_agents, instances = build_seat_agents(cfg, context)
    except ConfigError as exc:
        raise _naming(exc, plan.source) from None
    # The start and the end of a run wait out database outages as the engine does.
    retry = DEFAULT_RETRY_SECONDS if db_retry_seconds is None else db_retry_seconds
    reconnect = Reconnect(store, retry, notify)
    try:
        stored = reconnect.call(
            store_experiment,
            store,
            name=cfg.name,
            config=cfg.model_dump(mode="json"),
            config_hash=cfg.hash(),
            protocol=plan.protocol,
            seed=cfg.seed,
            questions=plan.questions,
            both_orders=cfg.both_orders,
            identities={seat: agent.identity for seat, agent in seat_agents.items()},
            config_dir=config_dir,
        )
        exp_id = stored.id
        reset = 0 if stored.created else reconnect.call(reset_failed, store, exp_id)
        agents_by_id = {stored.agent_ids[k]: a for k, a in seat_agents.items()}
        options = EngineOptions(stop_after_steps=stop_after_steps, db_retry_seconds=retry,
                                notify=notify)
        if worker:
            options.worker = worker
        if claim_size:
            options.claim_size = claim_size
        if lease_seconds:
            options.lease_seconds = lease_seconds
        if show_progress:
            stats = _run_with_progress(store, cfg.name, exp_id, agents_by_id, options)
        else:
            stats = Engine(store, agents_by_id, options).run(exp_id)
        totals = reconnect.call(activation_totals, store, exp_id)
        return RunResult(exp_id, stored.created, stats,
                         reconnect.call(count_by_status, store, exp_id), reset,
                         reconnect.call(first_errors, store, exp_id),
                         totals if totals.vectors else None)
    finally:
        for a in instances:
            a.close()


def _run_with_progress(
    store: Store, name: str, exp_id: int, agents: dict[int, Debater], options: EngineOptions
) -> RunStats:
    counts = count_by_status(store, exp_id)
    total = sum(counts.values())
    already = counts.get(DebateStatus.DONE, 0) + counts.get(DebateStatus.WAITING_HUMAN, 0)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("debates · {task.fields[rate]:.0f} turns/s"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(name, total=total, completed=already, rate=0.0)

        def hook(stats: RunStats, _active: int) -> None:
            bar.update(
                task,
                completed=already + stats.debates_done + stats.debates_failed
                + stats.debates_waiting,
                rate=stats.turns_per_second,
            )

        return Engine(store, agents, options, hook).run(exp_id)
