"""The OpenAI-compatible backend against a real HTTP server on loopback.

The server below speaks the /v1/chat/completions and /v1/completions wire format the
`openai` client uses (JSON bodies, Bearer auth, error objects, Retry-After) and answers
with the tiny test model, so what the backend gets back is real model output.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from cli_runner import run_cli
from sqlalchemy import select

from debate.backends.base import BackendError, Chat, SamplingSettings
from debate.backends.openai_backend import OpenAIBackend, server_explanation
from debate.backends.settings import BackendSettings
from debate.backends.transformers_backend import TransformersBackend
from debate.config import parse_config
from debate.errors import ModelFailure
from debate.run import run_experiment
from debate.store.models import Debate, Turn
from judges import run as judge_run

API_KEY = "sekrit-test-key"


class ModelServer:
    """State of the fake-free server: a real model, plus faults to inject."""

    def __init__(self, backend: TransformersBackend):
        self.backend = backend
        self.lock = threading.Lock()
        self.faults: list[int] = []  # HTTP statuses to answer with, one per request
        self.always_fail: int | None = None
        self.no_logprobs = False
        self.no_chat_logprobs = False  # only the chat endpoint leaves logprobs out
        self.fault_body: dict[str, Any] | None = None  # error body sent with a fault
        self.bodies: list[dict[str, Any]] = []
        self.delay = 0.0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def top_logprobs(self, prompt: str, k: int, special: bool) -> list[tuple[str, float]]:
        tok = self.backend.tokenizer
        enc = tok(prompt, add_special_tokens=special, return_tensors="pt")
        with torch.no_grad():
            logits = self.backend.model(**enc).logits[0, -1].float()
        logp = torch.log_softmax(logits, -1)
        values, ids = logp.topk(min(k, logp.shape[0]))
        return [(tok.decode([int(i)]), float(v)) for v, i in zip(values, ids)]

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = Chat(tuple(body["messages"]), seed=int(body.get("seed") or 0))
        max_tokens = int(body.get("max_tokens") or 16)
        with self.lock:
            prompt = self.backend.render(chat)
            gen = self.backend.generate([chat], SamplingSettings(
                max_new_tokens=max_tokens, temperature=float(body.get("temperature") or 0),
                top_p=float(body.get("top_p") or 1.0)))[0]
            logprobs = None
            if body.get("logprobs") and not (self.no_logprobs or self.no_chat_logprobs):
                top = self.top_logprobs(prompt, int(body.get("top_logprobs") or 1), False)
                logprobs = {"content": [{
                    "token": top[0][0], "logprob": top[0][1], "bytes": list(top[0][0].encode()),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                     for t, lp in top],
                }]}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": gen.text},
                "logprobs": logprobs,
                "finish_reason": gen.finish_reason,
            }],
            "usage": {"prompt_tokens": gen.prompt_tokens,
                      "completion_tokens": gen.completion_tokens,
                      "total_tokens": gen.prompt_tokens + gen.completion_tokens},
        }

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        k = int(body.get("logprobs") or 0)
        with self.lock:
            top = self.top_logprobs(prompt, max(k, 1), True)
        merged: dict[str, float] = {}
        for t, lp in top:
            merged[t] = float(torch.logaddexp(torch.tensor(merged[t]), torch.tensor(lp))) \
                if t in merged else lp
        logprobs = None if (self.no_logprobs or not k) else {
            "tokens": [top[0][0]], "token_logprobs": [top[0][1]],
            "top_logprobs": [merged], "text_offset": [len(prompt)],
        }
        return {
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "text": top[0][0], "logprobs": logprobs,
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


def make_handler(state: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: dict[str, Any],
                  headers: dict[str, str] | None = None) -> None:
            headers = headers or {}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.bodies.append(body)
                state.requests += 1
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                fault = state.faults.pop(0) if state.faults else state.always_fail
            try:
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    self._send(401, {"error": {"message": "bad key", "type": "auth"}})
                    return
                if fault:
                    self._send(fault, state.fault_body or {
                        "error": {"message": f"injected {fault}", "type": "server_error"}},
                        {"retry-after-ms": "10"})
                    return
                time.sleep(state.delay)
                if self.path == "/v1/chat/completions":
                    self._send(200, state.chat(body))
                elif self.path == "/v1/completions":
                    self._send(200, state.completion(body))
                else:
                    self._send(404, {"error": {"message": "no route", "type": "not_found"}})
            finally:
                with state.lock:
                    state.in_flight -= 1

    return Handler


class QuietServer(ThreadingHTTPServer):
    # a judge sends its prompts' requests at once: the default listen backlog of 5 drops
    # connections on a loaded machine, which the client then reports as an outage
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up (its pool closed after a failure) is not news


@pytest.fixture(scope="module")
def local_backend(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(BackendSettings(model=str(tiny_model_dir), cpu_threads=1))


@pytest.fixture
def server(local_backend):
    state = ModelServer(local_backend)
    httpd = QuietServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


def client(server, monkeypatch, **kw) -> OpenAIBackend:
    monkeypatch.setenv("TEST_SERVER_KEY", API_KEY)
    settings = BackendSettings(backend="openai", model="tiny", base_url=server.url,
                               api_key_env="TEST_SERVER_KEY", **kw)
    return OpenAIBackend(settings)


CHATS = [Chat(({"role": "system", "content": "You judge."},
               {"role": "user", "content": f"Case {i}. A or B?"}), seed=i) for i in range(4)]


def test_generation_is_the_served_models_text(server, monkeypatch, local_backend):
    backend = client(server, monkeypatch)
    greedy = SamplingSettings(max_new_tokens=12)
    out = backend.generate(CHATS, greedy)
    local = local_backend.generate(list(CHATS), greedy)
    assert [g.text for g in out] == [g.text for g in local]
    assert all(g.completion_tokens > 0 and g.prompt_tokens > 0 for g in out)
    assert json.loads(out[0].prompt) == list(CHATS[0].messages)


def test_logprob_scores_match_the_model(server, monkeypatch, local_backend):
    vocab = len(local_backend.tokenizer)
    backend = client(server, monkeypatch, top_logprobs=vocab)
    remote = backend.score(CHATS, ["A", "B"])
    local = local_backend.score(list(CHATS), ["A", "B"])
    for r, loc in zip(remote, local):
        assert r is not None and abs(r[0] - loc[0]) < 1e-4
    completions = client(server, monkeypatch, top_logprobs=vocab, score_endpoint="completions")
    scored = completions.score(CHATS, ["A", "B"])
    assert all(s is not None and abs(sum(s) - 1) < 1e-6 for s in scored)


def test_labels_missing_from_the_top_tokens_score_none(server, monkeypatch):
    backend = client(server, monkeypatch, top_logprobs=1)
    assert backend.score(CHATS[:1], ["nonexistent-label", "other-label"]) == [None]


def test_no_logprobs_is_found_at_the_first_call_and_says_what_works(server, monkeypatch):
    server.no_logprobs = True
    backend = client(server, monkeypatch)
    backend.where = "judge"
    with pytest.raises(BackendError, match=r"returns no logprobs from its chat endpoint.*nor "
                       "does its completions endpoint.*use a judge of type text") as caught:
        backend.score(CHATS, ["A", "B"])
    assert caught.value.retryable is False
    # The first chat went alone, then one probe of the other endpoint: not one per chat.
    assert server.requests == 2
    assert [("messages" in b) for b in server.bodies] == [True, False]
    with pytest.raises(BackendError, match="no logprobs"):
        backend.score(CHATS, ["A", "B"])
    assert server.requests == 2  # known by now: no more requests
    # A debater's best_of gets the advice that fits it.
    debater = client(server, monkeypatch)
    debater.where = "debater"
    with pytest.raises(BackendError, match=r"best_of needs them.*set best_of: 1"):
        debater.score(CHATS[:1], ["A", "B"])


def test_no_logprobs_on_chat_only_points_at_the_completions_endpoint(server, monkeypatch,
                                                                     local_backend):
    server.no_chat_logprobs = True
    backend = client(server, monkeypatch)
    backend.where = "judge"
    with pytest.raises(BackendError, match=r"its completions endpoint does: set "
                       "judge.score_endpoint: completions"):
        backend.score(CHATS[:1], ["A", "B"])
    # ... and that advice is true: the completions endpoint scores.
    scored = client(server, monkeypatch, score_endpoint="completions",
                    top_logprobs=len(local_backend.tokenizer)).score(CHATS, ["A", "B"])
    assert all(s is not None and abs(sum(s) - 1) < 1e-6 for s in scored)


def test_requests_carry_only_the_fields_a_config_sets(server, monkeypatch):
    backend = client(server, monkeypatch)
    backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=3, temperature=0.5))
    sent = set(server.bodies[-1])
    assert sent == {"model", "messages", "max_tokens", "temperature", "seed"}
    backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=3, top_p=0.9, top_k=5,
                                                 repetition_penalty=1.1, min_new_tokens=2))
    assert {"top_p", "top_k", "repetition_penalty", "min_tokens"} <= set(server.bodies[-1])


def test_a_refused_field_is_not_retried_and_the_servers_words_are_shown(server, monkeypatch):
    # transformers serve's answer to a field it does not know (FastAPI's error body)
    server.faults = [422]
    server.fault_body = {"detail": "Unexpected fields in the request: {'top_k'}"}
    backend = client(server, monkeypatch, max_retries=4)
    backend.where = "debater"
    with pytest.raises(BackendError) as caught:
        backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=3, top_k=5))
    msg = str(caught.value)
    assert "HTTP 422: Unexpected fields in the request: {'top_k'}" in msg
    assert "remove debater.top_k" in msg and "not retried" in msg
    assert "retries" not in msg and caught.value.retryable is False
    assert server.requests == 1  # never retried
    # OpenAI's error object, e.g. a model the server does not serve
    server.faults = [400]
    server.fault_body = {"error": {"message": "Server is pinned to 'x'; requested 'tiny'."}}
    with pytest.raises(BackendError, match=r"HTTP 400: Server is pinned to 'x'; requested "
                       "'tiny'. \\(check debater.model"):
        backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=3))
    # vLLM's answer to a prompt over the context: no advice about the model name
    server.faults = [400]
    server.fault_body = {"object": "error", "type": "BadRequestError", "code": 400,
                        "message": "This model's maximum context length is 2048 tokens. "
                                   "However, you requested 3000 tokens."}
    with pytest.raises(BackendError) as caught:
        backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=3))
    msg = str(caught.value)
    assert "maximum context length is 2048 tokens" in msg and "does not fit" in msg
    assert "check debater.model" not in msg and not caught.value.retryable


def test_429_and_5xx_are_retried_with_backoff(server, monkeypatch, caplog):
    server.faults = [429, 503]
    with caplog.at_level("WARNING", logger="debate.backends.openai"):
        out = client(server, monkeypatch, max_retries=3).generate(
            CHATS[:1], SamplingSettings(max_new_tokens=4))
    assert out[0].completion_tokens > 0
    assert server.requests == 3
    # each retry is reported while it waits, with the server's words
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "HTTP 429 (injected 429); retry 1 of 3" in lines[0]
    assert "HTTP 503 (injected 503); retry 2 of 3" in lines[1]


def test_persistent_server_errors_raise_after_the_retries(server, monkeypatch):
    server.always_fail = 500
    with pytest.raises(BackendError, match="HTTP 500 after 2 retries: injected 500") as caught:
        client(server, monkeypatch, max_retries=2).generate(CHATS[:1], SamplingSettings())
    assert server.requests == 3 and caught.value.retryable is True
    with pytest.raises(BackendError, match="HTTP 500 \\(not retried: max_retries is 0\\)"):
        client(server, monkeypatch, max_retries=0).generate(CHATS[:1], SamplingSettings())
    assert server.requests == 4


def test_a_server_that_is_down_is_one_line_with_the_retries_made(monkeypatch):
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(BackendSettings(backend="openai", model="tiny", max_retries=1,
                                            base_url=f"http://127.0.0.1:{port}/v1"))
    with pytest.raises(BackendError, match=f"cannot connect to http://127.0.0.1:{port}/v1 "
                       "after 1 retry: .*is the server running") as caught:
        backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=2))
    assert "\n" not in str(caught.value) and caught.value.retryable


def test_timeouts_and_bounded_concurrency(server, monkeypatch):
    server.delay = 0.3
    backend = client(server, monkeypatch, max_concurrency=2)
    backend.generate(CHATS, SamplingSettings(max_new_tokens=2))
    assert server.max_in_flight == 2
    server.delay = 2.0
    with pytest.raises(BackendError, match=r"did not answer within 0.5s"):
        client(server, monkeypatch, timeout=0.5, max_retries=0).generate(
            CHATS[:1], SamplingSettings(max_new_tokens=2))


def test_key_and_base_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    backend = OpenAIBackend(BackendSettings(backend="openai", model="tiny"))
    assert backend.generate(CHATS[:1], SamplingSettings(max_new_tokens=2))[0].text is not None
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(BackendError, match="HTTP 401"):
        OpenAIBackend(BackendSettings(backend="openai", model="tiny")).generate(
            CHATS[:1], SamplingSettings(max_new_tokens=2))


def test_model_debates_over_a_server_fail_then_resume(server, monkeypatch, sqlite_store,
                                                      tmp_path: Path):
    monkeypatch.setenv("TEST_SERVER_KEY", API_KEY)
    cfg = parse_config({
        "name": "served",
        "dataset": {"name": "sample", "limit": 2},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 30},
        "debater": {"type": "model", "backend": "openai", "model": "tiny",
                    "base_url": server.url, "api_key_env": "TEST_SERVER_KEY",
                    "max_retries": 1, "temperature": 0.0, "max_resamples": 0},
    })
    server.always_fail = 502
    first = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert first.counts == {"failed": 2}
    with sqlite_store.session() as s:
        errors = list(s.scalars(select(Debate.error)))
        failed_turns = list(s.scalars(select(Turn.status)))
    assert all("HTTP 502" in e for e in errors) and set(failed_turns) == {"failed"}
    server.always_fail = None
    again = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False)
    assert again.counts == {"done": 2}
    with sqlite_store.session() as s:
        turns = list(s.scalars(select(Turn).where(Turn.status != "failed")))
    assert len(turns) == 4
    assert all(t.shown and json.loads(t.shown)[0]["role"] == "system" for t in turns)


def _scripted_debates(store, name: str = "done-debates") -> None:
    cfg = parse_config({"name": name, "dataset": {"name": "sample", "limit": 2},
                        "protocol": {"name": "debate", "rounds": 1},
                        "debater": {"type": "scripted"}})
    run_experiment(store, cfg, Path("."), show_progress=False)


def _judge_cli(capsys, sqlite_url: str, judge_file: Path) -> tuple[int, str, str]:
    return run_cli(["judge", "--experiment", "done-debates", "--judge", str(judge_file),
                    "--db", sqlite_url, "--quiet"], capsys)


def test_debate_judge_backend_failures_are_one_line_and_exit_2(
        server, monkeypatch, sqlite_url, sqlite_store, tmp_path, capsys):
    monkeypatch.setenv("TEST_SERVER_KEY", API_KEY)
    _scripted_debates(sqlite_store)
    judge_file = tmp_path / "judge.yaml"
    base = (f"name: served\nbackend: openai\nmodel: tiny\nbase_url: {server.url}\n"
            "api_key_env: TEST_SERVER_KEY\nmax_retries: 1\n")
    # a server without logprobs, under a logprob judge: stop at once, say what works
    server.no_logprobs = True
    judge_file.write_text(base + "type: logprob\n")
    code, _, err = _judge_cli(capsys, sqlite_url, judge_file)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "judge 'served': server" in err and "returns no logprobs" in err
    assert "use a judge of type text" in err and "a rerun will not fix this" in err
    assert server.requests == 2  # one scoring request and one probe, not one per prompt
    # the server down: retried (each retry shown), then one line that advises a rerun
    server.no_logprobs = False
    server.always_fail = 503
    judge_file.write_text(base + "type: text\nmax_new_tokens: 4\n")
    code, _, err = _judge_cli(capsys, sqlite_url, judge_file)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert lines[0].startswith("warning: server ") and "retry 1 of 1" in lines[0]
    # the prompts' requests failed together: one warning, not one per request
    assert err.count("warning:") == 1 and server.requests >= 2 + 2 * 2
    assert lines[-1].startswith("error: judge 'served': server ")
    assert "HTTP 503 after 1 retry: injected 503" in lines[-1]
    assert "no judgments were written; rerun to judge the rest" in lines[-1]
    # a refused request (a field the server does not take): never retried, no rerun advice
    server.always_fail = 422
    server.fault_body = {"detail": [{"loc": ["body", "top_k"], "msg": "Extra inputs are not "
                                     "permitted", "type": "extra_forbidden"}]}
    code, out, err = _judge_cli(capsys, sqlite_url, judge_file)
    assert code == 2 and len(err.strip().splitlines()) == 1, (out, err)
    assert "HTTP 422: top_k: Extra inputs are not permitted" in err
    assert "a rerun will not fix this" in err and "retr" not in err.split("HTTP 422")[0]
    assert "warning" not in err  # never retried: no retry was reported


def test_run_summary_counts_failed_turns_apart_and_advises_truthfully(
        server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TEST_SERVER_KEY", API_KEY)
    config = tmp_path / "served.yaml"
    config.write_text(yaml.safe_dump({
        "name": "served-cli",
        "dataset": {"name": "sample", "limit": 2},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 30},
        "debater": {"type": "model", "backend": "openai", "model": "tiny",
                    "base_url": server.url, "api_key_env": "TEST_SERVER_KEY",
                    "max_retries": 0, "temperature": 0.0, "max_resamples": 0, "top_k": 5},
    }))
    url = f"sqlite:///{tmp_path / 'run.db'}"
    server.always_fail = 422
    server.fault_body = {"detail": "Unexpected fields in the request: {'top_k'}"}
    code, out, err = run_cli(["run", str(config), "--db", url, "--quiet"], capsys)
    assert code == 1
    assert "created and ran: 0 turns made (2 more failed)" in out
    assert "Unexpected fields in the request: {'top_k'} (this server does not take top_k: " \
           "remove debater.top_k)" in err
    assert "a rerun will not fix this" in err and "rerun the same command" not in err
    server.always_fail = 503
    server.fault_body = None
    code, out, err = run_cli(["run", str(config), "--db", url, "--quiet"], capsys)
    assert code == 1 and "0 turns made (2 more failed)" in out
    assert "HTTP 503 (not retried: max_retries is 0)" in err
    assert "rerun the same command to retry them" in err
    server.always_fail = None
    code, out, _ = run_cli(["run", str(config), "--db", url, "--quiet"], capsys)
    assert code == 0 and "resumed (retrying 2 failed): 4 turns made in" in out


@pytest.mark.parametrize(("body", "expected"), [
    # vLLM
    ({"object": "error", "message": "This model's maximum context length is 4096 tokens. "
      "However, you requested 5000 tokens", "type": "BadRequestError", "code": 400},
     "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens"),
    # llama.cpp's server, OpenAI
    ({"error": {"code": 400, "message": "the request exceeds the available context size",
                "type": "invalid_request_error"}},
     "the request exceeds the available context size"),
    # TGI
    ({"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096",
      "error_type": "validation"},
     "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096"),
    # transformers serve (FastAPI), both shapes
    ({"detail": "Unexpected fields in the request: {'top_k'}"},
     "Unexpected fields in the request: {'top_k'}"),
    ({"detail": [{"loc": ["body", "min_tokens"], "msg": "Extra inputs are not permitted"}]},
     "min_tokens: Extra inputs are not permitted"),
    ("Bad Gateway\n<html>\n", "Bad Gateway <html>"),
    (None, "fallback"),
])
def test_the_servers_explanation_is_found_in_each_servers_error_body(body, expected):
    assert server_explanation(body, "fallback") == expected


def test_a_judge_failing_midway_keeps_what_it_wrote_and_says_so(server, monkeypatch,
                                                                 sqlite_store):
    monkeypatch.setenv("TEST_SERVER_KEY", API_KEY)
    monkeypatch.setattr(judge_run, "DEBATES_PER_BATCH", 1)
    _scripted_debates(sqlite_store)
    config = {"name": "midway", "type": "text", "backend": "openai", "model": "tiny",
              "base_url": server.url, "api_key_env": "TEST_SERVER_KEY", "max_retries": 0,
              "max_new_tokens": 4, "both_orders": False}

    def progress(done: int, total: int) -> None:
        if done:  # the server goes down after the first batch is stored
            server.always_fail = 502

    with pytest.raises(ModelFailure) as caught:
        judge_run.judge_experiment(sqlite_store, "done-debates", config, progress)
    msg = str(caught.value)
    assert "HTTP 502 (not retried: max_retries is 0)" in msg
    assert "1 of 2 judgments were written and are kept; rerun to judge the rest" in msg
    assert caught.value.retryable
    server.always_fail = None
    summary = judge_run.judge_experiment(sqlite_store, "done-debates", config)
    assert summary["judgments_written"] == 1 and summary["judgments_before"] == 1


def test_best_of_on_a_server_without_logprobs_stops_generating_once_it_knows(
        server, monkeypatch, sqlite_store, tmp_path: Path):
    monkeypatch.setenv("TEST_SERVER_KEY", API_KEY)
    server.no_logprobs = True
    cfg = parse_config({
        "name": "best-of-no-logprobs",
        "dataset": {"name": "sample", "limit": 3},
        "protocol": {"name": "debate", "rounds": 1, "max_words": 30},
        "both_orders": False,
        "debater": {"type": "model", "backend": "openai", "model": "tiny",
                    "base_url": server.url, "api_key_env": "TEST_SERVER_KEY",
                    "temperature": 0.7, "best_of": 2, "max_resamples": 0,
                    "max_new_tokens": 4},
    })
    result = run_experiment(sqlite_store, cfg, tmp_path, show_progress=False, claim_size=1)
    assert result.counts == {"failed": 3}
    assert result.stats.debates_failed_for_good == 3
    with sqlite_store.session() as s:
        errors = set(s.scalars(select(Debate.error)))
    assert len(errors) == 1 and "best_of needs them" in errors.pop()
    # the first debate: two candidates, one scoring request, one probe of the other
    # endpoint; the other debates: nothing sent at all
    generated = [b for b in server.bodies if "messages" in b and not b.get("logprobs")]
    assert len(generated) == 2 and len(server.bodies) == 4
