"""DPO on the tiny offline model: the loss on the training pairs falls, the weights move,
a killed run resumes, and the checkpoint debates as a `type: model` debater."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli
from sqlalchemy import select

from debate.backends.settings import BackendSettings, build_backend, release_backend
from debate.config import parse_config
from debate.errors import UserError
from debate.run import run_experiment
from debate.store import open_store
from debate.store.models import Agent, Turn
from debate.training.dpo import last_checkpoint, train_dpo
from debate.training.loss import dpo_loss
from debate.training.pairs_io import read_pairs, write_preference_dir
from debate.training.preferences import SelectionRule, build_preference_data
from debate.training.settings import DPOSettings

STEPS = {"batch_size": 4, "learning_rate": 5e-4, "cpu_threads": 1, "logging_steps": 1, "seed": 0}


def experiment(name: str, model: str | Path, **debater):
    return parse_config({
        "name": name,
        "dataset": {"name": "sample", "limit": 2},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 15},
        "debater": {"type": "model", "model": str(model), "cpu_threads": 1, **debater},
    })


@pytest.fixture(scope="module")
def pairs_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """Best-of-2 self-play of the tiny model, turned into preference pairs."""
    root = tmp_path_factory.mktemp("dpo-data")
    store = open_store(f"sqlite:///{root / 'store.db'}")
    try:
        run_experiment(store, experiment("bo2", tiny_model_dir, best_of=2, temperature=1.0),
                       root, show_progress=False)
        data = build_preference_data(store, ["bo2"], SelectionRule(
            sources=["candidates"], chosen_must_be_clean=False))
        assert len(data.pairs) >= 3, data.summary()
        return write_preference_dir(data, root / "pairs")
    finally:
        store.dispose()


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoTokenizer.from_pretrained(str(path)),
            AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32))


def test_dpo_lowers_the_loss_on_its_pairs_and_changes_the_weights(pairs_dir, tiny_model_dir,
                                                                  tmp_path):
    rows = read_pairs(pairs_dir)
    tok, base = load(tiny_model_dir)
    before = dpo_loss(base, base, tok, rows, beta=0.1)
    assert before.loss == pytest.approx(math.log(2), abs=1e-6)  # policy == reference
    result = train_dpo(pairs_dir, str(tiny_model_dir), tmp_path / "ckpt",
                       DPOSettings(max_steps=6, save_steps=100, **STEPS), show_progress=False)
    assert result.steps == 6 and not result.adapter and not result.merged
    _, trained = load(tmp_path / "ckpt")
    after = dpo_loss(trained, base, tok, rows, beta=0.1)
    assert after.loss < before.loss - 0.1, (before, after)
    assert after.accuracy > 0.5 and after.margin > 0
    moved = max((a - b).abs().max().item() for a, b in
                zip(trained.state_dict().values(), base.state_dict().values()))
    assert moved > 1e-3
    info = json.loads((tmp_path / "ckpt" / "training.json").read_text())
    assert info["pairs"] == len(rows) and info["steps"] == 6
    assert info["base_model"] == str(tiny_model_dir.resolve())
    assert "highest vs lowest" in info["rule"]
    # a rerun finds the finished training; other settings into the same folder are refused
    again = train_dpo(pairs_dir, str(tiny_model_dir), tmp_path / "ckpt",
                      DPOSettings(max_steps=6, save_steps=100, **STEPS), show_progress=False)
    assert again.already_done
    with pytest.raises(UserError, match="another settings fingerprint"):
        train_dpo(pairs_dir, str(tiny_model_dir), tmp_path / "ckpt",
                  DPOSettings(max_steps=6, beta=0.5, **STEPS), show_progress=False)


def test_a_killed_training_resumes_from_its_last_checkpoint(pairs_dir, tiny_model_dir,
                                                             tmp_path):
    settings = DPOSettings(max_steps=4, save_steps=1, save_total_limit=None, **STEPS)
    straight = train_dpo(pairs_dir, str(tiny_model_dir), tmp_path / "straight", settings,
                         show_progress=False)
    cut = train_dpo(pairs_dir, str(tiny_model_dir), tmp_path / "cut", settings,
                    show_progress=False, stop_after_steps=2)
    assert cut.steps == 2 and not (tmp_path / "cut" / "training.json").exists()
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    assert last_checkpoint(tmp_path / "cut").name == "checkpoint-2"
    resumed = train_dpo(pairs_dir, str(tiny_model_dir), tmp_path / "cut", settings,
                        show_progress=False)
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 4
    # the resumed run ends where the uninterrupted one did
    _, a = load(tmp_path / "straight")
    _, b = load(tmp_path / "cut")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-5), name
    assert [s for s, _ in resumed.losses] == [3, 4]
    assert [round(v, 5) for _, v in resumed.losses] == [round(v, 5) for _, v in
                                                        straight.losses[2:]]


def test_checkpoints_debate_through_the_backend(pairs_dir, tiny_model_dir, tmp_path, capsys):
    full = tmp_path / "full"
    train_dpo(pairs_dir, str(tiny_model_dir), full,
              DPOSettings(max_steps=3, save_steps=100, eval_fraction=0.5,
                          **{**STEPS, "learning_rate": 5e-3}),
              show_progress=False)
    info = json.loads((full / "training.json").read_text())   # one of two debates held out
    assert info["train_pairs"] + info["held_out_pairs"] == info["pairs"]
    assert info["held_out_pairs"] > 0 and info["held_out"]["eval_loss"] > 0
    # LoRA through the CLI: an adapter (merge_lora: false) and merged weights
    cfg = tmp_path / "lora.yaml"
    cfg.write_text("max_steps: 3\nbatch_size: 4\nlearning_rate: 5.0e-3\ncpu_threads: 1\n"
                   "save_steps: 100\nlogging_steps: 1\nlora: {r: 4, alpha: 8}\nmerge_lora: false\n")
    code, out, err = run_cli(["train", "dpo", "--data", str(pairs_dir), "--model",
                              str(tiny_model_dir), "--out", str(tmp_path / "adapter"),
                              "--config", str(cfg), "--quiet"], capsys)
    assert code == 0, err
    assert "trained 3 steps (LoRA adapter)" in out
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "adapter" / "model.safetensors").exists()
    merged_cfg = tmp_path / "merged.yaml"
    merged_cfg.write_text(cfg.read_text().replace("merge_lora: false", "merge_lora: true")
                          .replace("lora: {r: 4, alpha: 8}\n", "lora: {r: 4, alpha: 8}\n"))
    code, out, err = run_cli(["train", "dpo", "--data", str(pairs_dir), "--model",
                              str(tiny_model_dir), "--out", str(tmp_path / "merged"),
                              "--config", str(merged_cfg)], capsys)
    assert code == 0 and "merged LoRA weights" in out, err
    assert "step 1: loss 0.6931" in out and "step 3: loss" in out   # progress shown

    store = open_store(f"sqlite:///{tmp_path / 'debates.db'}")
    texts = {}
    try:
        for name, model in (("base", tiny_model_dir), ("full", full),
                            ("adapter", tmp_path / "adapter"), ("merged", tmp_path / "merged")):
            result = run_experiment(store, experiment(name, model, temperature=0.0), tmp_path,
                                    show_progress=False)
            assert result.counts == {"done": 2}, (name, result.errors)
            with store.session() as s:
                turns = s.scalars(select(Turn).join(Agent, Agent.id == Turn.agent_id)
                                  .where(Agent.model_id == str(model))
                                  .order_by(Turn.debate_id, Turn.step)).all()
                texts[name] = [t.text for t in turns]
            assert len(texts[name]) == 4
    finally:
        store.dispose()
    assert texts["full"] != texts["base"]          # the trained weights, not the base's
    assert texts["adapter"] == texts["merged"]     # an adapter and its merge say the same
    backend = build_backend(BackendSettings(model=str(tmp_path / "adapter"), cpu_threads=1))
    try:
        assert getattr(backend.model, "peft_config", None)   # loaded as base + adapter
    finally:
        release_backend(backend)


def test_bad_settings_and_data_are_named(pairs_dir, tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "dpo.yaml"
    bad.write_text("betta: 0.1\n")
    code, _, err = run_cli(["train", "dpo", "--data", str(pairs_dir), "--model",
                            str(tiny_model_dir), "--out", str(tmp_path / "o"), "--config",
                            str(bad)], capsys)
    assert code == 2 and err.startswith(f"error: {bad}: betta: unknown field (known: beta,")
    bad.write_text("lora: {r: 0}\n")
    code, _, err = run_cli(["train", "dpo", "--data", str(pairs_dir), "--model",
                            str(tiny_model_dir), "--out", str(tmp_path / "o"), "--config",
                            str(bad)], capsys)
    assert code == 2 and f"{bad}: lora.r: Input should be greater than or equal to 1" in err
    code, _, err = run_cli(["train", "dpo", "--data", str(tmp_path), "--model",
                            str(tiny_model_dir), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "has no manifest.json" in err
    code, _, err = run_cli(["train", "dpo", "--data", str(pairs_dir), "--model",
                            str(tmp_path / "no-such-model"), "--out", str(tmp_path / "o2")],
                           capsys)
    assert code == 2 and "no such directory" in err
    tiny = tmp_path / "short.yaml"
    tiny.write_text("max_length: 16\n")
    code, _, err = run_cli(["train", "dpo", "--data", str(pairs_dir), "--model",
                            str(tiny_model_dir), "--out", str(tmp_path / "o3"), "--config",
                            str(tiny)], capsys)
    assert code == 2 and "max_length: every pair's prompt is 16 tokens or longer" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o3").exists()
