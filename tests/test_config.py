"""Experiment configs: YAML validated into typed models; errors name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from debate.config import load_config, parse_config
from debate.errors import ConfigError
from debate.protocols import get_protocol

BASE = {
    "name": "exp",
    "dataset": {"name": "sample", "limit": 4},
    "protocol": "debate",
    "debater": {"type": "scripted"},
}


def test_valid_config_builds_its_protocol(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: exp\n"
        "seed: 7\n"
        "dataset: {name: sample, limit: 4}\n"
        "protocol: {name: debate-simultaneous, rounds: 2, max_words: 80}\n"
        "both_orders: true\n"
        "honest_debater: {type: scripted, name: h}\n"
        "deceptive_debater: {type: scripted, name: d}\n",
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert cfg.seed == 7 and cfg.both_orders
    protocol = cfg.built_protocol()
    assert protocol == get_protocol("debate-simultaneous", rounds=2, limits={"max_words": 80})
    # the hash is stable and changes with the config
    assert cfg.hash() == load_config(path).hash()
    assert cfg.hash() != parse_config({**BASE}).hash()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"extra": 1}, "extra: unknown field (known: name, seed"),
        ({"protocol": {"name": "debate", "round": 2}}, "protocol.round: unknown field"),
        ({"protocol": "nope"}, "protocol.name: unknown protocol 'nope'; known: consultancy"),
        ({"protocol": {"name": "debate", "rounds": 0}}, "protocol.rounds: must be >= 1"),
        ({"protocol": {"name": "debate", "rounds": -1}}, "protocol.rounds: Input should be"),
        ({"protocol": {"name": "debate", "min_words": 50, "max_words": 10}},
         "protocol.limits: need 0 <= min_words <= max_words"),
        ({"protocol": {"name": "consultancy", "simultaneous": True}},
         "protocol.simultaneous: consultancy has a single speaker"),
        ({"protocol": {"name": "naive-judge", "rounds": 2}},
         "protocol.rounds: a naive judge protocol has no rounds"),
        ({"protocol": {"rounds": 2}}, "protocol.name: missing"),
        ({"debater": None}, "debater: missing (the protocol has debater seats)"),
        ({"honest_debater": {"type": "scripted"}},
         "debater: give either debater or honest_debater/deceptive_debater"),
        ({"debater": None, "honest_debater": {"type": "scripted"}},
         "deceptive_debater: missing"),
        ({"protocol": "interactive-debate"}, "interactive_judge: missing"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"seed": "abc"}, "seed: Input should be a valid integer"),
        ({"dataset": None}, "dataset: Input should be a valid dictionary"),
        ({"debater": {"type": "scripted", "max_words": 151}},
         "debater.max_words: 151 is looser than the max_words 150 of protocol 'debate'"),
        ({"debater": None, "protocol": {"name": "debate", "max_words": 80},
          "honest_debater": {"type": "scripted", "max_words": 40},
          "deceptive_debater": {"type": "scripted", "max_words": 90}},
         "deceptive_debater.max_words: 90 is looser than the max_words 80"),
        ({"protocol": "interactive-debate",
          "interactive_judge": {"type": "scripted", "max_words": 500}},
         "interactive_judge.max_words: 500 is looser than the max_words 150"),
        ({"protocol": {"name": "debate", "min_words": 20}, "debater": {"type": "scripted",
                                                                       "max_words": 19}},
         "debater.max_words: 19 is below the min_words 20 of protocol 'debate'"),
        ({"debater": {"type": "scripted", "max_words": 2.5}},
         "debater.max_words: expected a whole number of words >= 1, got 2.5"),
    ],
)
def test_config_errors_name_the_file_and_field(change: dict, expected: str) -> None:
    data = {**BASE, **change}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "exp.yaml")
    message = str(info.value)
    assert message.startswith("exp.yaml: "), message
    assert expected in message, message
    assert "\n" not in message


def test_an_agent_word_limit_may_tighten_the_protocols() -> None:
    cfg = parse_config({**BASE, "debater": {"type": "scripted", "max_words": 150}})
    assert cfg.debater == {"type": "scripted", "max_words": 150}  # equal is not looser
    tight = parse_config({**BASE, "debater": {"type": "scripted", "max_words": 50}})
    assert tight.hash() not in (cfg.hash(), parse_config(BASE).hash())


def test_judge_only_protocols_need_no_debater() -> None:
    cfg = parse_config({"name": "n", "dataset": {"name": "sample"}, "protocol": "naive-judge"})
    assert cfg.built_protocol().schedule() == []


def test_missing_dataset_key_is_named() -> None:
    data = {k: v for k, v in BASE.items() if k != "dataset"}
    with pytest.raises(ConfigError, match=r"^exp.yaml: dataset: missing$"):
        parse_config(data, "exp.yaml")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent.yaml: no such file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprotocol: [debate\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping at the top level"):
        load_config(listy)
