"""Schedules: which games a tournament plays. Pure: no I/O.

A game is one experiment: a protocol and who argues the true answer (honest) and who the
false one (deceptive), over the tournament's whole question set (both answer orders when
asked). Round robin plays every ordered pair (each debater on both sides, self-play
included) in every debate protocol, and every debater as consultant (honest and deceptive
consultancies, half each) in every consultancy protocol. Swiss plays self-play and
consultancy first (round 0; the strength curve needs them), then `rounds` rounds in which
debaters are paired by current rating, each pair playing both side assignments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from debate.config import ProtocolSettings

CROSS, SELF, CONSULTANCY = "cross", "self", "consultancy"


@dataclass(frozen=True)
class Game:
    protocol: ProtocolSettings
    kind: str  # cross | self | consultancy
    honest: str
    deceptive: str
    round: int = 0

    def experiment_name(self, tournament: str) -> str:
        who = self.honest if self.kind == CONSULTANCY else f"{self.honest}~{self.deceptive}"
        return f"{tournament}/{self.protocol.name}/{who}"


def self_and_consultancy_games(debaters: list[str], debate_protocols: list[ProtocolSettings],
                               consultancy_protocols: list[ProtocolSettings],
                               self_play: bool = True) -> list[Game]:
    games = []
    if self_play:
        games += [Game(p, SELF, d, d) for p in debate_protocols for d in debaters]
    games += [Game(p, CONSULTANCY, d, d) for p in consultancy_protocols for d in debaters]
    return games


def round_robin(debaters: list[str], debate_protocols: list[ProtocolSettings],
                consultancy_protocols: list[ProtocolSettings], self_play: bool = True) -> list[Game]:
    games = [Game(p, CROSS, h, d) for p in debate_protocols for h in debaters for d in debaters
             if h != d]
    return self_and_consultancy_games(debaters, debate_protocols, consultancy_protocols,
                                      self_play) + games


def swiss_pairs(ratings: dict[str, float], played: set[frozenset[str]], seed: int,
                round_: int, max_steps: int = 100_000) -> list[tuple[str, str]]:
    """Pairs for one swiss round: debaters ordered by rating (ties in a seeded random
    order); the best-rated free debater meets the nearest-rated one it has not met yet,
    backtracking when that leaves others with no new opponent. When no pairing without
    repeats exists (or the search runs out of steps) pairs are made greedily, repeats
    allowed. With an odd count the lowest-rated debater sits out."""
    rng = random.Random(f"{seed}:{round_}")
    names = sorted(ratings)
    rng.shuffle(names)
    order = sorted(names, key=lambda n: -ratings[n])  # stable: ties keep the shuffled order
    if len(order) % 2:
        order = order[:-1]
    steps = 0

    def search(free: list[str]) -> list[tuple[str, str]] | None:
        nonlocal steps
        if not free:
            return []
        top, rest = free[0], free[1:]
        for partner in rest:
            steps += 1
            if steps > max_steps:
                return None
            if frozenset((top, partner)) in played:
                continue
            tail = search([n for n in rest if n != partner])
            if tail is not None:
                return [(top, partner), *tail]
        return None

    found = search(order)
    if found is not None:
        return found
    free, pairs = list(order), []
    while len(free) >= 2:
        top = free.pop(0)
        partner = next((n for n in free if frozenset((top, n)) not in played), free[0])
        free.remove(partner)
        pairs.append((top, partner))
    return pairs


def swiss_round(pairs: list[tuple[str, str]], debate_protocols: list[ProtocolSettings],
                round_: int) -> list[Game]:
    return [Game(p, CROSS, h, d, round_) for a, b in pairs for p in debate_protocols
            for h, d in ((a, b), (b, a))]
