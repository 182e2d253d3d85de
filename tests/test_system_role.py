"""A model whose chat template refuses a system message (Gemma's) runs debates and
judges: the system text is folded into the first user message and that is recorded."""

from __future__ import annotations

from pathlib import Path

from arch_models import build_arch_model
from sqlalchemy import select

from debate.config import parse_config
from debate.run import run_experiment
from debate.store.models import Agent, Judgment, Turn
from judges.run import judge_experiment

FOLDED = {"system_message": "folded into the first user message"}


def test_gemma_style_model_debates_and_judges_with_the_system_text_folded(
    sqlite_store, tmp_path: Path
):
    model = build_arch_model("gemma", tmp_path / "gemma")
    cfg = parse_config({
        "name": "gemma", "dataset": {"name": "sample", "limit": 1},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 10},
        "debater": {"type": "model", "model": str(model), "cpu_threads": 1,
                    "temperature": 0.0, "max_new_tokens": 8},
    })
    result = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 1}
    summary = judge_experiment(sqlite_store, "gemma", {
        "name": "gemma-judge", "type": "text", "model": str(model), "cpu_threads": 1,
        "max_new_tokens": 4, "both_orders": False})
    assert summary["judgments_written"] == 1
    with sqlite_store.session() as s:
        turns = list(s.scalars(select(Turn)))
        agents = {a.kind: a for a in s.scalars(select(Agent))}
        judgment = s.scalars(select(Judgment)).one()
    assert turns and all(t.status in ("ok", "truncated") for t in turns)
    for t in turns:
        # one user turn holding the instructions, then the transcript request
        assert t.shown.startswith("<bos><start_of_turn>user\n")
        assert t.shown.count("<start_of_turn>user") == 1 and "system" not in t.shown[:40]
        assert "Here is the story" in t.shown
        assert t.meta["prefix_reused_tokens"] >= 0
    assert agents["model"].settings["prompt_format"] == FOLDED
    assert agents["model-judge"].settings["prompt_format"] == FOLDED
    assert judgment.explanation is not None
