"""Model judges: what they see, log-prob and text verdicts, both orders, stepped, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from debate.backends.base import Backend, Chat, Generation, SamplingSettings
from debate.backends.prompts import TemplateSet, judge_prompt
from debate.cli import main
from debate.config import parse_config
from debate.protocols import Protocol
from debate.run import run_experiment
from debate.store.models import Judgment
from debate.view import DebateFacts, FactTurn
from judges.config import JudgeConfig
from judges.model import JudgeTask, ModelJudge, judge_view, parse_verdict
from judges.records import DebateRecord
from judges.run import judge_experiment

SOURCE = "The keeper climbed the tower every evening. No ship came through the channel."


def run_scripted(store, name: str, protocol: str, rounds: int | None = 2) -> None:
    spec = {"name": protocol}
    if rounds is not None:
        spec["rounds"] = rounds
    cfg = {"name": name, "dataset": {"name": "sample", "limit": 2}, "protocol": spec,
           "both_orders": True}
    if protocol not in ("naive-judge", "expert-judge"):
        cfg["debater"] = {"type": "scripted"}
    run_experiment(store, parse_config(cfg), Path("."), show_progress=False)


def judge_cfg(model_dir: Path, **kw) -> dict:
    return {"model": str(model_dir), "cpu_threads": 1, **kw}


@pytest.mark.parametrize("text,expected", [
    ("I think so.\nAnswer: A", 0),
    ("answer: b", 1),
    ("Answer: A ... on reflection, Answer: **B**", 1),
    ("The answer is (A)", None),
    ("Answer: C", None),
    ("", None),
    ("ANSWER:A", 0),
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def record(family: str, rounds: int = 2, **spec) -> DebateRecord:
    proto = Protocol.from_dict({"name": family, "family": family, "rounds": rounds, **spec})
    turns = [(1, "A", "Blind! <quote>climbed the tower</quote>"),
             (1, "B", "Ships <quote>made up words</quote>"),
             (2, "A", "Round two from A")]
    facts = DebateFacts(
        debate_id=1, protocol=family, family=proto.family, rounds=proto.rounds,
        judge_sees_source=proto.judge_sees_source, question="Why dark?",
        answers=("No ships", "Blind"), answer_order=(1, 0), seats=(("A", 1), ("B", 0)),
        turns=tuple(FactTurn(role, rnd, "speech", text, None) for rnd, role, text in turns),
        source=SOURCE, source_title="Lamp",
    )
    return DebateRecord(facts, correct_index=0, protocol_spec=proto.to_dict())


def shown(rec: DebateRecord, after_round=None, order=(1, 0)) -> str:
    chat = judge_prompt(TemplateSet.load("judge"), judge_view(rec, after_round, order), "logprob")
    return "\n".join(m["content"] for m in chat.messages)


def test_judges_see_only_what_the_protocol_shows():
    text = shown(record("debate"))
    assert "A: Blind\nB: No ships" in text
    assert SOURCE not in text and "climbed the tower" in text
    assert '\u27e6\u2713 \u201cclimbed the tower\u201d\u27e7' in text  # verified quote marked
    assert '\u27e6\u2717 \u201cmade up words\u201d\u27e7' in text
    assert "Round two from A" in text
    assert "Round two from A" not in shown(record("debate"), after_round=1)
    assert "A: No ships\nB: Blind" in shown(record("debate"), order=(0, 1))
    naive = shown(record("naive", rounds=0, debaters_see_source=False))
    assert SOURCE not in naive and "Blind!" not in naive
    expert = shown(record("expert", rounds=0, judge_sees_source=True))
    assert SOURCE in expert and "Blind!" not in expert


class CannedJudgeBackend(Backend):
    """Text replies given in turn (a random model never writes 'Answer: X')."""

    name = "canned"

    def __init__(self, replies: list[str]):
        self.replies = replies
        self.i = 0

    @property
    def model_id(self) -> str:
        return "canned"

    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[Generation]:
        out = []
        for _ in chats:
            out.append(Generation(self.replies[self.i % len(self.replies)], "P", 1, 1, "stop"))
            self.i += 1
        return out

    def score(self, chats, labels):
        return [[0.8, 0.2] for _ in chats]  # always favours the answer shown first


def test_majority_vote_and_orders_map_back_to_the_questions_answer_order():
    cfg = JudgeConfig(model="canned", type="text", samples=3, temperature=1.0)
    # order (1,0): votes A, B, A -> shown [2/3, 1/3]; order (0,1): B, junk, B -> shown [0, 1]
    backend = CannedJudgeBackend(["Answer: A", "Answer: B", "Answer: A",
                                  "Answer: B", "no verdict", "Answer: B"])
    judge = ModelJudge(cfg, backend, TemplateSet.load("judge"))

    [v] = judge.judge([JudgeTask(record("debate"), "final", None)])
    # question order: answer 0 ("No ships") was shown second in (1,0), first in (0,1)
    assert v.probabilities == pytest.approx([(1 / 3 + 0.0) / 2, (2 / 3 + 1.0) / 2])
    assert v.meta["position_bias"] == pytest.approx(((2 / 3) + 0.0) / 2 - 0.5)
    assert v.explanation == "Answer: A"
    assert [s["verdict"] for s in v.meta["orders"][1]["samples"]] == ["B", None, "B"]
    none = ModelJudge(cfg, CannedJudgeBackend(["I cannot tell."]), TemplateSet.load("judge"))
    [u] = none.judge([JudgeTask(record("debate"), "final", None)])
    assert u.probabilities is None and u.meta["unparseable"] is True
    biased = ModelJudge(JudgeConfig(model="canned"), backend, TemplateSet.load("judge"))
    [b] = biased.judge([JudgeTask(record("debate"), "final", None)])
    assert b.probabilities == pytest.approx([0.5, 0.5])
    assert b.meta["position_bias"] == pytest.approx(0.3)


def test_logprob_judging_is_stored_and_resumable(store, tiny_model_dir):
    run_scripted(store, "scripted", "debate", rounds=2)
    calls: list[tuple[int, int]] = []
    cfg = judge_cfg(tiny_model_dir, type="logprob", stepped=True, name="lp")
    first = judge_experiment(store, "scripted", cfg, lambda d, t: calls.append((d, t)))
    assert first["debates"] == 4 and first["judgments_written"] == 4 * 3
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    assert first["unknown"] == 0 and 0 <= first["accuracy"] <= 1
    with store.session() as s:
        rows = list(s.scalars(select(Judgment)))
    finals = [r for r in rows if r.kind == "final"]
    assert len(finals) == 4 and {r.after_round for r in rows if r.kind == "stepped"} == {1, 2}
    for r in finals:
        assert abs(sum(r.probabilities) - 1) < 1e-6
        assert len(r.meta["orders"]) == 2 and "position_bias" in r.meta
        assert r.judge_agent_id == first["judge_agent_id"]
    again = judge_experiment(store, "scripted", cfg)
    assert again["judgments_written"] == 0 and again["judgments_before"] == 12
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 12


def test_text_judge_with_unparseable_output_stores_unknown(sqlite_store, tiny_model_dir):
    run_scripted(sqlite_store, "consult", "consultancy", rounds=1)
    summary = judge_experiment(sqlite_store, "consult", judge_cfg(
        tiny_model_dir, type="text", max_new_tokens=8, both_orders=False))
    # the random model never writes "Answer: X": all unknown, none counted right or wrong
    assert summary["final_judgments"] == 8 and summary["unknown"] == 8  # 2 q x 2 orders x 2 sides
    assert summary["accuracy"] is None
    with sqlite_store.session() as s:
        rows = list(s.scalars(select(Judgment)))
    assert all(r.probabilities is None and r.explanation is not None for r in rows)


def test_cli_judge_and_its_errors(sqlite_url, sqlite_store, tiny_model_dir, tmp_path, capsys):
    run_scripted(sqlite_store, "naive", "naive-judge", rounds=None)
    judge_file = tmp_path / "judge.yaml"
    judge_file.write_text(f"name: cli-judge\ntype: logprob\nmodel: {tiny_model_dir}\n"
                          "cpu_threads: 1\n")
    main(["judge", "--experiment", "naive", "--judge", str(judge_file), "--db", sqlite_url,
          "--quiet"])
    out = capsys.readouterr().out
    assert "judge 'cli-judge' on 'naive': 4 judgments written (0 already stored)" in out
    main(["judge", "--experiment", "naive", "--judge", str(judge_file), "--db", sqlite_url,
          "--quiet"])
    assert "0 judgments written (4 already stored)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"type: logprobs\nmodel: {tiny_model_dir}\n")
    for args, message in [
        (["--experiment", "naive", "--judge", str(bad)], "bad.yaml: type: Input should be"),
        (["--experiment", "nope", "--judge", str(judge_file)], "--experiment: no experiment"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["judge", *args, "--db", sqlite_url])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
