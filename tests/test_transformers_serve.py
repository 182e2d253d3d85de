"""The OpenAI-compatible backend against a real `transformers serve` process.

The stub server in test_openai_backend.py speaks the wire format; this runs the server
users actually start (`transformers serve MODEL`, transformers' own FastAPI app) on the
tiny offline model, on loopback only, and runs a debate and the text judge through it.
`transformers serve` differs from vLLM in ways that matter here: it answers 422 to any
request field it does not know (top_k, repetition_penalty, min_tokens), it ignores
`logprobs` on both endpoints, and it serves only the model it was started with.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from debate.backends.base import BackendError, Chat, SamplingSettings
from debate.backends.openai_backend import OpenAIBackend
from debate.backends.settings import BackendSettings
from debate.config import parse_config
from debate.errors import ModelFailure
from debate.run import run_experiment
from debate.store.models import Debate, Judgment, Turn
from judges.run import judge_experiment

pytest.importorskip("fastapi", reason="transformers[serving] is not installed")
pytest.importorskip("uvicorn", reason="transformers[serving] is not installed")

pytestmark = pytest.mark.timeout(600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory):
    """(base_url, served model name) of a `transformers serve` process on loopback."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS="1", NO_PROXY="127.0.0.1")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", str(tiny_model_dir),
             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
             "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited {proc.returncode}: "
                            f"{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        models = httpx.get(f"{base}/v1/models", timeout=10).json()["data"]
        yield f"{base}/v1", models[0]["id"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _backend(served, **kw) -> OpenAIBackend:
    url, name = served
    return OpenAIBackend(BackendSettings(backend="openai", model=name, base_url=url,
                                         max_retries=1, timeout=120, **kw), "debater")


def _debater(served, **kw) -> dict:
    url, name = served
    return {"type": "model", "backend": "openai", "model": name, "base_url": url,
            "max_retries": 1, "timeout": 120, "max_concurrency": 4, "max_resamples": 0,
            "max_new_tokens": 12, **kw}


def test_a_debate_and_the_text_judge_over_transformers_serve(served, sqlite_store, tmp_path,
                                                             tiny_model_dir):
    assert served[1] == str(tiny_model_dir)  # it serves the folder it was given, by path
    cfg = parse_config({
        "name": "over-transformers-serve",
        "dataset": {"name": "sample", "limit": 2},
        "protocol": {"name": "debate", "rounds": 2, "max_words": 20},
        "debater": _debater(served, temperature=0.0),
    })
    result = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"done": 2}, result.errors
    assert result.stats.turns == 8 and result.stats.turns_failed == 0
    with sqlite_store.session() as s:
        turns = list(s.scalars(select(Turn)))
    assert len(turns) == 8 and all(t.status in ("ok", "truncated") for t in turns)
    assert all(t.completion_tokens and t.completion_tokens > 0 for t in turns)
    url, name = served
    summary = judge_experiment(sqlite_store, "over-transformers-serve", {
        "name": "served-text-judge", "type": "text", "backend": "openai", "model": name,
        "base_url": url, "max_new_tokens": 8, "both_orders": True, "max_retries": 1})
    assert summary["judgments_written"] == 2 and summary["final_judgments"] == 2
    with sqlite_store.session() as s:
        rows = list(s.scalars(select(Judgment)))
    # the random model's replies are stored as the explanation, verdict or not
    assert len(rows) == 2 and all(r.explanation is not None for r in rows)
    assert all(len(r.meta["orders"]) == 2 for r in rows)


def test_greedy_text_is_reproducible_and_the_standard_fields_are_taken(served):
    # a 422 here would mean a field is sent that transformers serve does not know
    backend = _backend(served)
    chat = Chat(({"role": "user", "content": "the keeper climbed the tower"},), seed=3)
    first = backend.generate([chat], SamplingSettings(max_new_tokens=6))
    again = backend.generate([chat], SamplingSettings(max_new_tokens=6))
    assert first[0].text == again[0].text and first[0].completion_tokens > 0


def test_a_field_the_server_does_not_take_is_named_with_the_setting_to_drop(served):
    backend = _backend(served)
    with pytest.raises(BackendError) as caught:
        backend.generate([Chat(({"role": "user", "content": "hi"},))],
                         SamplingSettings(max_new_tokens=2, top_k=5))
    msg = str(caught.value)
    assert "HTTP 422" in msg and "top_k" in msg and "remove debater.top_k" in msg
    assert "retr" not in msg.replace("(not retried)", "") and not caught.value.retryable


def test_a_model_it_does_not_serve_is_the_servers_own_words(served):
    url, _ = served
    backend = OpenAIBackend(BackendSettings(backend="openai", model="Qwen/Qwen2.5-7B-Instruct",
                                            base_url=url, max_retries=1), "debater")
    with pytest.raises(BackendError) as caught:
        backend.generate([Chat(({"role": "user", "content": "hi"},))],
                         SamplingSettings(max_new_tokens=2))
    msg = str(caught.value)
    assert "HTTP 400" in msg and "Qwen/Qwen2.5-7B-Instruct" in msg  # what the server said
    assert "check debater.model" in msg and not caught.value.retryable


def test_logprob_judge_and_best_of_stop_at_the_first_call_saying_what_works(
        served, sqlite_store, tmp_path):
    url, name = served
    cfg = parse_config({
        "name": "best-of-over-transformers-serve",
        "dataset": {"name": "sample", "limit": 2},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 20},
        "debater": _debater(served, temperature=0.7, best_of=2),
    })
    result = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert result.counts == {"failed": 2}
    assert result.stats.turns == 0 and result.stats.debates_failed_for_good == 2
    with sqlite_store.session() as s:
        errors = list(s.scalars(select(Debate.error)))
    assert all("returns no logprobs from its chat endpoint (best_of needs them" in e
               and "nor does its completions endpoint" in e and "set best_of: 1" in e
               for e in errors)
    # the logprob judge over finished debates: one line naming what works instead
    scripted = parse_config({"name": "scripted-debates", "dataset": {"name": "sample",
                                                                     "limit": 2},
                             "protocol": {"name": "debate", "rounds": 1},
                             "debater": {"type": "scripted"}})
    run_experiment(sqlite_store, scripted, tmp_path, show_progress=False)
    for endpoint, other in (("chat", "completions"), ("completions", "chat")):
        with pytest.raises(ModelFailure) as caught:
            judge_experiment(sqlite_store, "scripted-debates", {
                "name": f"served-logprob-{endpoint}", "type": "logprob", "backend": "openai",
                "model": name, "base_url": url, "score_endpoint": endpoint})
        msg = str(caught.value)
        assert f"returns no logprobs from its {endpoint} endpoint" in msg
        assert f"nor does its {other} endpoint, so no score_endpoint helps" in msg
        assert "use a judge of type text" in msg and "a rerun will not fix this" in msg
        assert "\n" not in msg and not caught.value.retryable


def test_the_served_debate_example_runs_on_transformers_serve(served, sqlite_store,
                                                             monkeypatch):
    """examples/openai-server-debate.yaml as shipped, pointed at this server (and cut to
    one short debate): it must not need logprobs or fields the server refuses."""
    example = Path(__file__).resolve().parents[1] / "examples" / "openai-server-debate.yaml"
    raw = yaml.safe_load(example.read_text())
    url, name = served
    raw["debater"].update(model=name, base_url=url, max_new_tokens=12, max_resamples=0)
    raw["dataset"]["limit"] = 1
    raw["protocol"]["rounds"] = 1
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    result = run_experiment(sqlite_store, parse_config(raw), example.parent,
                            show_progress=False)
    assert result.counts == {"done": 1}, result.errors
