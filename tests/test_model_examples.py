"""The example model configs in examples/ are valid as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from debate.agents.registry import validate_agent_settings
from debate.config import load_config
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
