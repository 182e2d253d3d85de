"""`debate run`: from a config file to stored, finished debates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from debate.agents.base import Debater
from debate.agents.registry import BuildContext, build_agent
from debate.config import ExperimentConfig
from debate.datasets import load_questions, validate_dataset_settings
from debate.engine import Engine, EngineOptions, RunStats
from debate.errors import ConfigError
from debate.store.db import Store
from debate.store.experiments import SeatAgents, agent_id, create_experiment
from debate.store.runs import count_by_status, reset_failed


@dataclass
class RunResult:
    experiment_id: int
    created: bool
    stats: RunStats
    counts: dict[str, int]


def build_seat_agents(
    cfg: ExperimentConfig, context: BuildContext
) -> tuple[dict[str, Debater], list[Debater]]:
    """Agents per seat kind ('honest', 'deceptive', 'judge'), sharing one instance for
    identical settings so self-play loads a model once."""
    built: dict[str, Debater] = {}
    cache: dict[str, Debater] = {}

    def make(key: str, spec: dict | None, where: str) -> None:
        if spec is None:
            return
        fp = repr(sorted(spec.items()))
        if fp not in cache:
            cache[fp] = build_agent(spec, where, context)
        built[key] = cache[fp]

    if cfg.debater is not None:
        make("honest", cfg.debater, "debater")
        make("deceptive", cfg.debater, "debater")
    make("honest", cfg.honest_debater, "honest_debater")
    make("deceptive", cfg.deceptive_debater, "deceptive_debater")
    make("judge", cfg.interactive_judge, "interactive_judge")
    return built, list(cache.values())


def run_experiment(
    store: Store,
    cfg: ExperimentConfig,
    config_dir: Path,
    *,
    worker: str | None = None,
    claim_size: int | None = None,
    show_progress: bool = True,
    stop_after_steps: int | None = None,
) -> RunResult:
    """Validate everything, then store the experiment and run it (resuming if stored)."""
    protocol = cfg.built_protocol()
    dataset = validate_dataset_settings(cfg.dataset)
    questions = load_questions(dataset, config_dir)
    if not questions:
        raise ConfigError("dataset: the slice selects no questions")
    for q in questions:
        if len(q.answers) != 2:
            raise ConfigError(
                f"dataset: question {q.id!r} has {len(q.answers)} answers; protocols take two "
                "(choose a distractor rule in the dataset settings)"
            )
    context = BuildContext(config_dir=config_dir, db_url=store.url, seed=cfg.seed)
    seat_agents, instances = build_seat_agents(cfg, context)
    try:
        with store.session() as session:
            ids = {k: agent_id(session, a.identity) for k, a in seat_agents.items()}
        exp_id, created = create_experiment(
            store,
            name=cfg.name,
            config=cfg.model_dump(mode="json"),
            config_hash=cfg.hash(),
            protocol=protocol,
            seed=cfg.seed,
            questions=questions,
            both_orders=cfg.both_orders,
            agents=SeatAgents(ids.get("honest"), ids.get("deceptive"), ids.get("judge")),
        )
        if not created:
            reset_failed(store, exp_id)
        agents_by_id = {ids[k]: a for k, a in seat_agents.items()}
        options = EngineOptions(stop_after_steps=stop_after_steps)
        if worker:
            options.worker = worker
        if claim_size:
            options.claim_size = claim_size
        counts = count_by_status(store, exp_id)
        total = sum(counts.values())
        already = counts.get("done", 0)
        if show_progress:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("debates · {task.fields[rate]:.0f} turns/s"),
                TimeElapsedColumn(),
                transient=False,
            ) as bar:
                task = bar.add_task(cfg.name, total=total, completed=already, rate=0.0)

                def hook(stats: RunStats, _active: int) -> None:
                    bar.update(
                        task,
                        completed=already + stats.debates_done + stats.debates_failed,
                        rate=stats.turns_per_second,
                    )

                stats = Engine(store, agents_by_id, options, hook).run(exp_id)
        else:
            stats = Engine(store, agents_by_id, options).run(exp_id)
        return RunResult(exp_id, created, stats, count_by_status(store, exp_id))
    finally:
        for a in instances:
            a.close()
