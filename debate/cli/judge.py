"""`debate judge --experiment NAME --judge JUDGE.yaml`: model judges over finished debates."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from debate.cli.options import db_option
from debate.errors import UserError
from debate.store.db import open_store


@click.command()
@click.option("--experiment", required=True, help="Name of the experiment to judge.")
@click.option("--judge", "judge_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Judge settings (YAML). Default: the experiment config's "
              "`judges:` list.")
@db_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def judge(experiment: str, judge_path: Path | None, db_url: str | None, quiet: bool) -> None:
    """Judge EXPERIMENT's finished debates with a model judge (resumable: a rerun judges
    only what is missing)."""
    from debate.config import read_yaml
    from judges.config import load_judge_file
    from judges.records import experiment_judges, find_experiment_id
    from judges.rule import is_rule_judge, judge_experiment_by_rule, parse_rule_judge
    from judges.run import judge_experiment

    store = open_store(db_url)
    if judge_path is not None:
        data = read_yaml(judge_path, f"--judge: no such file {judge_path}")
        if is_rule_judge(data):
            parse_rule_judge(data, str(judge_path))
            configs = [(data, judge_path.resolve().parent)]
        else:
            configs = [(load_judge_file(judge_path), judge_path.resolve().parent)]
    else:
        exp_id = find_experiment_id(store, experiment)
        if exp_id is None:
            raise UserError(f"--experiment: no experiment named {experiment!r}")
        configs = [(c, Path.cwd()) for c in experiment_judges(store, exp_id)]
        if not configs:
            raise UserError("--judge: missing, and the experiment's config lists no judges")
    for cfg, config_dir in configs:
        if is_rule_judge(cfg):
            summary = judge_experiment_by_rule(store, experiment, cfg)
            click.echo(f"judge {summary['judge']!r} on {experiment!r}: "
                       f"{summary['judgments_written']} judgments written; "
                       f"{summary['seconds']:.1f}s")
            continue
        if quiet:
            summary = judge_experiment(store, experiment, cfg, config_dir=config_dir)
        else:
            with Progress(TextColumn("[bold]judging"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn()) as bar:
                task = bar.add_task("judging", total=None)

                def hook(done: int, total: int, task=task) -> None:
                    bar.update(task, completed=done, total=total)

                summary = judge_experiment(store, experiment, cfg, hook, config_dir=config_dir)
        acc = summary["accuracy"]
        bias = summary["position_bias"]
        click.echo(
            f"judge {summary['judge']!r} on {experiment!r}: {summary['judgments_written']} "
            f"judgments written ({summary['judgments_before']} already stored) over "
            f"{summary['debates']} finished debates; unknown verdicts: {summary['unknown']}; "
            f"accuracy: {'-' if acc is None else f'{acc:.3f}'}; position bias: "
            f"{'-' if bias is None else f'{bias:+.3f}'}; {summary['seconds']:.1f}s"
        )
