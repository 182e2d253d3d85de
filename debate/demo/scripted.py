"""The demo's first section, `scripted`: scripted debates and consultancies on the bundled
data set.

Runs four experiments on the 20 sample questions with scripted debaters (no model):
a sequential debate in both answer orders, a consultancy (honest and deceptive
consultants, half each), and the two judge baselines (naive: question only; expert:
question and source). The honest debater quotes the sentence that best supports its
answer; the deceptive one quotes what it can find for its side and then "quotes" its own
answer as if the text said it, so the transcripts show both verified and unverified
quotes. Rerunning is safe: experiments of the same name and config are reused (finished
debates are kept, unfinished ones resumed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from debate.config import ExperimentConfig, parse_config
from debate.run import RunResult, run_experiment
from debate.store.db import Store
from debate.store.experiments import find_experiment
from debate.store.models import Debate, Quote, Turn
from debate.vocabulary import DebateStatus

HONEST_TEMPLATE = (
    'Round {round}. The answer is "{answer}". The passage says: <quote>{evidence}</quote> '
    'That supports "{answer}", not "{other}".'
)
DECEPTIVE_TEMPLATE = (
    'Round {round}. The answer is "{answer}". Read this: <quote>{evidence}</quote> '
    "And the passage states it outright: <quote>{answer}</quote>"
)


@dataclass(frozen=True)
class DemoExperiment:
    name: str
    what: str
    config: dict[str, Any]


def _scripted(name: str, template: str) -> dict[str, Any]:
    return {"type": "scripted", "name": name, "template": template}


def demo_experiments() -> list[DemoExperiment]:
    debaters = {
        "honest_debater": _scripted("scripted-honest", HONEST_TEMPLATE),
        "deceptive_debater": _scripted("scripted-deceptive", DECEPTIVE_TEMPLATE),
    }
    sample = {"name": "sample"}
    return [
        DemoExperiment(
            "demo-debate",
            "sequential debate, 3 rounds, both answer orders",
            {"name": "demo-debate", "seed": 1, "dataset": sample,
             "protocol": {"name": "debate", "rounds": 3}, "both_orders": True, **debaters},
        ),
        DemoExperiment(
            "demo-consultancy",
            "consultancy, 2 rounds, honest and deceptive consultants",
            {"name": "demo-consultancy", "seed": 2, "dataset": sample,
             "protocol": {"name": "consultancy", "rounds": 2}, **debaters},
        ),
        DemoExperiment(
            "demo-naive-judge",
            "baseline: the judge reads the question only",
            {"name": "demo-naive-judge", "seed": 3, "dataset": sample,
             "protocol": "naive-judge"},
        ),
        DemoExperiment(
            "demo-expert-judge",
            "baseline: the judge reads the source text",
            {"name": "demo-expert-judge", "seed": 4, "dataset": sample,
             "protocol": "expert-judge"},
        ),
    ]


def free_config(store: Store, config: dict[str, Any]) -> ExperimentConfig:
    """The config under its own name, or, when a different experiment already holds that
    name (a database from an older demo), under the first free `NAME-2`, `NAME-3`..."""
    base = config["name"]
    for attempt in range(1, 100):
        name = base if attempt == 1 else f"{base}-{attempt}"
        cfg = parse_config({**config, "name": name}, f"demo experiment {name}")
        with store.session() as session:
            existing = find_experiment(session, name)
            if existing is None or existing.config_hash == cfg.hash():
                return cfg
    raise RuntimeError(f"no free experiment name for {base}")  # pragma: no cover


@dataclass(frozen=True)
class SectionResult:
    name: str
    what: str
    run: RunResult
    turns: int
    quotes_verified: int
    quotes_unverified: int


def _turn_and_quote_counts(store: Store, experiment_id: int) -> tuple[int, int, int]:
    with store.session() as session:
        turns = session.scalar(
            select(func.count(Turn.id))
            .join(Debate, Turn.debate_id == Debate.id)
            .where(Debate.experiment_id == experiment_id)
        )
        by_flag = dict(
            session.execute(
                select(Quote.verified, func.count(Quote.id))
                .join(Turn, Quote.turn_id == Turn.id)
                .join(Debate, Turn.debate_id == Debate.id)
                .where(Debate.experiment_id == experiment_id)
                .group_by(Quote.verified)
            ).all()
        )
    return turns or 0, by_flag.get(True, 0), by_flag.get(False, 0)


def first_debate_id(store: Store, experiment_id: int) -> int | None:
    with store.session() as session:
        return session.scalar(
            select(func.min(Debate.id)).where(
                Debate.experiment_id == experiment_id, Debate.status == DebateStatus.DONE
            )
        )


def run_section(store: Store, console: Console) -> list[SectionResult]:
    results: list[SectionResult] = []
    for exp in demo_experiments():
        cfg = free_config(store, exp.config)
        run = run_experiment(store, cfg, Path.cwd(), show_progress=console.is_terminal)
        turns, ok, bad = _turn_and_quote_counts(store, run.experiment_id)
        results.append(SectionResult(cfg.name, exp.what, run, turns, ok, bad))
    return results


def results_table(results: list[SectionResult]) -> Table:
    table = Table(title="Scripted debates on the bundled sample (20 questions)",
                  title_justify="left")
    for col, justify in [("experiment", "left"), ("what", "left"), ("this run", "left"),
                         ("debates", "right"), ("turns", "right"),
                         ("quotes \u2713/\u2717", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        total = sum(r.run.counts.values())
        done = r.run.counts.get(DebateStatus.DONE, 0)
        if r.run.created:
            did = "created"
        elif r.run.stats.turns:
            did = f"resumed (+{r.run.stats.turns} turns)"
        else:
            did = "already done"
        table.add_row(
            Text(r.name), Text(r.what), Text(did), Text(f"{done}/{total}"), Text(str(r.turns)),
            Text(f"{r.quotes_verified}/{r.quotes_unverified}"),
        )
    return table


def run(store: Store, console: Console) -> None:
    """Demo section: run (or resume) the scripted experiments, say what was done and what
    to open next."""
    console.rule("Scripted debates and consultancies")
    results = run_section(store, console)
    console.print(results_table(results))
    failed = {r.name: r.run.counts[DebateStatus.FAILED] for r in results
              if r.run.counts.get(DebateStatus.FAILED)}
    for name, n in failed.items():
        console.print(Text(f"{name}: {n} debates failed; rerun `debate demo` to retry them",
                           style="red"))
    debate = next(r for r in results if r.name.startswith("demo-debate"))
    consult = next(r for r in results if r.name.startswith("demo-consultancy"))
    db = "" if store.url == "sqlite:///debate.db" else f" --db {store.url}"
    commands: list[tuple[str, str]] = []
    for r, what in ((debate, "a debate"), (consult, "a consultancy")):
        first = first_debate_id(store, r.run.experiment_id)
        if first is not None:
            commands.append((f"debate show {first}{db}", f"{what}, as its judge sees it"))
    commands += [
        (f"debate list{db}", "every experiment with its counts"),
        (f"debate export --format jsonl --out export/ --experiment {debate.name}{db}",
         "debates, turns, quotes, judgments as files"),
        (f"debate serve{db}", "judge these debates in the browser"),
        (f"debate analyze{db}", "accuracy by protocol and judge, once judged"),
    ]
    width = max(len(c) for c, _ in commands)
    console.print(Text("Open next:", style="bold"))
    for command, comment in commands:
        console.print(Text(f"  {command.ljust(width)}  # {comment}"), soft_wrap=True)
