"""Judging a tournament's games between rounds: rule-based and model judges alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from debate.backends.settings import release_backend
from debate.store.db import Store
from debate.store.tournaments import StoredGame
from debate.tournaments.run import JudgeGames
from judges.config import parse_judge_config
from judges.rule import is_rule_judge, judge_experiments_by_rule
from judges.run import build_judge, judge_experiment


def judge_games_with(specs: list[dict[str, Any]], config_dir: Path,
                     report: Any = None) -> JudgeGames:
    """A callback for run_tournament that judges the finished debates of the given games
    with every judge in `specs` (resumable: what a judge already judged is skipped).
    `report(summary)` is called once per judge and round."""

    def judge_games(store: Store, games: list[StoredGame]) -> None:
        ids = [g.experiment_id for g in games]
        for spec in specs:
            if is_rule_judge(spec):
                summary = judge_experiments_by_rule(store, ids, spec)
            else:
                config = parse_judge_config(spec, "judges")
                judge = build_judge(config, config_dir)
                written = 0
                try:
                    for g in games:
                        s = judge_experiment(store, g.experiment, spec, judge=judge,
                                             config_dir=config_dir)
                        written += s["judgments_written"]
                finally:
                    release_backend(judge.backend)
                summary = {"judge": config.display_name, "judgments_written": written}
            if report is not None:
                report(summary)

    return judge_games
