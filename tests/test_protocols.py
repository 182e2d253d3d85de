"""Protocols as data: schedules, who sees the source, seats and answer orders."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from debate.protocols import (
    BUILTIN,
    CONSULTANT,
    DEBATER_A,
    DEBATER_B,
    JUDGE,
    Limits,
    Protocol,
    Slot,
    get_protocol,
    opposite_seat_answer,
    plan_debates,
)


def flat(protocol: Protocol) -> list[tuple[str, int, str]]:
    return [(s.role, s.round, s.kind) for step in protocol.schedule() for s in step]


def test_sequential_debate_alternates_speakers_one_per_step() -> None:
    p = get_protocol("debate")
    assert not p.simultaneous and p.rounds == 3
    assert p.schedule() == [
        (Slot(DEBATER_A, 1),), (Slot(DEBATER_B, 1),),
        (Slot(DEBATER_A, 2),), (Slot(DEBATER_B, 2),),
        (Slot(DEBATER_A, 3),), (Slot(DEBATER_B, 3),),
    ]
    assert get_protocol("debate-sequential").schedule() == p.schedule()


def test_simultaneous_debate_puts_both_speakers_in_one_step() -> None:
    p = get_protocol("debate-simultaneous", rounds=2)
    assert p.schedule() == [
        (Slot(DEBATER_A, 1), Slot(DEBATER_B, 1)),
        (Slot(DEBATER_A, 2), Slot(DEBATER_B, 2)),
    ]


def test_consultancy_has_one_speaker() -> None:
    p = get_protocol("consultancy")
    assert p.speaker_roles == (CONSULTANT,)
    assert flat(p) == [(CONSULTANT, r, "speech") for r in (1, 2, 3)]


@pytest.mark.parametrize("name", ["interactive-debate", "interactive-consultancy"])
def test_interactive_protocols_put_a_judge_question_between_rounds(name: str) -> None:
    p = get_protocol(name)
    steps = p.schedule()
    questions = [i for i, step in enumerate(steps) if step[0].role == JUDGE]
    assert [steps[i] for i in questions] == [
        (Slot(JUDGE, 1, "question"),), (Slot(JUDGE, 2, "question"),)
    ]
    # each question comes after every speech of its round and before the next round
    for i in questions:
        q_round = steps[i][0].round
        before = [s.round for step in steps[:i] for s in step if s.role != JUDGE]
        after = [s.round for step in steps[i + 1 :] for s in step if s.role != JUDGE]
        assert max(before) == q_round and min(after) == q_round + 1
    # no question after the last round
    assert steps[-1][0].role != JUDGE
    assert not p.sees_source(JUDGE)


@pytest.mark.parametrize(
    ("name", "chooser"), [("open-debate", DEBATER_A), ("open-consultancy", CONSULTANT)]
)
def test_open_protocols_start_with_a_choice_turn(name: str, chooser: str) -> None:
    p = get_protocol(name)
    steps = p.schedule()
    assert steps[0] == (Slot(chooser, 0, "choice"),)
    assert all(s.kind == "speech" for step in steps[1:] for s in step)
    assert len(steps) == 1 + p.rounds * len(p.speaker_roles)


def test_naive_judge_reads_no_argument_and_expert_judge_reads_the_source() -> None:
    naive, expert = get_protocol("naive-judge"), get_protocol("expert-judge")
    for p in (naive, expert):
        assert p.schedule() == [] and p.speaker_roles == () and p.rounds == 0
    assert not naive.sees_source(JUDGE)
    assert expert.sees_source(JUDGE)
    for name in ("debate", "consultancy", "open-debate", "interactive-debate"):
        assert not get_protocol(name).sees_source(JUDGE), name
        assert get_protocol(name).sees_source(DEBATER_A)


def test_every_builtin_round_trips_through_a_dict() -> None:
    for name, p in BUILTIN.items():
        assert Protocol.from_dict(p.to_dict()) == p, name


def test_overrides_and_invalid_protocols() -> None:
    p = get_protocol("debate", rounds=5, limits={"max_words": 80})
    assert p.rounds == 5 and p.limits == Limits(0, 80, 50)
    assert get_protocol("debate") == BUILTIN["debate"]  # the built-in is untouched
    with pytest.raises(KeyError, match="unknown protocol 'nope'"):
        get_protocol("nope")
    with pytest.raises(ValueError, match="rounds"):
        get_protocol("debate", rounds=0)
    with pytest.raises(ValueError, match="rounds"):
        get_protocol("naive-judge", rounds=2)
    with pytest.raises(ValueError, match="simultaneous"):
        get_protocol("consultancy", simultaneous=True)
    with pytest.raises(ValueError, match="limits"):
        Limits(min_words=10, max_words=5)
    with pytest.raises(ValueError, match="max_quoted_words"):
        Limits(max_quoted_words=-1)


def test_a_seat_limit_only_tightens() -> None:
    limits = Limits(min_words=10, max_words=100, max_quoted_words=40)
    assert limits.tightened(None) is limits and limits.tightened(100) is limits
    assert limits.tightened(500) is limits  # never loosened
    assert limits.tightened(30) == Limits(10, 30, 30)
    assert limits.tightened(5) == Limits(5, 5, 5)  # a seat never asked for more than it may say
    assert Limits(0, 100, None).tightened(30) == Limits(0, 30, None)


# ---------------------------------------------------------------- plans


def test_debate_seats_follow_the_display_order() -> None:
    (plan,) = plan_debates(get_protocol("debate"), 2, 0, random.Random(1), both_orders=False)
    assert plan.seats == {DEBATER_A: plan.answer_order[0], DEBATER_B: plan.answer_order[1]}


def test_both_orders_gives_each_order_once() -> None:
    plans = plan_debates(get_protocol("debate"), 2, 1, random.Random(3), both_orders=True)
    assert sorted(p.answer_order for p in plans) == [(0, 1), (1, 0)]
    assert len({p.label for p in plans}) == 2
    for p in plans:  # each answer argued by exactly one debater
        assert sorted(p.seats.values()) == [0, 1]


def test_answer_order_is_random_per_debate() -> None:
    rng = random.Random(7)
    orders = Counter(
        plan_debates(get_protocol("debate"), 2, 0, rng, both_orders=False)[0].answer_order
        for _ in range(400)
    )
    assert set(orders) == {(0, 1), (1, 0)}
    assert 140 < orders[(0, 1)] < 260  # about half each


def test_consultancy_runs_honest_and_deceptive_consultants() -> None:
    for correct in (0, 1):
        plans = plan_debates(
            get_protocol("consultancy"), 2, correct, random.Random(0), both_orders=False
        )
        assert [p.seats[CONSULTANT] for p in plans] == [correct, 1 - correct]
        assert [p.label.split(",")[-1] for p in plans] == ["honest", "deceptive"]
        assert plans[0].answer_order == plans[1].answer_order
    both = plan_debates(get_protocol("consultancy"), 2, 0, random.Random(0), both_orders=True)
    assert len(both) == 4 and len({p.label for p in both}) == 4


def test_open_protocols_leave_sides_to_the_choice() -> None:
    (plan,) = plan_debates(get_protocol("open-debate"), 2, 0, random.Random(0), False)
    assert plan.seats == {DEBATER_A: None, DEBATER_B: None}
    (plan,) = plan_debates(get_protocol("open-consultancy"), 2, 0, random.Random(0), False)
    assert plan.seats == {CONSULTANT: None}
    assert opposite_seat_answer({DEBATER_A: None, DEBATER_B: None}, DEBATER_A, 1) == {
        DEBATER_A: 1, DEBATER_B: 0
    }


def test_judge_only_protocols_plan_one_debate_without_seats() -> None:
    for name in ("naive-judge", "expert-judge"):
        plans = plan_debates(get_protocol(name), 2, 0, random.Random(0), both_orders=True)
        assert [p.seats for p in plans] == [{}, {}]


def test_plans_are_deterministic_given_the_seed() -> None:
    def run(seed: int) -> list:
        rng = random.Random(seed)
        return [
            plan_debates(get_protocol(name), 2, q % 2, rng, both_orders=q % 3 == 0)
            for q in range(30)
            for name in ("debate", "consultancy", "open-debate")
        ]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_only_two_answer_questions_are_planned() -> None:
    with pytest.raises(ValueError, match="answers: protocols take two-answer questions"):
        plan_debates(get_protocol("debate"), 3, 0, random.Random(0), False)
