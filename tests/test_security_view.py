"""Adversarial: one builder of what a judge sees (debate.view.blind_view), tested once for
every protocol, and shown to be the very value the web queue (human judges), `debate
show` and the model judges' prompt use.

The rule: no ground truth, no honest/deceptive label, no model or agent name, no other
judge's verdict before submitting; the source only when the protocol lets the judge
read it; failed turns never; judging after round r shows rounds up to r and not the
judge's questions asked after round r.
"""

from __future__ import annotations

import dataclasses

import pytest
from cli_runner import run_cli
from web_world import HONEST_NAME, LIAR_NAME, add_accounts, run_scripted

from debate.backends.prompts import TemplateSet, judge_prompt, view_transcript
from debate.cli.inspect import judge_transcript
from debate.protocols import BUILTIN
from debate.store import open_store
from debate.store.models import Debate
from debate.users import get_user
from debate.view import BlindView, DebateFacts, FactTurn, ViewTurn, blind_view
from judges import queue
from judges.model import judge_view
from judges.records import load_debates
from web.render import judge_html

SOURCE = "The keeper climbed the tower every evening. No ship came through any more."
FORBIDDEN_FIELDS = {"correct_index", "correct", "honest", "deceptive", "agent", "agents",
                    "model", "judgments", "verdicts", "truth", "seats"}


def facts_for(name: str) -> DebateFacts:
    proto = BUILTIN[name]
    turns = [FactTurn("A", 0, "choice", "I take answer 1.", None)] if proto.open_choice else []
    for r in range(1, max(proto.rounds, 1) + 1):
        if proto.family == "consultancy":
            turns.append(FactTurn("consultant", r, "speech",
                                  f"r{r} consultant <quote>climbed the tower</quote>", None))
        else:
            turns.append(FactTurn("A", r, "speech", f"r{r} A <quote>No ship came</quote>", None))
            turns.append(FactTurn("B", r, "speech", f"r{r} B <quote>made up</quote>", None))
        if proto.interactive:
            turns.append(FactTurn("judge", r, "question", f"judge question after r{r}", None))
    turns.append(FactTurn("B", 1, "speech", "FAILED-TURN-TEXT", None, failed=True))
    seats = (("A", 1), ("B", 0)) if proto.family != "consultancy" else (("consultant", 1),)
    return DebateFacts(
        debate_id=7, protocol=name, family=proto.family,
        rounds=0 if proto.family == "pixel" else proto.rounds,
        judge_sees_source=proto.judge_sees_source, question="Why dark?",
        answers=("No ships", "Blind"), answer_order=(1, 0), seats=seats,
        turns=tuple(turns), source=SOURCE, source_title="Lamp",
    )


def test_the_view_types_cannot_hold_ground_truth():
    for cls in (BlindView, ViewTurn, DebateFacts):
        names = {f.name for f in dataclasses.fields(cls)}
        assert not names & (FORBIDDEN_FIELDS - {"seats"}), cls
        assert cls.__dataclass_params__.frozen
    assert "seats" not in {f.name for f in dataclasses.fields(BlindView)}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_blind_view_rule_for_every_protocol(name):
    proto = BUILTIN[name]
    facts = facts_for(name)
    view = blind_view(facts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.question = "changed"  # type: ignore[misc]
    assert view.answers == ("Blind", "No ships")  # the shown order, not the question's
    # claims: display positions only, no labels of honesty
    for speaker, pos in view.claims:
        assert speaker in ("Debater A", "Debater B", "Consultant")
        assert pos in (0, 1)
    # the source only when the protocol lets the judge read it
    assert (view.source == SOURCE) == proto.judge_sees_source
    assert (view.source is None) == (not proto.judge_sees_source)
    texts = " ".join(s.text for t in view.turns for s in t.segments)
    assert "FAILED-TURN-TEXT" not in texts
    if proto.family in ("naive", "expert"):
        assert view.turns == ()
    else:
        assert view.turns
    # verified quotes are the source's characters
    for t in view.turns:
        for seg in t.segments:
            if seg.verified:
                assert seg.text in SOURCE
    # stepped: after round r
    for r in range(1, proto.rounds + 1):
        stepped = blind_view(facts, after_round=r)
        assert stepped.rounds_shown == r
        for t in stepped.turns:
            assert t.round <= r
            assert not (t.kind == "question" and t.round >= r)
    # the model judge's prompt and a person's page both render exactly this view
    chat = judge_prompt(TemplateSet.load("judge"), view, "logprob")
    prompt = "\n".join(m["content"] for m in chat.messages)
    if view.turns:
        assert view_transcript(view) in prompt
    assert "FAILED-TURN-TEXT" not in prompt
    if not proto.judge_sees_source:
        assert SOURCE not in prompt


def test_another_order_is_the_only_thing_a_judge_may_change():
    facts = facts_for("debate")
    swapped = blind_view(facts, order=(0, 1))
    assert swapped.answers == ("No ships", "Blind")
    assert dict(swapped.claims)["Debater A"] == 1 and dict(blind_view(facts).claims)["Debater A"] == 0
    with pytest.raises(ValueError, match="order"):
        blind_view(facts, order=(0, 0))


# ---------------------------------------------------------------- the three consumers

PROTOCOLS = ["debate", "consultancy", "debate-simultaneous", "naive-judge", "expert-judge"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("views")
    url = f"sqlite:///{tmp / 'v.db'}"
    store = open_store(url)
    for name in PROTOCOLS:
        rounds = 0 if name in ("naive-judge", "expert-judge") else 2
        run_scripted(store, tmp, name, n_questions=2, protocol=name, rounds=rounds)
    # one judge per protocol: the experiments share their questions, and a judge never
    # gets a question twice across experiments
    add_accounts(store, *[(f"j-{name}", "judge") for name in PROTOCOLS])
    yield store, url
    store.dispose()


@pytest.mark.parametrize("name", PROTOCOLS)
def test_web_queue_debate_show_and_model_judge_share_one_view(world, name):
    store, _url = world
    with store.session() as s:
        debate_ids = [d for (d,) in s.execute(
            Debate.__table__.select().with_only_columns(Debate.id)
            .where(Debate.protocol == name, Debate.status == "done"))]
    assert debate_ids
    c = queue.create_campaign(store, name=f"c-{name}", experiment=name)
    alice = get_user(store, f"j-{name}")
    a, shown, _ = queue.next_with_view(store, alice, c.id)
    assert a is not None and shown is not None
    (record,) = load_debates(store, [a.debate_id])
    model_view = judge_view(record, None, record.answer_order)
    cli_view = judge_transcript(store, a.debate_id).view
    # one value, three consumers
    assert shown.view == model_view == cli_view
    # nothing in it names an agent or the truth
    dumped = repr(shown.view) + judge_html(shown)
    for leak in (HONEST_NAME, LIAR_NAME, "honest", "deceptive", "correct_index"):
        assert leak not in dumped
    queue.submit_judgment(store, alice, a.id, a.debate_id, a.rounds_shown, [60, 40], "why")


def test_debate_show_prints_the_blind_view(world, capsys):
    _store, url = world
    code, out, _ = run_cli(["show", "1", "--db", url], capsys)
    assert code == 0
    for leak in (HONEST_NAME, LIAR_NAME, "honest", "deceptive"):
        assert leak not in out
