"""Protocols as data: who speaks in which round, who sees the hidden source, and the limits.

Pure code: no I/O, no torch. A protocol is a frozen value; the engine asks it for its
`schedule()` (an ordered list of steps; the turns inside one step are produced at once
and do not see each other) and `plan_debates()` decides the seats and answer order.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from debate.vocabulary import SeatRole

Family = Literal["debate", "consultancy", "naive", "expert", "pixel"]
TurnKind = Literal["speech", "question", "choice", "pixel"]

# the seat roles by their protocol names
DEBATER_A = SeatRole.A
DEBATER_B = SeatRole.B
CONSULTANT = SeatRole.CONSULTANT
JUDGE = SeatRole.JUDGE


@dataclass(frozen=True)
class Limits:
    min_words: int = 0
    max_words: int = 150
    max_quoted_words: int | None = 50

    def __post_init__(self) -> None:
        if self.min_words < 0 or self.max_words < 1 or self.min_words > self.max_words:
            raise ValueError("limits: need 0 <= min_words <= max_words and max_words >= 1")
        if self.max_quoted_words is not None and self.max_quoted_words < 0:
            raise ValueError("limits: max_quoted_words must be >= 0")

    def tightened(self, max_words: int | None) -> Limits:
        """These limits under a seat's own word limit (an agent spec's `max_words`), which
        can only tighten them: a looser or absent one leaves them as they are."""
        if max_words is None or max_words >= self.max_words:
            return self
        quoted = self.max_quoted_words
        return replace(self, max_words=max_words, min_words=min(self.min_words, max_words),
                       max_quoted_words=None if quoted is None else min(quoted, max_words))


@dataclass(frozen=True)
class Slot:
    """One turn to be produced: by `role`, in `round`, of `kind`."""

    role: str
    round: int
    kind: TurnKind = "speech"


@dataclass(frozen=True)
class Protocol:
    name: str
    family: Family
    rounds: int = 3
    simultaneous: bool = False
    interactive: bool = False
    open_choice: bool = False
    judge_sees_source: bool = False
    debaters_see_source: bool = True
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError("rounds: must be >= 0")
        if self.family in ("naive", "expert") and self.rounds != 0:
            raise ValueError(f"rounds: a {self.family} judge protocol has no rounds")
        if self.family in ("debate", "consultancy") and self.rounds < 1:
            raise ValueError("rounds: must be >= 1")
        if self.family == "consultancy" and self.simultaneous:
            raise ValueError("simultaneous: consultancy has a single speaker")

    @property
    def speaker_roles(self) -> tuple[str, ...]:
        if self.family in ("debate", "pixel"):
            return (DEBATER_A, DEBATER_B)
        if self.family == "consultancy":
            return (CONSULTANT,)
        return ()

    def schedule(self) -> list[tuple[Slot, ...]]:
        """The steps in order. Turns within a step are produced together, blind to each other."""
        roles = self.speaker_roles
        steps: list[tuple[Slot, ...]] = []
        if self.open_choice and roles:
            steps.append((Slot(roles[0], 0, "choice"),))
        kind: TurnKind = "pixel" if self.family == "pixel" else "speech"
        for r in range(1, self.rounds + 1):
            if self.simultaneous:
                steps.append(tuple(Slot(role, r, kind) for role in roles))
            else:
                steps.extend((Slot(role, r, kind),) for role in roles)
            if self.interactive and r < self.rounds:
                steps.append((Slot(JUDGE, r, "question"),))
        return steps

    def sees_source(self, role: str) -> bool:
        if role == JUDGE:
            return self.judge_sees_source
        return self.debaters_see_source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Protocol:
        data = dict(data)
        limits = Limits(**data.pop("limits", {}))
        return Protocol(limits=limits, **data)


BUILTIN: dict[str, Protocol] = {
    p.name: p
    for p in [
        Protocol("debate", "debate", rounds=3, simultaneous=False),
        Protocol("debate-simultaneous", "debate", rounds=3, simultaneous=True),
        Protocol("consultancy", "consultancy", rounds=3),
        Protocol("interactive-debate", "debate", rounds=3, interactive=True),
        Protocol("interactive-consultancy", "consultancy", rounds=3, interactive=True),
        Protocol("open-debate", "debate", rounds=3, open_choice=True),
        Protocol("open-consultancy", "consultancy", rounds=3, open_choice=True),
        Protocol("naive-judge", "naive", rounds=0, debaters_see_source=False),
        Protocol("expert-judge", "expert", rounds=0, judge_sees_source=True),
        # Image debate (debate.pixels): each turn reveals one pixel, "(row, col) = value";
        # rounds = k / 2 (k = 4 here, the paper's 4-pixel game; stored debates set rounds).
        Protocol(
            "pixel-debate",
            "pixel",
            rounds=2,
            judge_sees_source=False,
            limits=Limits(min_words=0, max_words=4, max_quoted_words=None),
        ),
    ]
}
BUILTIN["debate-sequential"] = replace(BUILTIN["debate"], name="debate-sequential")


def get_protocol(name: str, **overrides: Any) -> Protocol:
    """A built-in protocol by name, with fields (rounds, limits, ...) overridden."""
    if name not in BUILTIN:
        known = ", ".join(sorted(BUILTIN))
        raise KeyError(f"unknown protocol {name!r}; known: {known}")
    base = BUILTIN[name]
    limits = overrides.pop("limits", None)
    if isinstance(limits, dict):
        limits = replace(base.limits, **limits)
    if limits is not None:
        overrides["limits"] = limits
    return replace(base, **overrides) if overrides else base


@dataclass(frozen=True)
class DebatePlan:
    """One debate to create for a question.

    `answer_order[i]` is the index (in the question's own answer list) of the answer shown
    in position i. `seats` maps a role to the original answer index it argues; None means
    the agent picks its side in a choice turn (open protocols).
    """

    answer_order: tuple[int, ...]
    seats: dict[str, int | None]
    label: str = ""


def plan_debates(
    protocol: Protocol, n_answers: int, correct_index: int, rng: random.Random, both_orders: bool
) -> list[DebatePlan]:
    """Debates to run for one question. Deterministic given `rng`'s state."""
    if n_answers != 2:
        raise ValueError(f"answers: protocols take two-answer questions, got {n_answers}")
    first = tuple(rng.sample(range(n_answers), n_answers))
    orders = [first, tuple(reversed(first))] if both_orders else [first]
    incorrect = 1 - correct_index
    plans: list[DebatePlan] = []
    for order in orders:
        tag = "order=" + "".join(str(i) for i in order)
        if protocol.family in ("debate", "pixel"):
            if protocol.open_choice:
                seats: dict[str, int | None] = {DEBATER_A: None, DEBATER_B: None}
            else:
                # Debater A argues the answer shown first, as in the NYU study.
                seats = {DEBATER_A: order[0], DEBATER_B: order[1]}
            plans.append(DebatePlan(order, seats, tag))
        elif protocol.family == "consultancy":
            if protocol.open_choice:
                plans.append(DebatePlan(order, {CONSULTANT: None}, tag))
            else:
                plans.append(DebatePlan(order, {CONSULTANT: correct_index}, tag + ",honest"))
                plans.append(DebatePlan(order, {CONSULTANT: incorrect}, tag + ",deceptive"))
        else:
            plans.append(DebatePlan(order, {}, tag))
    return plans


def opposite_seat_answer(seats: dict[str, int | None], chooser: str, chosen: int) -> dict[str, int]:
    """After an open-protocol choice: the chooser argues `chosen`, any other seat the other."""
    return {role: (chosen if role == chooser else 1 - chosen) for role in seats}
