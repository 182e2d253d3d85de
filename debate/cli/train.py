"""`debate train`: preference data from stored debates, DPO training, the self-play loop."""

from __future__ import annotations

import math
from pathlib import Path

import click

from debate.cli.options import db_option
from debate.store.db import open_store


@click.group()
def train() -> None:
    """Train debaters to win: preference data, DPO, self-play rounds (Arnesen et al. 2024)."""


@train.command("data")
@click.option("--experiment", "experiments", multiple=True, required=True,
              help="Experiment to read (repeatable: rollouts pair speeches across them).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write: pairs.jsonl, dataset/, manifest.json.")
@click.option("--source", "sources", multiple=True, type=click.Choice(["candidates", "rollouts"]),
              help="Where pairs come from (default: both).")
@click.option("--pairs", type=click.Choice(["best_worst", "all"]), default="best_worst",
              show_default=True, help="Highest vs lowest score per prompt, or every pair.")
@click.option("--min-margin", type=float, default=0.0, show_default=True,
              help="Keep a pair only when chosen score - rejected score exceeds this.")
@click.option("--chosen-may-be-truncated", is_flag=True,
              help="Let an over-long (cut) candidate be chosen.")
@click.option("--allow-unclean-chosen", is_flag=True,
              help="Let a speech with an unverified quote or quote-markup trick be chosen.")
@click.option("--judge", default=None, help="Rollouts: only this judge's final judgments.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@db_option
def data(experiments: tuple[str, ...], out: Path, sources: tuple[str, ...], pairs: str,
         min_margin: float, chosen_may_be_truncated: bool, allow_unclean_chosen: bool,
         judge: str | None, force: bool, db_url: str | None) -> None:
    """Chosen/rejected speech pairs with their exact prompts (TRL DPO layout)."""
    from pydantic import ValidationError

    from debate.errors import UserError
    from debate.training.pairs_io import write_preference_dir
    from debate.training.preferences import SelectionRule, build_preference_data
    from debate.validation import describe_validation_error

    try:
        rule = SelectionRule(sources=list(sources) or ["candidates", "rollouts"], pairs=pairs,
                             min_margin=min_margin,
                             chosen_may_be_truncated=chosen_may_be_truncated,
                             chosen_must_be_clean=not allow_unclean_chosen, judge=judge)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, SelectionRule, option=True)) from None
    store = open_store(db_url)
    result = build_preference_data(store, list(experiments), rule)
    write_preference_dir(result, out, force=force)
    summary = result.summary()
    sides = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_side"].items()))
    click.echo(f"{summary['pairs']} preference pairs written to {out}"
               + (f" (speaker {sides})" if sides else ""))
    click.echo(f"rule: {rule.describe()}")
    for src, counts in summary["by_source"].items():
        parts = ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing found"
        click.echo(f"  {src}: {parts}")


@train.command("dpo")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="A folder written by `debate train data`.")
@click.option("--model", required=True, help="Base model: hub id or local directory.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoint folder (rerun the same command to resume).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="DPO settings (YAML); defaults otherwise.")
@click.option("--lora", is_flag=True, help="Train a LoRA adapter (PEFT) instead of all weights.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def dpo(data_dir: Path, model: str, out: Path, config_path: Path | None, lora: bool,
        quiet: bool) -> None:
    """Direct Preference Optimisation with TRL; resumable from the last checkpoint."""
    from debate.training.dpo import train_dpo
    from debate.training.settings import LoraSettings, load_dpo_settings

    settings = load_dpo_settings(config_path)
    if lora and settings.lora is None:
        settings = settings.model_copy(update={"lora": LoraSettings()})
    result = train_dpo(data_dir, model, out, settings, show_progress=not quiet,
                       log=None if quiet else click.echo)
    if result.already_done:
        click.echo(f"{out} already holds this training ({result.steps} steps); nothing to do")
        return
    kind = ("LoRA adapter" if result.adapter else
            "merged LoRA weights" if result.merged else "full weights")
    last = f"{result.losses[-1][1]:.4f}" if result.losses else "-"
    per_step = f"{result.seconds_per_step:.3f}s" if result.seconds_per_step else "-"
    click.echo(f"trained {result.steps} steps ({kind}); last logged loss {last}; {per_step} per "
               f"step{'; resumed from ' + result.resumed_from if result.resumed_from else ''}")
    click.echo(f"use it as a debater with `type: model, model: {out}`")


@train.command("loop")
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--quiet", is_flag=True, help="No progress bars.")
def loop(config_path: Path, db_url: str | None, quiet: bool) -> None:
    """Rounds of self-play -> preference data -> DPO -> new debater (resumable)."""
    from rich.console import Console
    from rich.table import Table

    from debate.backends.settings import release_backend
    from debate.training.loop import check_loop, run_loop
    from debate.training.loop_config import load_loop_config
    from debate.training.report import REPORT_COLUMNS
    from judges.config import parse_judge_config
    from judges.run import build_judge, judge_experiment

    cfg, dpo_settings = load_loop_config(config_path)
    config_dir = config_path.resolve().parent
    judge_cfg = parse_judge_config(cfg.judge, f"{config_path}: judge")
    check_loop(cfg, config_dir, str(config_path))
    store = open_store(db_url)
    judge_model = build_judge(judge_cfg, config_dir)

    def judge_fn(store_, experiment: str) -> dict:
        return judge_experiment(store_, experiment, cfg.judge, config_dir=config_dir,
                                judge=judge_model)

    try:
        report = run_loop(store, cfg, dpo_settings, config_dir, judge_fn,
                          log=(lambda _m: None) if quiet else click.echo,
                          show_progress=not quiet, source=str(config_path))
    finally:
        release_backend(judge_model.backend)
    table = Table(title=f"{cfg.name}: judge accuracy and exploit counts by training round")
    frame = report.frame()
    for col, heading in REPORT_COLUMNS:
        names = col in ("track", "agent")
        table.add_column(heading, justify="left" if names else "right", no_wrap=names)
    for _, row in frame.iterrows():
        table.add_row(*[_cell(row.get(c)) for c, _ in REPORT_COLUMNS])
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
    click.echo(f"report: {report.out / 'report.csv'}, plot: "
               f"{report.out / 'accuracy_by_round.png'}")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))   # counts that pandas made floats (a column with gaps)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)
