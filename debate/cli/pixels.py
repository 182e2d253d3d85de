"""`debate pixels ...`: image debate on the digits data set (Irving et al. 2018)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from debate.cli.options import db_option
from debate.errors import UserError

mnist_option = click.option(
    "--mnist", "mnist_dir", type=click.Path(path_type=Path), default=None,
    help="Directory with MNIST IDX files (train-images-idx3-ubyte, ...); default: digits.")
threads_option = click.option("--threads", default=1, show_default=True,
                              help="Torch CPU threads.")


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise UserError(f"--threads: must be >= 1, got {n}")
    torch.set_num_threads(n)


@click.group()
def pixels() -> None:
    """Image debate: a sparse judge, MCTS/minimax debaters, the paper's Table 2."""


@pixels.command("train-judge")
@click.option("--k", type=int, default=4, show_default=True, help="Pixels the judge sees.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save the weights (default: the cache, ~/.cache/debate/pixels/).")
@click.option("--steps", type=int, default=3000, show_default=True)
@click.option("--hidden", type=int, default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@mnist_option
@threads_option
def train_judge_cmd(k: int, out: Path | None, steps: int, hidden: int, seed: int,
                    mnist_dir: Path | None, threads: int) -> None:
    """Train the sparse judge on random sets of K nonzero pixels; save weights and metrics."""
    from debate.pixels.data import load_split
    from debate.pixels.judge import TrainSettings, default_judge_path, save_judge, train_judge

    if k < 1:
        raise UserError(f"--k: must be >= 1, got {k}")
    if steps < 1 or hidden < 1:
        raise UserError("--steps/--hidden: must be >= 1")
    _threads(threads)
    train, test = load_split(mnist_dir)
    judge, metrics = train_judge(train, test, TrainSettings(k=k, steps=steps, hidden=hidden,
                                                            seed=seed))
    path = save_judge(judge, metrics, out or default_judge_path(train.name, k), train.shape)
    click.echo(f"judge for k={k} on {train.name}: test accuracy {metrics['test_accuracy']:.1%} on "
               f"{k} random nonzero pixels ({metrics['test_images']} images x "
               f"{metrics['eval_masks_per_image']} masks), trained in {metrics['train_seconds']}s")
    click.echo(f"saved {path} and {path.with_suffix('.json')}")


@pixels.command("table")
@click.option("--k", "ks", type=int, multiple=True, required=True,
              help="Pixels per debate; several allowed: --k 4 6.")
@click.argument("more_ks", nargs=-1, type=int)
@click.option("--images", type=int, default=None, help="Play the first N test images (default all).")
@click.option("--player", default=None, help="minimax | mcts | greedy, both sides "
              "(default: minimax for k <= 4, else mcts).")
@click.option("--honest", default=None, help="Player for the honest side (mixes).")
@click.option("--liar", default=None, help="Player for the liar (mixes).")
@click.option("--rollouts", type=int, default=1000, show_default=True, help="MCTS rollouts per move.")
@click.option("--judge", "judge_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Judge weights (one k only; default: the cached judge).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", default=None, help="Experiment name (one k only).")
@click.option("--no-store", is_flag=True, help="Do not store the debates in the database.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table figures as JSON.")
@db_option
@mnist_option
@threads_option
def table_cmd(ks: tuple[int, ...], more_ks: tuple[int, ...], images: int | None,
              player: str | None, honest: str | None, liar: str | None, rollouts: int,
              judge_path: Path | None, seed: int, name: str | None, no_store: bool,
              json_out: Path | None, db_url: str | None, mnist_dir: Path | None,
              threads: int) -> None:
    """Play the debates of the paper's Table 2 and print it (--k 4 6 for both tables)."""
    from rich.console import Console

    from debate.pixels.runner import TableRequest, run_tables

    all_ks = list(ks) + list(more_ks)
    if (judge_path or name) and len(all_ks) > 1:
        raise UserError("--judge/--name: give a single --k with them")
    if images is not None and images < 1:
        raise UserError(f"--images: must be >= 1, got {images}")
    _threads(threads)
    console = Console()
    summaries = run_tables(
        TableRequest(ks=all_ks, images=images, player=player, honest=honest, liar=liar,
                     rollouts=rollouts, judge_path=judge_path, seed=seed, name=name,
                     store=not no_store, db_url=db_url, mnist_dir=mnist_dir),
        console,
    )
    if json_out is not None:
        json_out.write_text(json.dumps(summaries, indent=2) + "\n")
        console.print(f"figures written to {json_out}")
