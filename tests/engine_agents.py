"""Test helpers for the engine tests: question files, configs, instrumented debaters, and
a `debate run` process killed with SIGKILL once enough turns are stored.

The debaters here wrap the real scripted debater; they only record what the engine
asks of them or fail on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from debate.agents.base import TurnRequest, TurnResult
from debate.agents.scripted import ScriptedDebater, ScriptedSettings
from debate.config import parse_config
from debate.run import plan_run
from debate.store.experiments import store_experiment
from debate.store.models import Debate, Seat, Turn
from debate.store.models import Question as QuestionRow

PASSAGES = [
    (
        "The keeper climbed the tower every evening for thirty years. After the new harbour "
        "opened to the south, no ship came through the channel any more."
    ),
    (
        "Mara spent the spring clearing the stones from the old garden. Along the north wall "
        "she planted cherry trees, because pears never ripened in the shade."
    ),
    (
        "The miller's letter arrived in winter. It said the bridge had washed away in the "
        "storm, and that the market would move to the far side of the river."
    ),
]


def write_questions(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "id": f"q{i}",
                "question": f"Question {i}: what does the passage say?",
                "answers": [f"Answer one of {i}", f"Answer two of {i}"],
                "correct_index": i % 2,
                "source": PASSAGES[i % len(PASSAGES)],
                "source_title": f"Passage {i % len(PASSAGES)}",
            }) + "\n")
    return path


def config_dict(questions: Path, protocol: str | dict = "debate", **extra: Any) -> dict:
    cfg: dict[str, Any] = {
        "name": extra.pop("name", "test-exp"),
        "seed": extra.pop("seed", 7),
        "dataset": {"name": "jsonl", "path": str(questions)},
        "protocol": protocol,
    }
    if "honest_debater" not in extra:
        cfg["debater"] = extra.pop("debater", {"type": "scripted"})
    cfg.update(extra)
    return cfg


def make_config(questions: Path, protocol: str | dict = "debate", **extra: Any):
    return parse_config(config_dict(questions, protocol, **extra))


def write_config(path: Path, questions: Path, protocol: str | dict = "debate",
                 **extra: Any) -> Path:
    path.write_text(yaml.safe_dump(config_dict(questions, protocol, **extra)))
    return path


def debate_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
               **kwargs: Any) -> subprocess.CompletedProcess:
    """Run the installed `debate` console script (with `env` added to the environment)."""
    exe = Path(sys.executable).with_name("debate")
    env = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False, **kwargs)


def debate_popen(*args: str, **kwargs: Any) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("debate")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


class RecordingDebater(ScriptedDebater):
    """The scripted debater, recording every batch it is called with and reporting token
    counts and the prompt it was 'shown', as a model debater does."""

    def __init__(self, name: str = "rec", **settings: Any):
        super().__init__(ScriptedSettings(name=name, **settings), {})
        self.calls: list[list[TurnRequest]] = []

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        self.calls.append(list(requests))
        results = super().respond(requests)
        for req, res in zip(requests, results):
            res.shown = f"prompt for {req.question_id} {req.role} {req.round}"
            res.template_version = "test-v1"
            res.prompt_tokens = 100 + req.round
            res.completion_tokens = len(res.text.split())
        return results


class ExplodingDebater(RecordingDebater):
    """Raises on its `explode_on`-th call (1-based), works otherwise."""

    def __init__(self, explode_on: int, **kw: Any):
        super().__init__(**kw)
        self.explode_on = explode_on

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        if len(self.calls) + 1 == self.explode_on:
            self.calls.append(list(requests))
            raise RuntimeError("model server went away")
        return super().respond(requests)


class FailingTurnsDebater(RecordingDebater):
    """Answers status=failed for the requests of the given debates in the given round."""

    def __init__(self, fail_debates: set[int], fail_round: int, **kw: Any):
        super().__init__(**kw)
        self.fail_debates = fail_debates
        self.fail_round = fail_round

    def respond(self, requests: list[TurnRequest]) -> list[TurnResult]:
        results = super().respond(requests)
        for req, res in zip(requests, results):
            if req.debate_id in self.fail_debates and req.round == self.fail_round:
                res.status, res.error, res.text = "failed", "generation timed out", ""
        return results


def setup_experiment(store, cfg, agents: dict[str, Any], config_dir: Path):
    """Store `cfg`'s experiment with these agent instances in its seats (seat kind ->
    debater); returns (experiment id, agent id -> debater) for debate.engine.Engine."""
    plan = plan_run(cfg, config_dir)
    stored = store_experiment(
        store, name=cfg.name, config=cfg.model_dump(mode="json"), config_hash=cfg.hash(),
        protocol=plan.protocol, seed=cfg.seed, questions=plan.questions,
        both_orders=cfg.both_orders,
        identities={seat: agent.identity for seat, agent in agents.items()},
    )
    return stored.id, {stored.agent_ids[seat]: agent for seat, agent in agents.items()}


def transcript_snapshot(store, experiment_id: int | None = None) -> dict:
    """(question, variant) -> answer order, seats and the turns' (step, round, role,
    kind, text, status): what must not depend on how the run was split or interrupted."""
    from sqlalchemy import select

    out: dict = {}
    with store.session() as s:
        q = select(Debate, QuestionRow.external_id).join(QuestionRow)
        if experiment_id is not None:
            q = q.where(Debate.experiment_id == experiment_id)
        for d, ext in s.execute(q):
            seats = sorted(
                (r, a) for r, a in s.execute(
                    select(Seat.role, Seat.answer_index).where(Seat.debate_id == d.id))
            )
            turns = [
                tuple(t) for t in s.execute(
                    select(Turn.step, Turn.round, Turn.role, Turn.kind, Turn.text, Turn.status)
                    .where(Turn.debate_id == d.id).order_by(Turn.step, Turn.role))
            ]
            out[(ext, d.variant)] = (tuple(d.answer_order), d.status, seats, turns)
    return out


def turn_count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM turns").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def run_until_killed(config: Path, url: str, db: Path, min_turns: int) -> int:
    """Start `debate run`, SIGKILL it once at least `min_turns` turns are stored."""
    proc = debate_popen("run", str(config), "--db", url, "--quiet")
    deadline = time.monotonic() + 60
    try:
        while turn_count(db) < min_turns:
            assert proc.poll() is None, f"run ended before the kill: {proc.communicate()}"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid
