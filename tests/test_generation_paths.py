"""The two generation paths (`generation: own | continuous | auto`) on CPU: same text, same
stored records, explicit cache sizing, clear refusals; and the own path's exactness
(batched greedy == `generate` token for token) on several architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from tiny_model import build_tokenizer

from debate.agents.model import ModelDebaterSettings
from debate.backends.base import BackendError, Chat, SamplingSettings
from debate.backends.continuous import PAGE_SIZE, cache_sizing, kv_bytes_per_token
from debate.backends.kv_cache import PreallocatedLayer
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.config import parse_config
from debate.errors import ConfigError
from debate.run import run_experiment
from debate.store.models import Debate, Question, Turn

SOURCE = " ".join(["The keeper climbed the tower every evening for thirty years."] * 30)


def make_backend(path: Path, **kw) -> TransformersBackend:
    return TransformersBackend(BackendSettings(model=str(path), cpu_threads=1, **kw))


def debate_chats(n: int, debates: int = 3, extra: int = 0) -> list[Chat]:
    chats = []
    for i in range(n):
        head = f"Debate {i % debates}. Story: {SOURCE} (copy {i % debates})."
        chats.append(Chat(
            messages=(
                {"role": "system", "content": head + f" You are debater {'AB'[i % 2]}."},
                {"role": "user", "content": "Round one." + " Your opponent said no." * (i % 4)
                 + " And then the keeper left." * extra},
            ),
            cache_prefix=head,
            seed=100 + i,
        ))
    return chats


@pytest.fixture(scope="module")
def own(tiny_model_dir) -> TransformersBackend:
    return make_backend(tiny_model_dir, generation="own", max_batch_size=8)


@pytest.fixture(scope="module")
def continuous(tiny_model_dir) -> TransformersBackend:
    b = make_backend(tiny_model_dir, generation="continuous", max_batch_size=8,
                     token_budget=8192, prefix_cache_mb=4)
    yield b
    b.close()


def test_continuous_gives_the_own_paths_text_and_records(own, continuous):
    greedy = SamplingSettings(max_new_tokens=40)
    chats = debate_chats(8)
    a = own.generate(chats, greedy)
    b = continuous.generate(chats, greedy)
    assert continuous.generation_path(greedy) == "continuous"
    assert [g.text for g in b] == [g.text for g in a]
    assert len({g.text for g in a}) > 1  # outputs depend on the prompt
    for x, y in zip(a, b):
        assert (x.prompt, x.prompt_tokens, x.completion_tokens, x.finish_reason) == (
            y.prompt, y.prompt_tokens, y.completion_tokens, y.finish_reason)
    # stop tokens end a reply in both paths the same way (some replies do stop here)
    assert {g.finish_reason for g in a} == {g.finish_reason for g in b}
    # The next turn's prompts extend these: the manager persists, its shared blocks are reused.
    later = continuous.generate(debate_chats(8, extra=2), greedy)
    assert [g.text for g in later] == [g.text for g in own.generate(debate_chats(8, extra=2),
                                                                     greedy)]
    assert all(g.meta["prefix_reused_tokens"] >= PAGE_SIZE for g in later)
    assert all(g.meta["prefix_reused_tokens"] % PAGE_SIZE == 0 for g in later)
    # between calls the model is the backend's own again: scoring still works
    probs = continuous.score(debate_chats(2), ["A", "B"])
    assert all(p is not None and abs(sum(p) - 1) < 1e-5 for p in probs)


def test_continuous_cache_is_sized_from_model_and_batch_not_memory(tiny_model_dir, continuous):
    cfg = continuous.model.config
    per_token = kv_bytes_per_token(cfg, torch.float32)
    # 2 layers x 1 key/value head x 16 dims x (key + value) x 4 bytes
    assert per_token == 2 * 2 * 1 * 16 * 4
    sizing = cache_sizing(continuous.settings, cfg, torch.float32)
    assert sizing.num_blocks == 8192 // PAGE_SIZE + min((4 * 2**20) // (per_token * PAGE_SIZE),
                                                       8192 // PAGE_SIZE) + 1
    assert sizing.max_requests_per_batch == 8
    continuous.generate(debate_chats(1), SamplingSettings(max_new_tokens=2))
    manager = continuous._continuous.manager
    assert manager.continuous_batching_config.num_blocks == sizing.num_blocks
    assert manager.continuous_batching_config.allow_block_sharing
    assert manager.batch_processor.cache.use_prefix_sharing
    # a prompt that cannot fit the explicit cache is a one-line error, not a hang
    small = make_backend(tiny_model_dir, generation="continuous", token_budget=256,
                         prefix_cache_mb=0)
    with pytest.raises(BackendError, match="does not fit the continuous-batching cache"):
        small.generate(debate_chats(1), SamplingSettings(max_new_tokens=8))
    small.close()


def test_auto_and_refusals(own, continuous, tiny_model_dir, sqlite_store, tmp_path):
    greedy = SamplingSettings(max_new_tokens=4)
    sampled = SamplingSettings(max_new_tokens=4, temperature=0.7)
    auto = make_backend(tiny_model_dir)
    assert auto.settings.generation == "auto"
    assert auto.generation_path(greedy) == "own"  # CPU: the measured faster path
    assert auto.generation_path(sampled) == "own"
    for bad in (sampled, SamplingSettings(max_new_tokens=4, repetition_penalty=1.2),
                SamplingSettings(max_new_tokens=4, min_new_tokens=2)):
        with pytest.raises(BackendError, match="generation: continuous cannot run"):
            continuous.generate(debate_chats(1), bad)
    with pytest.raises(ValueError, match="generation: continuous cannot run with temperature"):
        ModelDebaterSettings(model="m", generation="continuous", temperature=0.7)
    with pytest.raises(ValueError, match="generation"):
        BackendSettings(model="m", generation="fast")
    cfg = {"name": "x", "dataset": {"name": "sample", "limit": 1},
           "protocol": {"name": "debate", "rounds": 1},
           "debater": {"type": "model", "model": str(tiny_model_dir),
                       "generation": "continuous", "temperature": 0.5}}
    with pytest.raises(ConfigError, match=r"debater.*generation: continuous cannot run with "
                       r"temperature > 0"):
        run_experiment(sqlite_store, parse_config(cfg), tmp_path, show_progress=False)


def test_both_paths_store_the_same_debates(store, tiny_model_dir, tmp_path):
    def run(name: str, generation: str) -> list[tuple]:
        cfg = parse_config({
            "name": name,
            "dataset": {"name": "sample", "limit": 2},
            "protocol": {"name": "debate", "rounds": 2, "max_words": 40},
            "debater": {"type": "model", "model": str(tiny_model_dir), "cpu_threads": 1,
                        "temperature": 0.0, "max_new_tokens": 30, "generation": generation,
                        "token_budget": 8192, "prefix_cache_mb": 4},
        })
        result = run_experiment(store, cfg, tmp_path, show_progress=False)
        assert result.counts == {"done": 2}
        with store.session() as s:
            turns = s.execute(
                select(Question.external_id, Debate.variant, Turn.step, Turn.role, Turn.status,
                       Turn.text, Turn.shown, Turn.prompt_tokens, Turn.completion_tokens,
                       Turn.meta)
                .join(Debate, Turn.debate_id == Debate.id)
                .join(Question, Debate.question_id == Question.id)
                .where(Debate.experiment_id == result.experiment_id)
                .order_by(Question.external_id, Debate.variant, Turn.step, Turn.role)).all()
        rows = []
        for *cols, meta in turns:
            meta = dict(meta)
            reused = meta.pop("prefix_reused_tokens", None)
            assert reused is not None
            meta.pop("worker", None)
            rows.append((*cols, meta))
        return rows

    own_rows = run("own", "own")
    cont_rows = run("continuous", "continuous")
    assert len(own_rows) == 2 * 2 * 2
    assert cont_rows == own_rows


# ---------------------------------------------------------------- own path exactness
def _config(arch: str):
    import transformers as tf

    common = {"vocab_size": 0, "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 128,
              "max_position_embeddings": 4096, "initializer_range": 0.2,
              "tie_word_embeddings": False}
    if arch == "llama":
        return tf.LlamaConfig(num_key_value_heads=2, **common)
    if arch == "mistral":
        return tf.MistralConfig(num_key_value_heads=2, sliding_window=None, **common)
    if arch == "phi3":
        return tf.Phi3Config(num_key_value_heads=4, **common)
    if arch == "gemma":
        return tf.GemmaConfig(num_key_value_heads=1, head_dim=16, **common)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=0, n_embd=64, n_layer=2, n_head=4, n_positions=4096,
                             initializer_range=0.2, tie_word_embeddings=False)
    raise AssertionError(arch)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok")
    build_tokenizer(path, 600)
    return path


@pytest.mark.parametrize("arch", ["llama", "mistral", "phi3", "gemma", "gpt2"])
def test_batched_greedy_is_generate_token_for_token(arch, tokenizer_dir, tmp_path):
    """Each architecture, own path with prefix reuse and batching, against one
    `model.generate` per prompt on the same token ids (both paths on continuous where
    the architecture allows)."""
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    for f in tokenizer_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    cfg = _config(arch)
    cfg.vocab_size = len(tok)
    cfg.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    cfg.pad_token_id = tok.pad_token_id
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(5.0)  # wide arg-max margins
    model.save_pretrained(tmp_path)
    backend = make_backend(tmp_path, generation="own", max_batch_size=8)
    greedy = SamplingSettings(max_new_tokens=20)
    chats = debate_chats(6)
    first = backend.generate(chats, greedy)
    second = backend.generate(debate_chats(6, extra=1), greedy)  # reuses kept prompts
    hf = backend.model
    for chat, got in zip(chats + debate_chats(6, extra=1), first + second):
        ids = torch.tensor([backend.prompt_ids(chat)])
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                              do_sample=False, pad_token_id=backend.pad_id)
        want = out[0, ids.shape[1]:].tolist()
        stop = next((i for i, t in enumerate(want) if t in backend.stop_ids), len(want))
        assert backend.tokenizer.decode(want[:stop], skip_special_tokens=True) == got.text, arch
    assert len({g.text for g in first}) > 1
    if backend.prefix_enabled:
        assert all(g.meta["prefix_reused_tokens"] > 0 for g in second)


def test_preallocated_layer_matches_the_growing_layer():
    """Written in place, grown past its capacity, rows dropped: the same keys/values as
    transformers' DynamicLayer at every step, with no copy of the cache per step."""
    from transformers.cache_utils import DynamicLayer

    torch.manual_seed(0)
    grow, fixed = DynamicLayer(), PreallocatedLayer(capacity=6)
    rows = 3
    for step, n in enumerate([4, 1, 1, 3, 1]):  # 10 positions > capacity 6
        if step == 3:
            keep = torch.tensor([0, 2])
            grow.batch_select_indices(keep)
            fixed.batch_select_indices(keep)
            rows = 2
        k, v = torch.randn(rows, 2, n, 8), torch.randn(rows, 2, n, 8)
        a, b = grow.update(k, v), fixed.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert fixed.get_seq_length() == grow.get_seq_length()
        if step == 2:  # within capacity: the returned keys are a view of one buffer
            assert b[0].data_ptr() == fixed._k.data_ptr()
    assert fixed.capacity >= 10
