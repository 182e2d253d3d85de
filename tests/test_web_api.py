"""The launched app through gradio_client and raw HTTP: login, the judging flow, the
security rules (no truth before submitting, inert debater text, no submitting for
others, admin-only handlers refused on the server), validation, the human debater."""

from __future__ import annotations

import re

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from sqlalchemy import func, select
from web_launch import launch
from web_world import (
    HONEST_NAME,
    LIAR_NAME,
    PASSWORD,
    RawSession,
    add_accounts,
    run_scripted,
)

from debate.store import open_store
from debate.store.models import Debate, Feedback, Judgment, Question, Quote, Seat, Turn
from debate.users import get_user
from judges import queue

OTHER_VERDICT = "OTHERJUDGE-VERDICT-7731"
# Anything that would tell a judge the truth, a model's name, or another judge's verdict.
LEAKS = [
    re.compile(p, re.IGNORECASE)
    for p in (r"SECRETMODEL", re.escape(HONEST_NAME), re.escape(LIAR_NAME), r"honest",
              r"deceptive", r"correct[_ ]?(index|answer)", r"\(correct\)", r"is_correct",
              r"order=\d", r"\bvariant\W+(order|honest)", re.escape(OTHER_VERDICT), r"\b83\s*%", r"lease_owner")
]
# next_debate / submit_judgment outputs as gradio_client returns them (buttons and groups
# are left out by the client).
FIELDS = ["view", "assignment", "debate", "round", "progress", "message", "judgment",
          "prob_a", "prob_b", "explanation"]


def as_fields(out: tuple) -> dict:
    return dict(zip(FIELDS, out))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webapp")
    store = open_store(f"sqlite:///{tmp / 'web.db'}")
    run_scripted(store, tmp, "exp", n_questions=4, rounds=2, xss=True)
    run_scripted(store, tmp, "hx", n_questions=1, rounds=2, both_orders=False,
                 honest={"type": "human", "name": "person", "user": "deb"})
    add_accounts(store, ("alice", "judge"), ("bob", "judge"), ("carol", "judge"),
                 ("root", "admin"), ("deb", "debater"))
    c1 = queue.create_campaign(store, name="c1", experiment="exp", judgments_per_debate=2)
    carol = get_user(store, "carol")
    a = queue.next_assignment(store, carol, c1.id)
    queue.submit_judgment(store, carol, a.id, a.debate_id, a.rounds_shown, [83, 17],
                          OTHER_VERDICT)
    launched = launch(store)
    yield store, launched.url, c1
    launched.close()
    store.dispose()


def client(url: str, user: str) -> Client:
    return Client(url, auth=(user, PASSWORD), verbose=False, download_files=False)


def count(store, model, *where) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def assert_no_leak(text: str, where: str) -> None:
    for pattern in LEAKS:
        m = pattern.search(text)
        assert m is None, f"{where}: leaks {m.group(0)!r}: ...{text[max(0, m.start()-80):m.end()+80]}"


def test_login_required(app):
    _store, url, _c1 = app
    anon = httpx.Client(base_url=url)
    assert anon.get("config").status_code == 401
    assert anon.get("gradio_api/info").status_code == 401
    r = anon.post("gradio_api/queue/join", json={"data": ["1"], "fn_index": 3,
                                                  "session_hash": "x", "trigger_id": None})
    assert r.status_code == 401
    assert anon.post("login", data={"username": "alice", "password": "wrong"}).status_code == 400
    assert anon.post("login", data={"username": "ghost", "password": PASSWORD}).status_code == 400
    with pytest.raises(Exception):  # noqa: B017 - gradio_client fails on the 401 config
        Client(url, verbose=False)


def test_judge_payloads_hold_no_truth(app):
    store, url, c1 = app
    raw = RawSession(url, "alice")
    page = raw.get("")
    assert "Debate judging" in page
    config = raw.config()
    config_text = raw.received[-1]
    assert "boat" not in config_text  # no debate content in the page config at all
    for i in raw.load_fn_indices():
        raw.call(i, [])
    raw.call(raw.fn_index("select_campaign"), [str(c1.id)])
    first = raw.call(raw.fn_index("next_debate"), [str(c1.id)])
    view = first["output"]["data"][0]
    assert "boat number" in view and "Debater A" in view  # the debate really is shown
    assert config["username"] == "alice"
    assert_no_leak(raw.all_text(), "alice's payloads before submitting")

    # Debater text is escaped: the payloads hold no live markup from the debater...
    assert "<script" not in view and "&lt;script&gt;" in view
    assert "<img" not in view and "<svg" not in view and "<a " not in view
    # ...and a forged verified-quote span stays text; the real quote shows unverified.
    assert "&lt;span class" in view
    assert re.search(r'<span class="quote-unverified"[^>]*>[^<]*FORGEDQUOTE', view)
    assert not re.search(r'<span class="quote-verified"[^>]*>[^<]*(FORGED)', view)

    # The same debate with the truth flipped sends exactly the same bytes.
    debate_id = int(first["output"]["data"][2])
    with store.session() as s:
        d = s.get(Debate, debate_id)
        q = s.get(Question, d.question_id)
        q.correct_index = 1 - q.correct_index
        seats = {r.role: r for r in s.scalars(select(Seat).where(Seat.debate_id == debate_id))}
        seats["A"].agent_id, seats["B"].agent_id = seats["B"].agent_id, seats["A"].agent_id
    try:
        again = raw.call(raw.fn_index("next_debate"), [str(c1.id)])
        assert again["output"]["data"] == first["output"]["data"]
    finally:
        with store.session() as s:
            q = s.get(Question, s.get(Debate, debate_id).question_id)
            q.correct_index = 1 - q.correct_index
            seats = {r.role: r for r in s.scalars(select(Seat).where(Seat.debate_id == debate_id))}
            seats["A"].agent_id, seats["B"].agent_id = seats["B"].agent_id, seats["A"].agent_id


def test_two_judges_cannot_submit_for_each_other(app):
    store, url, c1 = app
    bob, dave = client(url, "bob"), client(url, "carol")
    mine = as_fields(bob.predict(str(c1.id), api_name="/next_debate"))
    theirs = as_fields(dave.predict(str(c1.id), api_name="/next_debate"))
    assert mine["assignment"] and theirs["assignment"]
    before = count(store, Judgment)
    attempts = [
        (theirs["assignment"], theirs["debate"]),  # another judge's assignment
        (mine["assignment"], theirs["debate"]),  # own assignment, another debate
        (mine["assignment"], "99999"),  # a debate nobody assigned
        ("99999", mine["debate"]),
    ]
    for aid, did in attempts:
        with pytest.raises(AppError, match="not assigned to you"):
            bob.predict(str(c1.id), aid, did, mine["round"], 60, 40, "mine now",
                        api_name="/submit_judgment")
    assert count(store, Judgment) == before


def test_validation_refusals_then_submit_and_feedback(app):
    store, url, c1 = app
    alice = client(url, "alice")
    cur = as_fields(alice.predict(str(c1.id), api_name="/next_debate"))
    args = (str(c1.id), cur["assignment"], cur["debate"], cur["round"])
    before = count(store, Judgment)
    for pa, pb, text, message in [
        # the slider refuses these itself; the queue would too (tests/test_queue.py)
        (0, 100, "x", "outside 1-99%|less than minimum value 1"),
        (100, 0, "x", "outside 1-99%|greater than maximum value 99"),
        (60, 60, "x", "sum to 120%"),
        (50, 50, "  ", "explanation: required"),
        (50, 50, "y" * (queue.MAX_EXPLANATION + 1), "over the limit"),
    ]:
        with pytest.raises(AppError, match=message):
            alice.predict(*args, pa, pb, text, api_name="/submit_judgment")
    assert count(store, Judgment) == before
    done = as_fields(alice.predict(*args, 64, 36, "the quotes were real",
                                   api_name="/submit_judgment"))
    assert "Judgment recorded" in done["message"] and "correct answer was" in done["message"]
    user = get_user(store, "alice")
    with store.session() as s:
        j = s.scalars(select(Judgment).where(Judgment.user_id == user.id)).one()
    assert j.kind == "final" and j.explanation == "the quotes were real"
    assert j.time_taken_ms is not None and j.time_taken_ms >= 0
    assert str(j.id) == done["judgment"]
    with pytest.raises(AppError, match="confidence"):
        alice.predict(done["judgment"], 3, 4, None, "", api_name="/submit_feedback")
    with pytest.raises(AppError, match="not yours"):
        client(url, "bob").predict(done["judgment"], 3, 4, 5, "", api_name="/submit_feedback")
    alice.predict(done["judgment"], 3, 4, 5, "ok", api_name="/submit_feedback")
    assert count(store, Feedback, Feedback.user_id == user.id) == 1
    # the next debate is another question
    nxt = as_fields(alice.predict(str(c1.id), api_name="/next_debate"))
    assert nxt["debate"] != cur["debate"]


def test_admin_handlers_refused_to_others(app):
    store, url, c1 = app
    alice = client(url, "alice")
    calls = [
        ((None, None, None), "/browse"),
        ((1,), "/open_debate"),
        (("c9", "exp", [], 1, "whole", True), "/create_campaign"),
        ((c1.id,), "/close_campaign"),
        (("mallory", "admin", ""), "/add_user"),
        (([], ["protocol"]), "/results"),
        (("exp", "type: model"), "/start_model_judge"),
    ]
    for args, name in calls:
        with pytest.raises(AppError, match="admins only"):
            alice.predict(*args, api_name=name)
    assert get_user(store, "mallory") is None
    assert queue.get_campaign(store, c1.id).active
    deb = client(url, "deb")
    with pytest.raises(AppError, match="needs the judge role"):
        deb.predict(str(c1.id), api_name="/next_debate")


def test_admin_tabs_work_for_admins(app):
    store, url, _c1 = app
    root = client(url, "root")
    table = root.predict("exp", None, "done", api_name="/browse")
    assert len(table["data"]) == 8
    detail = root.predict(1, api_name="/open_debate")
    assert "(correct)" in detail and "SECRETMODEL" in detail and OTHER_VERDICT in detail
    assert "&lt;script&gt;" in detail and "<script" not in detail
    msg, _ = root.predict("c-new", "exp", ["alice"], 3, "stepped", False,
                          api_name="/create_campaign")
    assert "c&#45;new" in msg  # Markdown specials as entities
    c = next(c for c in queue.list_campaigns(store) if c.name == "c-new")
    assert (c.mode, c.judgments_per_debate, c.reveal_truth, c.judges) == \
        ("stepped", 3, False, ("alice",))
    with pytest.raises(AppError, match="no experiment called 'nope'"):
        root.predict("c-bad", "nope", [], 1, "whole", True, api_name="/create_campaign")
    msg, _ = root.predict("newjudge", "judge", "", api_name="/add_user")
    assert "Generated password" in msg and get_user(store, "newjudge") is not None
    with pytest.raises(AppError, match="judge config: expected a mapping"):
        root.predict("exp", "just text", api_name="/start_model_judge")
    html = root.predict([], ["protocol", "judge"], api_name="/results")
    assert "<table" in html and "accuracy" in html and "<img" in html


def test_model_judge_form(app, tiny_model_dir):
    store, url, _c1 = app
    root = client(url, "root")
    config = f"type: logprob\nname: tiny-web-judge\nmodel: {tiny_model_dir}\nboth_orders: false"
    with pytest.raises(AppError, match="no experiment named 'nope'"):
        root.predict("nope", config, api_name="/start_model_judge")
    msg = root.predict("exp", config, api_name="/start_model_judge")
    assert "Model judge finished on exp" in msg
    with store.session() as s:
        n = s.scalar(select(func.count()).select_from(Judgment)
                     .where(Judgment.user_id.is_(None), Judgment.judge_agent_id.is_not(None)))
    assert n == 8  # every debate of the experiment, once


def test_human_debater_turn(app):
    store, url, _c1 = app
    deb = client(url, "deb")
    out = deb.predict(api_name="/debate_turns")
    pick = out[0]
    assert pick["choices"], "a turn waits for deb"
    debate_id = pick["value"]
    context_html, source_html, role, rnd = out[1], out[2], out[3], out[4]
    assert "Boat number 0" in source_html and "You are" in context_html
    with store.session() as s:
        d = s.get(Debate, int(debate_id))
        assert d.status == "waiting_human"
    too_long = " ".join(["word"] * 151)
    with pytest.raises(AppError, match="151 words is over the limit of 150"):
        deb.predict(debate_id, role, rnd, too_long, None, api_name="/submit_turn")
    with pytest.raises(AppError, match="needs the debater role"):
        client(url, "alice").predict(debate_id, role, rnd, "hi", None, api_name="/submit_turn")
    before = count(store, Turn, Turn.debate_id == int(debate_id))
    text = "The text is clear: <quote>Boat number 0 was painted red</quote> and that settles it."
    status, *_ = deb.predict(debate_id, role, rnd, text, None, api_name="/submit_turn")
    assert "is stored" in status
    deb_user = get_user(store, "deb")
    with store.session() as s:
        turn = s.scalars(select(Turn).where(Turn.debate_id == int(debate_id),
                                            Turn.user_id == deb_user.id)).one()
        quotes = s.scalars(select(Quote).where(Quote.turn_id == turn.id)).all()
        d = s.get(Debate, int(debate_id))
        after = s.scalar(select(func.count()).select_from(Turn)
                         .where(Turn.debate_id == int(debate_id)))
    assert turn.text == text and [q.verified for q in quotes] == [True]
    # the engine went on: the scripted opponent answered, and the debate waits for deb again
    # (round 2) or is finished
    assert after >= before + 1 and d.status in ("waiting_human", "done")
