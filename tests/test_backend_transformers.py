"""The transformers backend on a tiny model built offline and loaded like a hub checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_model import build_tiny_model

from debate.backends.base import Chat, SamplingSettings
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.errors import ConfigError

SOURCE = " ".join(["The keeper climbed the tower every evening for thirty years."] * 40)


def make_backend(path: Path, **kw) -> TransformersBackend:
    return TransformersBackend(BackendSettings(model=str(path), cpu_threads=1, **kw))


@pytest.fixture(scope="module")
def backend(tiny_model_dir) -> TransformersBackend:
    return make_backend(tiny_model_dir)


def debate_chats(n: int, debates: int = 3) -> list[Chat]:
    """Turns of a few debates: each debate's turns share its instructions + source."""
    chats = []
    for i in range(n):
        head = f"Debate {i % debates}. Story: {SOURCE} (copy {i % debates})."
        chats.append(Chat(
            messages=(
                {"role": "system", "content": head + f" You are debater {'AB'[i % 2]}."},
                {"role": "user", "content": "Round one." + " Your opponent said no." * (i % 4)},
            ),
            cache_prefix=head,
            seed=100 + i,
        ))
    return chats


def test_loads_a_saved_checkpoint_with_its_chat_template(backend, tiny_model_dir):
    assert backend.model_id == str(tiny_model_dir)
    assert backend.device.type == "cpu" and backend.dtype == torch.float32
    prompt = backend.render(Chat(({"role": "user", "content": "hello"},)))
    assert prompt == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert backend.tokenizer.padding_side in ("left", "right")  # we pad ourselves, on the left


def test_batched_greedy_gives_the_same_text_as_one_at_a_time(tiny_model_dir):
    chats = debate_chats(8)
    greedy = SamplingSettings(max_new_tokens=24)
    cached = make_backend(tiny_model_dir, max_batch_size=8)
    batched = cached.generate(chats, greedy)
    plain = make_backend(tiny_model_dir, prefix_cache=False)
    alone = [plain.generate([c], greedy)[0] for c in chats]
    assert [g.text for g in batched] == [g.text for g in alone]
    # The outputs depend on the prompt (the test would be empty if they did not).
    assert len({g.text for g in batched}) > 1
    assert all(g.completion_tokens > 0 for g in batched)
    # prefix reuse: 3 distinct prefixes computed once, the rest reused
    assert cached.prefix_cache.misses == 3
    assert all(g.meta["prefix_reused_tokens"] > 100 for g in batched)
    assert all(g.meta["prefix_reused_tokens"] == 0 for g in alone)
    again = cached.generate(chats, greedy)
    assert cached.prefix_cache.misses == 3 and cached.prefix_cache.hits >= 3
    assert [g.text for g in again] == [g.text for g in batched]


def test_sampling_is_seeded_per_conversation_not_per_batch(backend):
    chats = debate_chats(5)
    sampled = SamplingSettings(max_new_tokens=16, temperature=1.0, top_p=0.9, top_k=50)
    together = backend.generate(chats, sampled)
    apart = [backend.generate([c], sampled)[0] for c in reversed(chats)][::-1]
    assert [g.text for g in together] == [g.text for g in apart]
    reseeded = backend.generate([Chat(chats[0].messages, chats[0].cache_prefix, seed=999)] * 3,
                                sampled)
    assert len({g.text for g in reseeded}) == 1


def test_batches_are_bounded_by_rows_and_token_budget(tiny_model_dir):
    chats = debate_chats(6)
    small = make_backend(tiny_model_dir, max_batch_size=2)
    out = small.generate(chats, SamplingSettings(max_new_tokens=4))
    assert max(g.meta["batch_size"] for g in out) == 2
    longest = max(g.prompt_tokens for g in out)
    tight = make_backend(tiny_model_dir, token_budget=(longest + 4) * 3)
    out = tight.generate(chats, SamplingSettings(max_new_tokens=4))
    assert max(g.meta["batch_size"] for g in out) <= 3


def test_min_and_max_new_tokens(backend):
    out = backend.generate(debate_chats(2), SamplingSettings(max_new_tokens=7, min_new_tokens=7))
    assert all(g.completion_tokens == 7 and g.finish_reason == "length" for g in out)


def test_score_is_a_distribution_over_the_labels_from_one_forward_pass(backend):
    chats = [Chat(({"role": "user", "content": f"Question {i}: A or B?"},),
                  assistant_prefix="Answer:") for i in range(4)]
    scores = backend.score(chats, ["A", "B"])
    assert all(abs(sum(s) - 1) < 1e-5 for s in scores)
    # the same numbers by hand: softmax over the label tokens' logits
    ids = backend.label_token_ids(["A", "B"])
    enc = backend.tokenizer(backend.render(chats[2]), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(**enc).logits[0, -1].float(), -1)
    per = torch.stack([torch.logsumexp(logp[i], 0) for i in ids])
    assert torch.allclose(torch.softmax(per, 0), torch.tensor(scores[2]), atol=1e-4)
    assert len({round(s[0], 6) for s in scores}) > 1


def test_plain_template_when_the_tokenizer_has_none(tmp_path):
    path = build_tiny_model(tmp_path / "no-template", chat_template=False)
    auto = make_backend(path)
    prompt = auto.render(Chat(({"role": "system", "content": "S"}, {"role": "user", "content": "U"})))
    assert prompt == "### System:\nS\n\n### User:\nU\n\n### Assistant:\n"
    assert auto.generate([Chat(({"role": "user", "content": "U"},))],
                         SamplingSettings(max_new_tokens=3))[0].completion_tokens > 0
    with pytest.raises(ConfigError, match=r"^model\.chat_template: .*has no chat template"):
        make_backend(path, chat_template="tokenizer")


def test_missing_weights_unknown_model_and_offline_hub_are_one_line_errors(
    tiny_model_dir, tmp_path, monkeypatch
):
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, no_weights / f.name)
    with pytest.raises(ConfigError, match=r"^model\.model: .* has no model weights") as err:
        make_backend(no_weights)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^model\.model: no such directory"):
        make_backend(tmp_path / "nowhere" / "at-all")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"HF_HUB_OFFLINE=1"):
        make_backend(Path("nobody/no-such-model"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ConfigError, match=r"the hub cannot be reached") as err:
        TransformersBackend(BackendSettings(model="nobody/no-such-model"))
    assert "\n" not in str(err.value) and "'nobody/no-such-model'" in str(err.value)


def test_bad_device_is_named(tiny_model_dir):
    with pytest.raises(ConfigError, match=r"^model\.device: "):
        make_backend(tiny_model_dir, device="cuda" if not torch.cuda.is_available() else "tpu")
