"""`debate demo`: the scripted section, its rerun safety, and the command end to end."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from debate.agents.scripted import evidence_sentence
from debate.config import parse_config
from debate.demo.scripted import demo_experiments, run
from debate.questions import sample_questions
from debate.quotes import verify_quote
from debate.run import run_experiment
from debate.store.models import Debate, Experiment, Quote, Turn


def snapshot(store) -> dict:
    with store.session() as s:
        per_exp = dict(
            s.execute(
                select(Experiment.name, func.count(Debate.id))
                .join(Debate, Debate.experiment_id == Experiment.id)
                .group_by(Experiment.name)
            ).all()
        )
        statuses = dict(s.execute(select(Debate.status, func.count()).group_by(Debate.status)).all())
        turns = s.execute(select(Turn.id, Turn.debate_id, Turn.round, Turn.role, Turn.text)
                          .order_by(Turn.id)).all()
        verified = dict(
            s.execute(select(Quote.verified, func.count()).group_by(Quote.verified)).all()
        )
    return {"per_exp": per_exp, "statuses": statuses, "turns": turns, "verified": verified}


def run_section(store) -> str:
    buffer = io.StringIO()
    run(store, Console(file=buffer, width=200))
    return buffer.getvalue()


def test_scripted_section_runs_every_experiment_and_is_safe_to_rerun(store) -> None:
    out = run_section(store)
    first = snapshot(store)
    assert first["per_exp"] == {"demo-debate": 40, "demo-consultancy": 40,
                                "demo-naive-judge": 20, "demo-expert-judge": 20}
    assert first["statuses"] == {"done": 120}
    assert len(first["turns"]) == 40 * 6 + 40 * 2
    # honest quotes verify; the deceptive side's "quote" of its own answer mostly does not
    assert first["verified"][True] > 0 and first["verified"][False] > 0
    assert out.count("created") == 4
    for command in ("debate show 1", "debate list", "debate export --format jsonl",
                    "debate serve", "debate analyze"):
        assert command in out
    again = run_section(store)
    assert snapshot(store) == first  # nothing duplicated, nothing lost
    assert again.count("already done") == 4 and "created" not in again


def test_interrupted_demo_is_resumed(sqlite_store, tmp_path: Path) -> None:
    spec = demo_experiments()[0].config
    result = run_experiment(sqlite_store, parse_config(spec), tmp_path, show_progress=False,
                            stop_after_steps=2)
    assert result.counts.get("done", 0) < 40
    out = run_section(sqlite_store)
    snap = snapshot(sqlite_store)
    assert snap["statuses"] == {"done": 120}
    assert len(snap["turns"]) == 40 * 6 + 40 * 2
    assert "resumed (+" in out


def test_a_different_experiment_under_a_demo_name_is_left_alone(sqlite_store, tmp_path) -> None:
    spec = {**demo_experiments()[0].config, "seed": 99, "dataset": {"name": "sample", "limit": 2}}
    run_experiment(sqlite_store, parse_config(spec), tmp_path, show_progress=False)
    out = run_section(sqlite_store)
    snap = snapshot(sqlite_store)
    assert snap["per_exp"]["demo-debate"] == 4  # the user's experiment, untouched
    assert snap["per_exp"]["demo-debate-2"] == 40
    assert "demo-debate-2" in out


def test_scripted_evidence_is_a_verified_sentence_that_fits_the_answer() -> None:
    for q in sample_questions():
        correct = q.answers[q.correct_index]
        for rnd in (1, 2, 3):
            evidence = evidence_sentence(q.source, correct, q.question, rnd)
            assert evidence and len(evidence.split()) <= 30
            check = verify_quote(evidence, q.source)
            assert check.verified and q.source[check.start : check.end] == evidence
        # each round quotes something new
        assert len({evidence_sentence(q.source, correct, q.question, r) for r in (1, 2, 3)}) == 3
    lighthouse = sample_questions()[0]
    best = evidence_sentence(lighthouse.source, lighthouse.answers[0], lighthouse.question, 1)
    assert "no ship came through the narrow channel" in best


def test_demo_command_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    url = f"sqlite:///{db}"
    exe = str(Path(sys.executable).parent / "debate")
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.run([exe, "demo", "--db", url, "--section", "scripted"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                           check=False)
    assert first.returncode == 0, first.stderr
    assert "AI safety via debate: demo" in first.stdout
    assert "Demo finished in" in first.stdout
    assert "4 experiments, 120 debates, 320 turns, 0 judgments" in first.stdout
    assert f"debate show 1 --db {url}" in first.stdout
    second = subprocess.run([exe, "demo", "--db", url, "--section", "scripted"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                           check=False)
    assert second.returncode == 0
    assert "4 experiments, 120 debates, 320 turns, 0 judgments" in second.stdout
    show = subprocess.run([exe, "show", "1", "--db", url], capture_output=True, text=True,
                          env=env, check=True)
    assert "Debater A:" in show.stdout
    bad = subprocess.run([exe, "demo", "--db", url, "--section", "nope"], capture_output=True,
                         text=True, env=env, check=False)
    assert bad.returncode == 2
    assert bad.stderr == ("error: --section: unknown demo section 'nope'; "
                          "known: scripted, models, pixels, tournament\n")
