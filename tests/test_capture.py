"""Activation capture during batched generation equals a plain unbatched forward pass.

The reference for every turn is independent of the backend: a greedy loop that feeds the
whole sequence from scratch each step (no cache, no padding, no batch), then one forward
pass over prompt + reply with output_hidden_states. Tolerance: float32 capture within
atol = rtol = 1e-4 of the reference (padding masks and cached keys change the order of
float sums, nothing else); float16 storage within float16 rounding (rtol 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debate.agents.model import ModelDebaterSettings
from debate.backends.base import Chat, SamplingSettings
from debate.backends.capture import (
    ActivationSettings,
    CaptureSpec,
    resolve_layers,
)
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.config import parse_config
from debate.errors import ConfigError
from debate.run import run_experiment
from debate.store.models import Activation, Turn
from debate.store.vectors import decode_vector, encode_vector

SOURCE = " ".join(["The keeper climbed the tower every evening for thirty years."] * 12)
ALL = CaptureSpec(layers=(0, 1, 2), positions=("generated_mean", "prompt_last"), dtype="float32")
ATOL = RTOL = 1e-4


def make_backend(path, **kw) -> TransformersBackend:
    return TransformersBackend(BackendSettings(model=str(path), cpu_threads=1, **kw))


def reference(backend: TransformersBackend, chat: Chat, max_new: int):
    """Greedy reply token ids and hidden states, from plain unbatched full forward passes."""
    it = backend._item(0, chat)
    prompt = list(it.ids)
    seq = list(prompt)
    sampled = 0
    with torch.no_grad():
        for _ in range(max_new):
            logits = backend.model(input_ids=torch.tensor([seq])).logits[0, -1]
            tok = int(logits.argmax())
            sampled += 1
            if tok in backend.stop_ids:
                break
            seq.append(tok)
        hidden = backend.model(input_ids=torch.tensor([seq]), output_hidden_states=True).hidden_states
    p = len(prompt)
    out = {}
    for layer in range(len(hidden)):
        h = hidden[layer][0].float().numpy()
        out[(layer, "prompt_last")] = h[p - 1]
        out[(layer, "generated_mean")] = h[p - 1: p - 1 + sampled].mean(axis=0)
    text = backend.tokenizer.decode(seq[p:], skip_special_tokens=True)
    return text, out


def turn_chats(round_texts: list[list[str]]) -> list[Chat]:
    """Three debates; each chat's prompt repeats its debate's earlier speeches."""
    chats = []
    for d, speeches in enumerate(round_texts):
        head = f"Debate {d}. Story: {SOURCE} (copy {d})."
        msgs = [{"role": "system", "content": head + " You are debater A."},
                {"role": "user", "content": "Round one." + " Argue well." * d}]
        for s in speeches:
            msgs += [{"role": "assistant", "content": s}, {"role": "user", "content": "Next round."}]
        chats.append(Chat(tuple(msgs), cache_prefix=head, seed=d))
    return chats


def assert_matches(gen, ref_text, ref, spec: CaptureSpec, atol=ATOL, rtol=RTOL):
    assert gen.text == ref_text
    assert gen.activations is not None
    assert set(gen.activations) == {(lay, pos) for lay in spec.layers for pos in spec.positions}
    for key, vec in gen.activations.items():
        np.testing.assert_allclose(vec.astype(np.float32), ref[key], atol=atol, rtol=rtol,
                                   err_msg=str(key))


def test_batched_padded_and_prefix_reused_turns_equal_a_plain_forward_pass(tiny_model_dir):
    backend = make_backend(tiny_model_dir, max_batch_size=8)
    greedy = SamplingSettings(max_new_tokens=10, capture=ALL)
    # round 1: a padded batch of prompts of different lengths, prefixes encoded once
    first = turn_chats([[], [], []])
    gens = backend.generate(first, greedy)
    assert len({g.prompt_tokens for g in gens}) == 3  # different lengths: left padding
    assert all(g.meta["batch_size"] == 3 for g in gens)
    for chat, gen in zip(first, gens):
        text, ref = reference(backend, chat, 10)
        assert_matches(gen, text, ref, ALL)
    # round 2: each prompt repeats its debate's round-1 prompt: the whole earlier prompt's
    # key/values are reused and only the new speech is encoded
    second = turn_chats([[g.text] for g in gens])
    gens2 = backend.generate(second, greedy)
    assert all(g.meta["prefix_reused_tokens"] > len(backend._item(0, second[0]).prefix_ids)
               for g in gens2)
    for chat, gen in zip(second, gens2):
        text, ref = reference(backend, chat, 10)
        assert_matches(gen, text, ref, ALL)
    # the vectors differ between turns (the test would be empty if they did not)
    assert not np.allclose(gens[0].activations[(1, "generated_mean")],
                           gens[1].activations[(1, "generated_mean")])


def test_rows_that_stop_early_keep_their_own_positions(tiny_model_dir):
    """Rows leave the batch as they finish; each keeps only its own positions' states."""
    backend = make_backend(tiny_model_dir, prefix_cache=False)
    chats = [Chat(({"role": "user", "content": "the keeper " * (i + 1)},), seed=i)
             for i in range(6)]
    spec = CaptureSpec(layers=(1, 2), positions=("generated_mean",), dtype="float32")
    max_new = 30
    gens = backend.generate(chats, SamplingSettings(max_new_tokens=max_new, capture=spec))
    for chat, gen in zip(chats, gens):
        text, ref = reference(backend, chat, max_new)
        assert_matches(gen, text, ref, spec)


def test_float16_storage_round_trips_within_half_precision(tiny_model_dir):
    backend = make_backend(tiny_model_dir)
    spec = CaptureSpec(layers=(2,), positions=("generated_mean", "prompt_last"), dtype="float16")
    chat = turn_chats([[]])[0]
    gen = backend.generate([chat], SamplingSettings(max_new_tokens=6, capture=spec))[0]
    _, ref = reference(backend, chat, 6)
    for key, vec in gen.activations.items():
        assert vec.dtype == np.float16
        data, shape, dtype = encode_vector(vec)
        assert len(data) == vec.size * 2 and dtype == "float16"
        back = decode_vector(data, shape, dtype)
        assert np.array_equal(back, vec)
        np.testing.assert_allclose(back.astype(np.float32), ref[key], rtol=1e-3, atol=1e-3)


def test_no_capture_without_a_spec_and_scoring_is_not_recorded(tiny_model_dir):
    backend = make_backend(tiny_model_dir)
    chat = turn_chats([[]])[0]
    with_spec = backend.generate([chat], SamplingSettings(max_new_tokens=4, capture=ALL))[0]
    scored = backend.score([chat], ["A", "B"])  # hooks installed but not armed
    plain = backend.generate([chat], SamplingSettings(max_new_tokens=4))[0]
    assert plain.activations is None and scored[0] is not None
    again = backend.generate([chat], SamplingSettings(max_new_tokens=4, capture=ALL))[0]
    for key in with_spec.activations:  # the second call reuses the cached prefix
        np.testing.assert_allclose(with_spec.activations[key], again.activations[key],
                                   atol=ATOL, rtol=RTOL)


def test_layers_resolve_from_indices_negatives_and_fractions():
    spec = resolve_layers(ActivationSettings(layers=[0.5, -1, 0, 0.0]), 24, "debater")
    assert spec.layers == (0, 12, 24) and spec.positions == ("generated_mean",)
    with pytest.raises(ConfigError, match=r"^debater\.activations\.layers: 25 is out of range"):
        resolve_layers(ActivationSettings(layers=[25]), 24, "debater")
    with pytest.raises(ConfigError, match=r"-26 is out of range"):
        resolve_layers(ActivationSettings(layers=[-26]), 24, "debater")


def test_best_of_n_stores_the_chosen_candidates_vectors(sqlite_store, tiny_model_dir, tmp_path,
                                                       monkeypatch):
    """Every candidate is generated with capture; the turn keeps the chosen one's vectors
    (the exactness of each generation's vectors is the tests above)."""
    from sqlalchemy import select

    made = []
    original = TransformersBackend.generate

    def recording(self, chats, settings):
        gens = original(self, chats, settings)
        made.extend(gens)
        return gens

    monkeypatch.setattr(TransformersBackend, "generate", recording)
    cfg = parse_config({
        "name": "bon-capture", "dataset": {"name": "sample", "limit": 2},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 200},
        "debater": {"type": "model", "model": str(tiny_model_dir), "cpu_threads": 1,
                    "best_of": 2, "temperature": 1.0, "max_new_tokens": 12,
                    "min_new_tokens": 12, "max_resamples": 0,
                    "activations": {"layers": [-1], "positions": ["generated_mean"],
                                    "dtype": "float32"}},
    })
    run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    with sqlite_store.session() as s:
        turns = list(s.scalars(select(Turn)))
        vectors = {a.turn_id: decode_vector(a.data, a.shape, a.dtype)
                   for a in s.scalars(select(Activation))}
    assert len(turns) == 4 and all(len(t.candidates) == 2 for t in turns)
    assert set(vectors) == {t.id for t in turns} and len(made) == 8
    assert all(g.activations is not None for g in made)
    by_text = {(g.prompt, g.text): g.activations[(2, "generated_mean")] for g in made}
    for t in turns:
        chosen = next(c for c in t.candidates if c["chosen"])
        other = next(c for c in t.candidates if not c["chosen"])
        np.testing.assert_array_equal(vectors[t.id], by_text[(t.shown, chosen["raw_text"])])
        if other["raw_text"] != chosen["raw_text"]:
            assert not np.array_equal(vectors[t.id], by_text[(t.shown, other["raw_text"])])


def test_activations_keep_a_debater_on_the_own_loop(tiny_model_dir):
    """Capture hooks live in the own generation loop: `auto` stays there when activations
    are asked for, and `generation: continuous` with activations is refused up front."""
    spec = resolve_layers(ActivationSettings(layers=[1], positions=["prompt_last"]), 2, "debater")
    auto = make_backend(tiny_model_dir)
    assert auto.generation_path(SamplingSettings(max_new_tokens=4, capture=spec)) == "own"
    with pytest.raises(ValueError, match="generation: continuous cannot run with activations"):
        ModelDebaterSettings(model="m", generation="continuous", temperature=0,
                             activations={"layers": [1], "positions": ["prompt_last"]})
