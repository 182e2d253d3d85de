"""Glue for the CLI and the demo: load data and judge, play a table, print it, store it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from debate.errors import UserError
from debate.pixels.data import load_split
from debate.pixels.game import Board, check_k
from debate.pixels.judge import ensure_judge
from debate.pixels.players import MINIMAX_MAX_K, make_player
from debate.pixels.store import store_games
from debate.pixels.table import render_table, run_table
from debate.store.db import open_store


@dataclass
class TableRequest:
    ks: list[int]
    images: int | None = None
    player: str | None = None
    honest: str | None = None
    liar: str | None = None
    rollouts: int = 1000
    judge_path: Path | None = None
    seed: int = 0
    name: str | None = None
    store: bool = True
    db_url: str | None = None
    mnist_dir: Path | None = None


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def run_tables(req: TableRequest, console, store=None) -> list[dict]:
    """Each k in turn: play, print the table, store the debates. Returns the summaries."""
    from rich.progress import Progress

    for k in req.ks:
        if k < 2 or k % 2:
            raise UserError(f"--k: {k} is not a supported number of pixels (an even number >= 2)")
    train, test = load_split(req.mnist_dir)
    if store is None and req.store:
        store = open_store(req.db_url)
    summaries = []
    for k in req.ks:
        default = "minimax" if k <= MINIMAX_MAX_K else "mcts"
        honest_name = req.honest or req.player or default
        liar_name = req.liar or req.player or default
        honest = make_player(honest_name, req.rollouts, req.seed)
        liar = honest if liar_name == honest_name else make_player(liar_name, req.rollouts,
                                                                   req.seed + 1)
        if "minimax" in (honest_name, liar_name) and k > MINIMAX_MAX_K:
            raise UserError(f"--player minimax: exact minimax needs k <= {MINIMAX_MAX_K}, "
                            f"got k={k}; use --player mcts")
        loaded = ensure_judge(k, train, test, req.judge_path, say=console.print)
        data = test.head(req.images)
        board = Board(data, loaded.judge)
        check_k(k, board)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"k={k}: {honest_name} vs {liar_name}", total=len(data))
            def advance(done: int, _total: int, task=task) -> None:
                bar.update(task, completed=done)

            result = run_table(board, k, honest, liar, progress=advance, seed=req.seed)
        summary = result.summary()
        summary["rollouts"] = req.rollouts if "mcts" in (honest_name, liar_name) else None
        summary["judge"] = {"path": str(loaded.path), "train_accuracy_metrics": loaded.metrics}
        console.print(render_table(summary))
        console.print(f"k={k}: {len(data)} images, {len(result.games)} precommit games stored as "
                      f"debates, {summary['seconds']:.1f}s, {result.leaf_evaluations:,} leaf "
                      "judge evaluations" if req.store else
                      f"k={k}: {len(data)} images in {summary['seconds']:.1f}s")
        if req.store and store is not None:
            exp_id, name = store_games(
                store, name=req.name, data=data, image_ids={i: i for i in range(len(data))},
                k=k, games=result.games, honest_name=honest_name, liar_name=liar_name,
                judge_name=f"pixels-judge-{data.name}-k{k}",
                judge_settings={"sha256": _file_digest(loaded.path), "k": k},
                config={"k": k, "images": len(data), "honest": honest_name, "liar": liar_name,
                        "rollouts": summary["rollouts"], "seed": req.seed,
                        "dataset": data.name, "results": summary},
                seed=req.seed,
            )
            console.print(f"stored as experiment {name!r} (id {exp_id}) in {store.url}")
            summary["experiment"] = name
        summaries.append(summary)
    return summaries
