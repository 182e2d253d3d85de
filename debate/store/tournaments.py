"""Tournaments and their games (one experiment each): the store's reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from debate.store.db import Store
from debate.store.models import Experiment, Tournament, TournamentGame, utcnow


@dataclass(frozen=True)
class StoredGame:
    experiment_id: int
    experiment: str
    round: int
    kind: str  # cross | self | consultancy
    protocol: str
    honest: str
    deceptive: str


def save_tournament(store: Store, name: str, schedule: str, config: dict[str, Any],
                    config_hash: str, seed: int) -> int:
    """The tournament's id; created on first run, its stored config replaced by later runs
    (a rerun with more debaters keeps every game played so far)."""
    with store.write_session() as s:
        row = s.scalar(select(Tournament).where(Tournament.name == name))
        if row is None:
            row = Tournament(name=name, schedule=schedule, config=config,
                             config_hash=config_hash, seed=seed)
            s.add(row)
        elif row.config_hash != config_hash:
            row.config, row.config_hash, row.updated_at = config, config_hash, utcnow()
        s.flush()
        return row.id


def link_game(store: Store, tournament_id: int, experiment_id: int, round_: int, kind: str,
              protocol: str, honest: str, deceptive: str) -> None:
    with store.write_session() as s:
        exists = s.scalar(select(TournamentGame.id).where(
            TournamentGame.tournament_id == tournament_id,
            TournamentGame.experiment_id == experiment_id))
        if exists is None:
            s.add(TournamentGame(tournament_id=tournament_id, experiment_id=experiment_id,
                                 round=round_, kind=kind, protocol=protocol, honest=honest,
                                 deceptive=deceptive))


def tournament_games(store: Store, name: str) -> list[StoredGame] | None:
    """The tournament's games in the order they were added; None if there is no such tournament."""
    with store.session() as s:
        tid = s.scalar(select(Tournament.id).where(Tournament.name == name))
        if tid is None:
            return None
        rows = s.execute(
            select(TournamentGame, Experiment.name)
            .join(Experiment, Experiment.id == TournamentGame.experiment_id)
            .where(TournamentGame.tournament_id == tid).order_by(TournamentGame.id)).all()
    return [StoredGame(g.experiment_id, exp, g.round, g.kind, g.protocol, g.honest, g.deceptive)
            for g, exp in rows]


def tournament_names(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(Tournament.name).order_by(Tournament.name)))


def experiment_hashes(store: Store, names: list[str]) -> dict[str, str]:
    """Experiment name -> stored config hash, for those of `names` that exist."""
    out: dict[str, str] = {}
    with store.session() as s:
        for i in range(0, len(names), 500):
            out.update(s.execute(select(Experiment.name, Experiment.config_hash)
                                 .where(Experiment.name.in_(names[i: i + 500]))).all())
    return out
