"""End-to-end: a config runs scripted debates into a real database."""

from pathlib import Path

from sqlalchemy import func, select

from debate.config import parse_config
from debate.run import run_experiment
from debate.store.models import Debate, Quote, Turn


def test_scripted_debates_run_and_store(store, tmp_path: Path):
    cfg = parse_config(
        {
            "name": "smoke",
            "dataset": {"name": "sample", "limit": 2},
            "protocol": {"name": "debate", "rounds": 2},
            "both_orders": True,
            "debater": {"type": "scripted"},
        }
    )
    result = run_experiment(store, cfg, tmp_path, show_progress=False)
    n_questions = 2
    assert result.counts == {"done": 2 * n_questions}
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Turn)) == 2 * n_questions * 2 * 2
        assert s.scalar(select(func.count()).select_from(Quote).where(Quote.verified)) > 0
        orders = {tuple(o) for o in s.scalars(select(Debate.answer_order))}
    assert orders == {(0, 1), (1, 0)}
