"""Prompts longer than the model's context, in debates and in judging: the source is cut
to fit (marked, the span stored, quotes verified against the full source) or the turn is
refused in one line; on an absolute-position model (GPT-2) and a rotary one (Llama)."""

from __future__ import annotations

import json
import random

import pytest
from arch_models import build_arch_model
from sqlalchemy import select

from debate.backends.base import Chat, PromptTooLong
from debate.backends.context import TRUNCATION_MARK, fit_prompt
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.config import parse_config
from debate.run import run_experiment
from debate.store.models import Agent, Judgment, Quote, Turn
from judges.run import judge_experiment

WORDS = ["keeper", "climbed", "tower", "every", "evening", "thirty", "years", "harbour", "opened", "south", "ship", "came", "channel", "mara", "spent", "spring", "digging", "north", "wall", "cherry", "trees"]
LIMITS = {"gpt2": 1024, "llama3": 1280}  # the debate templates alone take ~500 tokens here
TAIL = "the very last sentence of this long story mentions twelve cherry trees"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("context-models")
    return {name: build_arch_model(name, root / name, max_positions=limit)
            for name, limit in LIMITS.items()}


def long_dataset(tmp_path, words: int = 1500) -> tuple[str, str]:
    rng = random.Random(5)
    source = " ".join(rng.choice(WORDS) for _ in range(words)) + ". " + TAIL + "."
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"id": "long-1", "question": "Which trees?",
                                "answers": ["Cherry", "Pear"], "correct_index": 0,
                                "source": source}) + "\n")
    return str(path), source


def debate_config(model, dataset: str, protocol: str = "debate", **debater):
    spec = {"type": "model", "model": str(model), "cpu_threads": 1, "temperature": 0.0,
            "max_new_tokens": 12, "max_resamples": 0, **debater}
    return parse_config({
        "name": f"long-{protocol}-{debater.get('context_policy', 'default')}",
        "dataset": {"name": "jsonl", "path": dataset},
        "protocol": {"name": protocol, "rounds": 2, "max_words": 20},
        "debater": spec,
    })


@pytest.fixture
def quoting_the_hidden_tail(monkeypatch):
    """The model's real generation, its text replaced by a quote from the part of the
    source the debater was not shown (a debater may know or guess the rest of a story)."""
    real = TransformersBackend.generate

    def generate(self, chats, settings):
        out = real(self, chats, settings)
        for gen in out:
            gen.text = f"It says <quote>{TAIL}</quote>"
        return out

    monkeypatch.setattr(TransformersBackend, "generate", generate)


@pytest.mark.parametrize("arch", ["gpt2", "llama3"])
def test_a_source_too_long_is_cut_to_fit_marked_and_recorded(
    sqlite_store, models, tmp_path, arch, quoting_the_hidden_tail
):
    dataset, source = long_dataset(tmp_path)
    cfg = debate_config(models[arch], dataset, max_new_tokens=40)
    result = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 1}
    with sqlite_store.session() as s:
        turns = list(s.scalars(select(Turn).order_by(Turn.debate_id, Turn.step)))
        quotes = list(s.scalars(select(Quote)))
        agent = s.scalars(select(Agent).where(Agent.kind == "model")).one()
    assert agent.settings["context_policy"] == "truncate_source"
    limit = LIMITS[arch]
    for t in turns:
        assert t.status == "ok"
        kept = t.meta["source_kept"]
        assert kept["start"] == 0 and 0 < kept["end"] < kept["chars"] == len(source)
        assert kept["context_limit"] == limit and kept["full_prompt_tokens"] > limit
        assert t.prompt_tokens == kept["prompt_tokens"] and t.prompt_tokens + 40 <= limit
        mark = TRUNCATION_MARK.format(kept=kept["end"], chars=len(source))
        assert source[: kept["end"]] + mark in t.shown
        assert TAIL not in t.shown.split(mark)[0]  # shown only where a speech quotes it
    # later turns keep the first turn's cut (room was left for the debate), so they share
    # its prefix: the key/value cache is reused
    for debate_id in {t.debate_id for t in turns}:
        mine = [t for t in turns if t.debate_id == debate_id]
        assert len({t.meta["source_kept"]["end"] for t in mine}) == 1
        assert all(t.meta["prefix_reused_tokens"] > 0 for t in mine[1:])
    # the quote from the part not shown is checked against the full source: verified
    assert len(quotes) == len(turns) and all(q.verified for q in quotes)


@pytest.mark.parametrize("arch", ["gpt2", "llama3"])
def test_refuse_policy_fails_the_turn_in_one_line(sqlite_store, models, tmp_path, arch):
    dataset, _ = long_dataset(tmp_path)
    cfg = debate_config(models[arch], dataset, context_policy="refuse")
    run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    with sqlite_store.session() as s:
        turns = list(s.scalars(select(Turn)))
    assert turns and all(t.status == "failed" for t in turns)
    error = turns[0].meta["error"]
    assert "\n" not in error and error.startswith("debater: the prompt is ")
    assert f"over the context of {str(models[arch])!r} ({LIMITS[arch]} tokens)" in error
    assert "+ 12 tokens to generate" in error and "context_policy: refuse" in error
    assert all(t.meta["retryable"] is False for t in turns)


def test_no_source_to_cut_or_still_too_long_is_refused(models, tmp_path):
    b = TransformersBackend(BackendSettings(model=str(models["gpt2"]), cpu_threads=1))

    def build(source):
        return Chat(({"role": "user", "content": "x " * 1100 + (source or "")},))

    with pytest.raises(PromptTooLong, match="even with no source it is"):
        fit_prompt(b, build, "a story " * 50, 4, "truncate_source", "debater")
    with pytest.raises(PromptTooLong, match=r"^judge: the prompt is \d+ tokens \+ 4 tokens"):
        fit_prompt(b, build, None, 4, "truncate_source", "judge")


def test_judges_cut_a_shown_source_and_refuse_a_transcript_too_long(sqlite_store, models,
                                                                     tmp_path):
    dataset, source = long_dataset(tmp_path)
    # the expert judge is shown the source: cut to fit, the span in the judgment's meta
    run_experiment(sqlite_store, parse_config({
        "name": "expert", "dataset": {"name": "jsonl", "path": dataset},
        "protocol": {"name": "expert-judge"}}), tmp_path, show_progress=False)
    judge = {"name": "lp", "type": "logprob", "model": str(models["llama3"]), "cpu_threads": 1}
    summary = judge_experiment(sqlite_store, "expert", judge)
    assert summary["judgments_written"] == 1 and summary["unknown"] == 0
    with sqlite_store.session() as s:
        rows = list(s.scalars(select(Judgment)))
    for r in rows:
        for order in r.meta["orders"]:
            kept = order["source_kept"]
            assert 0 < kept["end"] < kept["chars"] == len(source)
            assert kept["prompt_tokens"] <= LIMITS["llama3"]
    with pytest.raises(PromptTooLong, match=r"^judge \(debate \d+\): .*context_policy: refuse"):
        judge_experiment(sqlite_store, "expert", dict(judge, name="lp2", context_policy="refuse"))
    # a debate transcript the judge cannot cut: refused in one line (nothing written)
    long_turns = wordy_debates(sqlite_store, tmp_path, dataset)
    with pytest.raises(PromptTooLong) as err:
        judge_experiment(sqlite_store, long_turns, dict(judge, name="lp3"))
    assert "\n" not in str(err.value) and "(1280 tokens)" in str(err.value)


def wordy_debates(store, tmp_path, dataset: str) -> str:
    """A scripted debate whose transcript alone is longer than the judge's context."""
    long_speech = " ".join(["the keeper climbed the tower"] * 80)  # 400 words
    run_experiment(store, parse_config({
        "name": "wordy", "dataset": {"name": "jsonl", "path": dataset},
        "protocol": {"name": "debate", "rounds": 2, "max_words": 400},
        "debater": {"type": "scripted", "template": long_speech}}), tmp_path,
        show_progress=False)
    return "wordy"


def test_fit_keeps_an_earlier_cut_while_it_fits(models):
    b = TransformersBackend(BackendSettings(model=str(models["gpt2"]), cpu_threads=1))
    source = " ".join(["the keeper climbed the tower"] * 400)

    def build(src):
        return Chat(({"role": "user", "content": f"Story: {src}"},))

    first = fit_prompt(b, build, source, 8, "truncate_source", "debater", reserve=40)
    end = first.kept["end"]
    assert source[end] == " " and first.prompt_tokens <= 1024 - 8 - 40
    again = fit_prompt(b, build, source, 8, "truncate_source", "debater", hint=end)
    assert again.kept["end"] == end
    tighter = fit_prompt(b, build, source, 100, "truncate_source", "debater", hint=end)
    assert tighter.kept["end"] < end and tighter.prompt_tokens <= 1024 - 100
    assert first.kept["chars"] == len(source)
