"""The example model configs in examples/ are valid as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from debate.agents.registry import validate_agent_settings
from debate.config import load_config
from debate.training.loop_config import load_loop_config
from debate.training.settings import load_dpo_settings
from judges.config import load_judge_file, parse_judge_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["qwen-debate.yaml", "openai-server-debate.yaml"])
def test_experiment_examples_validate(name):
    cfg = load_config(EXAMPLES / name)
    _, settings = validate_agent_settings(cfg.debater, "debater")
    assert settings.model.startswith("Qwen/")


@pytest.mark.parametrize("name", ["judge-logprob.yaml", "judge-text.yaml", "judge-openai.yaml"])
def test_judge_examples_validate(name):
    data = load_judge_file(EXAMPLES / name)
    assert parse_judge_config(data).model == yaml.safe_load((EXAMPLES / name).read_text())["model"]


def test_training_examples_validate():
    cfg, dpo = load_loop_config(EXAMPLES / "selfplay-loop.yaml")
    assert [p.name for p in cfg.protocols] == ["debate", "consultancy"]
    assert dpo.lora is not None and dpo.gradient_accumulation_steps == 4
    parse_judge_config(cfg.judge)
    assert load_dpo_settings(EXAMPLES / "dpo.yaml").beta == 0.1
