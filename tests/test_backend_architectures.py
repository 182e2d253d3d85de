"""The transformers backend on tiny random-weight models of nine architectures (built
offline by tests/arch_models.py, loaded like hub checkpoints): exact prompts, exact
greedy output, the repetition penalty, context limits, system roles, sliding windows."""

from __future__ import annotations

import logging
import random

import pytest
import torch
from arch_models import ARCHITECTURES, SLIDING, WINDOW, build_arch_model

from debate.backends.attention import GQA_SDPA
from debate.backends.base import Chat, PromptTooLong, SamplingSettings
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.errors import ConfigError

WORDS = ["the", "keeper", "climbed", "tower", "every", "evening", "for", "thirty", "years", "after", "new", "harbour", "opened", "south", "no", "ship", "came", "through", "channel", "mara", "spent", "spring", "digging", "along", "north", "wall"]


@pytest.fixture(scope="session")
def arch_dir(tmp_path_factory):
    """name -> the saved model's directory, each built once per session on first use."""
    root = tmp_path_factory.mktemp("architectures")
    built: dict[str, object] = {}

    def get(name: str):
        if name not in built:
            built[name] = build_arch_model(name, root / name)
        return built[name]

    return get


def make_backend(path, **kw) -> TransformersBackend:
    return TransformersBackend(BackendSettings(model=str(path), cpu_threads=1, **kw))


def source_text(words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def debate_chats(n: int = 6, debates: int = 2, words: int = 40) -> list[Chat]:
    """Turns of a few debates. Each debate's shared prefix (instructions + source) ends in
    a newline that the next text continues with a newline, so a tokenizer that merges
    "\\n\\n" (or prepends "▁" to a piece) tokenises the prefix alone differently."""
    chats = []
    for i in range(n):
        d = i % debates
        head = f"Debate {d}. Story: {source_text(words, d)}\n"
        chats.append(Chat(
            messages=(
                {"role": "system", "content": head + f"\n\nYou are debater {'AB'[i % 2]}."},
                {"role": "user", "content": "Round one." + " Your opponent said no." * (i % 3)},
            ),
            cache_prefix=head,
            seed=100 + i,
        ))
    return chats


def whole_ids(backend: TransformersBackend, prompt: str) -> list[int]:
    return list(backend.tokenizer(prompt, add_special_tokens=backend.adds_special_tokens)
                ["input_ids"])


def reference(backend: TransformersBackend, ids: list[int], new: int, **kw) -> list[int]:
    """transformers' own generate on the same ids, alone (no padding, no cache reuse), with
    the library's own attention (the backend swaps `sdpa` for `sdpa_gqa` on CPU)."""
    inputs = torch.tensor([ids])
    ours = backend.model.config._attn_implementation
    library = "sdpa" if ours == GQA_SDPA else ours
    backend.model.set_attn_implementation(library)
    try:
        with torch.no_grad():
            out = backend.model.generate(inputs, attention_mask=torch.ones_like(inputs),
                                         max_new_tokens=new, do_sample=False, **kw)
    finally:
        backend.model.set_attn_implementation(ours)
    tokens = out[0, len(ids):].tolist()
    for j, t in enumerate(tokens):
        if t in backend.stop_ids:
            return tokens[: j + 1]
    return tokens


class FedIds:
    """Records, per forward call, the token fed at each position (batch of one row)."""

    def __init__(self, backend: TransformersBackend):
        self.calls: list[dict[int, int]] = []
        forward = backend.model.forward

        def spy(*args, **kw):
            ids, pos = kw["input_ids"], kw["position_ids"]
            assert ids.shape[0] == 1
            self.calls.append(dict(zip(pos[0].tolist(), ids[0].tolist())))
            return forward(*args, **kw)

        backend.model.forward = spy

    def take(self) -> dict[int, int]:
        merged: dict[int, int] = {}
        for call in self.calls:
            for p, t in call.items():
                assert merged.setdefault(p, t) == t, f"position {p} fed twice, differently"
        self.calls = []
        return merged


@pytest.mark.parametrize("arch", ["llama3", "llama2", "gpt2", "gemma", "mistral", "qwen2"])
def test_prompts_are_tokenised_whole_and_fed_as_such(arch_dir, arch):
    backend = make_backend(arch_dir(arch))
    chats = debate_chats(4, debates=1)
    split_differs = False
    for chat in chats:
        prompt = backend.render(chat)
        ids = whole_ids(backend, prompt)
        item = backend._item(0, chat)
        assert item.ids == ids and item.prompt == prompt
        # a prefix tokenised on its own would give other ids here (the old way)
        end = prompt.index(chat.cache_prefix) + len(chat.cache_prefix)
        pieces = (whole_ids(backend, prompt[:end])
                  + list(backend.tokenizer(prompt[end:], add_special_tokens=False)["input_ids"]))
        split_differs |= pieces != ids
        assert 0 < item.prefix_len <= len(ids) and item.ids[: item.prefix_len] == item.prefix_ids
    if arch in ("llama3", "llama2", "gpt2"):
        assert split_differs, "the test chats should split a merge at the prefix's end"
    # What the model is fed: every position of the prompt, each once, with those ids,
    # whether from scratch (first turn) or after reusing cached key/values (later turns).
    fed = FedIds(backend)
    greedy = SamplingSettings(max_new_tokens=3)
    for turn, chat in enumerate(chats):
        [gen] = backend.generate([chat], greedy)
        ids = whole_ids(backend, gen.prompt)
        got = fed.take()
        reused = gen.meta["prefix_reused_tokens"]
        n = len(ids)
        assert {p: got.get(p) for p in range(reused, n)} == {p: ids[p] for p in range(reused, n)}
        if turn == 0:  # the prefix is computed in this call too, from the same ids
            assert reused > 0 and {p: got.get(p) for p in range(n)} == dict(enumerate(ids))
        else:
            assert reused > 0
            assert any(e.ids[:reused] == ids[:reused] for e in backend.prefix_cache.entries.values())
        assert gen.prompt_tokens == n


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_greedy_equals_generate_token_for_token(arch_dir, arch):
    backend = make_backend(arch_dir(arch), max_batch_size=8)
    chats = debate_chats(6)
    greedy = SamplingSettings(max_new_tokens=12)
    first = backend.generate(chats, greedy)
    second = backend.generate(chats, greedy)  # now from the kept whole-prompt caches
    plain = make_backend(arch_dir(arch), prefix_cache=False).generate(chats, greedy)
    for chat, a, b, c in zip(chats, first, second, plain):
        ids = whole_ids(backend, backend.render(chat))
        want = reference(backend, ids, 12)
        assert a.completion_ids == want and b.completion_ids == want and c.completion_ids == want
        assert b.meta["prefix_reused_tokens"] > a.meta["prefix_reused_tokens"] - 1
        assert b.meta["prefix_reused_tokens"] >= len(ids) - 1 - 3  # up to the last few tokens
    assert len({tuple(g.completion_ids) for g in first}) > 1  # the output depends on the prompt
    assert all(g.meta["prefix_reused_tokens"] > 0 for g in second)  # reuse kept (sliding too)
    assert backend.reuse_notes == []


@pytest.mark.parametrize("arch", SLIDING)
def test_sliding_window_models_keep_reuse_inside_the_window_and_say_once_when_not(
    arch_dir, arch, caplog
):
    backend = make_backend(arch_dir(arch), max_batch_size=8)
    assert backend.window == WINDOW and backend.prefix_enabled
    greedy = SamplingSettings(max_new_tokens=12)
    short = debate_chats(2, debates=1, words=30)
    long = debate_chats(4, debates=2, words=2 * WINDOW)
    caplog.set_level(logging.WARNING, logger="debate.backends.transformers_backend")
    for _ in range(2):  # twice: said once all the same
        out = backend.generate(short + long, greedy)
        for gen in out:
            ids = whole_ids(backend, gen.prompt)
            assert gen.completion_ids == reference(backend, ids, 12)
    assert all(g.prompt_tokens > WINDOW for g in out[2:])
    assert all(g.meta["prefix_reused_tokens"] == 0 for g in out[2:])
    assert all(g.meta["prefix_reused_tokens"] > 0 for g in out[:2])
    said = [r.getMessage() for r in caplog.records if "prefix key/value reuse is off" in r.getMessage()]
    assert len(said) == 1 and f"sliding window of {WINDOW} tokens" in said[0]
    assert backend.reuse_notes == said


@pytest.mark.parametrize("arch", ["qwen2", "llama2", "gemma2"])
def test_repetition_penalty_sees_the_whole_prompt_cached_or_not(arch_dir, arch):
    cached = make_backend(arch_dir(arch), max_batch_size=8)
    plain = make_backend(arch_dir(arch), prefix_cache=False)
    chats = debate_chats(6, words=30)
    penalised = SamplingSettings(max_new_tokens=12, repetition_penalty=1.8)
    runs = [cached.generate(chats, penalised), cached.generate(chats, penalised),
            plain.generate(chats, penalised), [plain.generate([c], penalised)[0] for c in chats]]
    assert all(g.meta["prefix_reused_tokens"] > 0 for g in runs[1])
    for j, chat in enumerate(chats):
        ids = whole_ids(cached, cached.render(chat))
        want = reference(cached, ids, 12, repetition_penalty=1.8)
        assert [run[j].completion_ids for run in runs] == [want] * 4
    # the penalty changes the output (else the test shows nothing)
    free = cached.generate(chats, SamplingSettings(max_new_tokens=12))
    assert [g.completion_ids for g in free] != [g.completion_ids for g in runs[0]]
    # padding is never penalised: only the row's own prompt tokens are marked seen
    items = [cached._item(i, c) for i, c in enumerate(chats)]
    seen = cached._seen(items, cached.model.config.vocab_size, penalised)
    for row, it in enumerate(items):
        assert set(torch.nonzero(seen[row]).flatten().tolist()) == set(it.ids)


@pytest.mark.parametrize("arch,limit,absolute", [("gpt2", 256, True), ("llama3", 384, False)])
def test_prompts_over_the_context_are_refused_before_generating(arch_dir, arch, limit,
                                                                absolute):
    backend = make_backend(arch_dir(arch))
    assert backend.context_limit() == limit
    too_long = Chat(({"role": "user", "content": source_text(limit, 3)},))
    n = backend.prompt_lengths([too_long])[0]
    assert n > limit
    ids = torch.tensor([whole_ids(backend, backend.render(too_long))])
    if absolute:  # what happened without the check: position embeddings run out
        with pytest.raises(IndexError), torch.no_grad():
            backend.model(input_ids=ids)
    else:  # a rotary model runs on silently past what it was made for
        with torch.no_grad():
            backend.model(input_ids=ids)
    before = dict(backend.stats)
    for call in (lambda: backend.generate([too_long], SamplingSettings(max_new_tokens=4)),
                 lambda: backend.score([too_long], ["A", "B"])):
        with pytest.raises(PromptTooLong) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and repr(str(arch_dir(arch))) in msg
        assert f"({limit} tokens)" in msg and f"the prompt is {n} tokens" in msg
        assert "rerunning cannot help" in msg and err.value.retryable is False
    assert backend.stats == before  # nothing was fed
    # a prompt that fits, but not with its reply
    fits = Chat(({"role": "user", "content": source_text(limit // 2, 4)},))
    m = backend.prompt_lengths([fits])[0]
    assert m < limit
    with pytest.raises(PromptTooLong, match=f"{m} tokens \\+ {limit - m + 1} tokens to generate"):
        backend.generate([fits], SamplingSettings(max_new_tokens=limit - m + 1))
    assert backend.generate([fits], SamplingSettings(max_new_tokens=limit - m))[0].prompt_tokens == m
    # max_context: lower is taken, more than the model has is refused
    assert make_backend(arch_dir(arch), max_context=100).context_limit() == 100
    with pytest.raises(ConfigError, match=rf"^model\.max_context: {limit + 1} is more than"):
        make_backend(arch_dir(arch), max_context=limit + 1)


def test_max_context_is_for_the_transformers_backend():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_context is for the transformers backend"):
        BackendSettings(model="m", backend="openai", max_context=1000)


@pytest.mark.parametrize("arch", ["gemma", "gemma2", "mistral"])
def test_templates_that_refuse_a_system_role_get_it_folded_into_the_first_user_turn(
    arch_dir, arch
):
    backend = make_backend(arch_dir(arch))
    chat = Chat(({"role": "system", "content": "Rules here."},
                 {"role": "user", "content": "Round one."}))
    with pytest.raises(Exception, match=r"System role not supported|roles must alternate"):
        backend.tokenizer.apply_chat_template([dict(m) for m in chat.messages], tokenize=False)
    assert backend.system_folded
    assert backend.prompt_format() == {"system_message": "folded into the first user message"}
    prompt = backend.render(chat)
    assert prompt == backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Rules here.\n\nRound one."}], tokenize=False,
        add_generation_prompt=True)
    assert backend.generate([chat], SamplingSettings(max_new_tokens=3))[0].completion_tokens


def test_a_template_that_fails_on_user_messages_too_is_a_one_line_error(arch_dir, tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ raise_exception('no way') }}")
    with pytest.raises(ConfigError) as err:
        make_backend(arch_dir("gemma"), chat_template=str(bad))
    msg = str(err.value)
    assert msg.startswith("model.chat_template: the chat template of ") and "\n" not in msg
    assert "set chat_template: plain or give a template file" in msg and "no way" in msg


def test_a_template_that_takes_a_system_role_is_left_alone(arch_dir):
    for arch in ("llama3", "llama2", "phi3", "qwen2"):
        backend = make_backend(arch_dir(arch))
        assert not backend.system_folded and backend.prompt_format() == {}


@pytest.mark.parametrize("arch", ["llama2", "gpt2", "gemma2", "mistral", "qwen2"])
def test_padded_batches_as_on_a_gpu_give_the_same_tokens_and_scores(arch_dir, arch,
                                                                     monkeypatch):
    """On CUDA, prefixes and scored prompts are encoded in left-padded batches (on CPU one
    at a time): that path, forced here on CPU, gives the same tokens and scores."""
    backend = make_backend(arch_dir(arch), max_batch_size=8)
    chats = debate_chats(6, words=30)
    greedy = SamplingSettings(max_new_tokens=10)
    alone = backend.score(chats, ["A", "B"])
    monkeypatch.setattr(TransformersBackend, "_one_row_at_a_time", lambda self: False)
    padded = make_backend(arch_dir(arch), max_batch_size=8)
    fed = spy_on_prefill(padded, monkeypatch)
    first = padded.generate(chats, greedy)
    # the prefixes of both debates were encoded from scratch together, as one batch
    assert [rows for rows, padding, past in fed if past == 0] == [2]
    second = padded.generate(chats, greedy)
    assert all(g.meta["prefix_reused_tokens"] > 0 for g in first + second)
    for chat, a, b in zip(chats, first, second):
        want = reference(padded, whole_ids(padded, padded.render(chat)), 10)
        assert a.completion_ids == want and b.completion_ids == want
    fed.clear()
    scores = padded.score(chats, ["A", "B"])
    # the scored prompts (of different lengths) went in one left-padded batch
    assert fed == [(6, True, 0)]
    for x, y in zip(alone, scores):
        assert x == pytest.approx(y, abs=1e-5)


def spy_on_prefill(backend: TransformersBackend, monkeypatch) -> list[tuple[int, bool, int]]:
    """Record each prefill the backend makes: (rows, any left padding, cached positions)."""
    fed: list[tuple[int, bool, int]] = []
    real = backend._prefill

    def prefill(ids, mask, positions, cache, past):
        fed.append((ids.shape[0], bool((mask[:, past:] == 0).any()), past))
        return real(ids, mask, positions, cache, past)

    monkeypatch.setattr(backend, "_prefill", prefill)
    return fed


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_answer_labels_map_to_their_own_tokens(arch_dir, arch):
    """" A" is "▁" + "A" to a sentencepiece-style tokenizer: the bare "▁" must not be
    taken for the start of every label (it made the log-probability judge refuse)."""
    backend = make_backend(arch_dir(arch))
    ids_a, ids_b = backend.label_token_ids(["A", "B"])
    assert ids_a and ids_b and not set(ids_a) & set(ids_b)
    for label, ids in (("A", ids_a), ("B", ids_b)):
        assert all(backend.tokenizer.decode([i]).strip() == label for i in ids)
    chat = Chat(({"role": "user", "content": "A or B?"},), assistant_prefix="Answer:")
    [probs] = backend.score([chat], ["A", "B"])
    assert sum(probs) == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ["llama3", "qwen2", "mistral", "gemma"])
def test_cpu_models_share_grouped_key_values_instead_of_copying_them(arch_dir, arch):
    """On CPU a model left on its default attention runs `sdpa_gqa`; a padded, masked
    prefill after reused key/values gives the library's `sdpa` output bit for bit, and a
    named attention implementation is kept as named."""
    backend = make_backend(arch_dir(arch))
    model = backend.model
    assert model.config._attn_implementation == GQA_SDPA
    assert make_backend(arch_dir(arch), attn_implementation="sdpa").model.config \
        ._attn_implementation == "sdpa"
    torch.manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (3, 40))
    mask = torch.ones_like(ids)
    mask[0, :7] = 0  # left padding
    mask[2, :19] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    outputs = {}
    for impl in (GQA_SDPA, "sdpa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            past = model(input_ids=ids[:, :25], attention_mask=mask[:, :25],
                         position_ids=positions[:, :25], use_cache=True).past_key_values
            later = model(input_ids=ids[:, 25:], attention_mask=mask,
                          position_ids=positions[:, 25:], past_key_values=past,
                          use_cache=True).logits
        outputs[impl] = later
    model.set_attn_implementation(GQA_SDPA)
    assert torch.equal(outputs[GQA_SDPA], outputs["sdpa"])
