"""Human debaters without the browser: the engine waits for people, resumes after each
turn, keeps seats to their people, and refuses turns over the protocol's limits."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from web_world import add_accounts, run_scripted

from debate.human_turns import HumanTurnError, submit_human_turn, turn_context, waiting_turns
from debate.store.models import Debate, Turn
from debate.users import get_user


def test_person_against_person(store, tmp_path):
    add_accounts(store, ("p1", "debater"), ("p2", "debater"), ("p3", "debater"))
    run_scripted(store, tmp_path, "pvp", n_questions=1, rounds=2, both_orders=False,
                 honest={"type": "human", "name": "named seat", "user": "p1"},
                 deceptive={"type": "human", "name": "open seat"})
    p1, p2, p3 = (get_user(store, n) for n in ("p1", "p2", "p3"))
    with store.session() as s:
        debate = s.scalars(select(Debate)).one()
        assert debate.status == "waiting_human"
    spoken_open = False
    for turns in range(4):  # two rounds, two seats
        mine = {u.name: waiting_turns(store, u.name, u.id) for u in (p1, p2, p3)}
        if mine["p1"]:  # the named seat is p1's alone
            assert mine["p2"] == [] and mine["p3"] == []
            who, pending = p1, mine["p1"][0]
        else:  # the open seat: any other debater until one speaks in it, then theirs
            assert mine["p2"] and bool(mine["p3"]) == (not spoken_open)
            who, pending = p2, mine["p2"][0]
            spoken_open = True
        ctx = turn_context(store, who.name, who.id, pending.debate_id)
        assert ctx.request.source and ctx.my_answer_text
        status = submit_human_turn(store, who.name, who.id, pending.debate_id, pending.role,
                                   pending.round, f"Turn {turns}: <quote>Boat number 0</quote>")
        assert status == ("done" if turns == 3 else "waiting_human")
    assert status == "done"
    with store.session() as s:
        rows = s.execute(select(Turn.role, Turn.user_id).order_by(Turn.step)).all()
    users_by_role = {}
    for role, uid in rows:
        users_by_role.setdefault(role, set()).add(uid)
    assert len(rows) == 4 and all(len(v) == 1 for v in users_by_role.values())
    assert {next(iter(v)) for v in users_by_role.values()} == {p1.id, p2.id}
    # once p2 has spoken in the open seat, p3 no longer sees it (nothing waits anyway)
    assert waiting_turns(store, "p3", p3.id) == []


def test_limits_and_wrong_turns_refused(sqlite_store, tmp_path):
    store = sqlite_store
    add_accounts(store, ("p1", "debater"), ("p2", "debater"))
    run_scripted(store, tmp_path, "h", n_questions=1, rounds=1, both_orders=False,
                 honest={"type": "human", "user": "p1"})
    p1, p2 = get_user(store, "p1"), get_user(store, "p2")
    pending = waiting_turns(store, "p1", p1.id)[0]
    args = (pending.debate_id, pending.role, pending.round)
    with pytest.raises(HumanTurnError, match="no turn of yours"):
        submit_human_turn(store, "p2", p2.id, *args, "hello")
    with pytest.raises(HumanTurnError, match="write your turn"):
        submit_human_turn(store, "p1", p1.id, *args, "   ")
    with pytest.raises(HumanTurnError, match="151 words"):
        submit_human_turn(store, "p1", p1.id, *args, "w " * 151)
    with pytest.raises(HumanTurnError, match="quoted words is over the limit of 50"):
        submit_human_turn(store, "p1", p1.id, *args, "<quote>" + "w " * 51 + "</quote>")
    with pytest.raises(HumanTurnError, match="the waiting turn is"):
        submit_human_turn(store, "p1", p1.id, pending.debate_id, pending.role, 5, "hi")
    with store.session() as s:
        assert s.scalars(select(Turn).where(Turn.user_id.is_not(None))).all() == []
    assert submit_human_turn(store, "p1", p1.id, *args, "fine") == "done"
    with pytest.raises(HumanTurnError, match="no turn of yours"):
        submit_human_turn(store, "p1", p1.id, *args, "again")


def test_a_person_is_held_to_the_seats_own_word_limit(sqlite_store, tmp_path):
    store = sqlite_store
    add_accounts(store, ("p1", "debater"))
    run_scripted(store, tmp_path, "hw", n_questions=1, rounds=1, both_orders=False,
                 honest={"type": "human", "user": "p1", "max_words": 10})
    p1 = get_user(store, "p1")
    pending = waiting_turns(store, "p1", p1.id)[0]
    assert turn_context(store, "p1", p1.id, pending.debate_id).request.limits.max_words == 10
    args = (pending.debate_id, pending.role, pending.round)
    with pytest.raises(HumanTurnError, match="11 words is over the limit of 10"):
        submit_human_turn(store, "p1", p1.id, *args, "w " * 11)
    assert submit_human_turn(store, "p1", p1.id, *args, "w " * 10) == "done"
