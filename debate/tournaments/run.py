"""Running a tournament: expand it into experiments once, run their debates, judge rounds.

`plan_tournament` checks everything that can be checked without the database (the
config, the data set, every debater's settings, the names of the experiments) and writes
nothing. `run_tournament` stores each game as an experiment named
`TOURNAMENT/PROTOCOL/HONEST~DECEPTIVE` (consultancy: `TOURNAMENT/PROTOCOL/CONSULTANT`),
with the tournament's seed, so every game sees the same questions in the same answer
orders; an experiment that already exists is resumed, never recreated, so rerunning
resumes and adding a debater adds only its games. Each debater is built once and serves
every game it plays. After each round, `judge_games` (given by the caller: judging lives
in the `judges` package) judges the round's games; a swiss round is paired from the
ratings of those verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from debate.agents.base import Debater
from debate.agents.registry import BuildContext, build_agent, validate_agent_settings
from debate.analysis.strength import tournament_ratings
from debate.config import ExperimentConfig, parse_config
from debate.datasets import load_questions, validate_dataset_settings
from debate.engine import Engine, EngineOptions, RunStats
from debate.errors import ConfigError
from debate.questions import Question
from debate.store.db import Store
from debate.store.experiments import store_experiment
from debate.store.runs import (
    claim_debates,
    count_by_status,
    first_errors,
    release_debates,
    reset_failed,
)
from debate.store.tournaments import (
    StoredGame,
    experiment_hashes,
    link_game,
    save_tournament,
    tournament_games,
)
from debate.tournaments.config import DebaterEntry, TournamentConfig, expand_debaters
from debate.tournaments.schedule import (
    CONSULTANCY,
    CROSS,
    Game,
    round_robin,
    self_and_consultancy_games,
    swiss_pairs,
    swiss_round,
)
from debate.vocabulary import DebateStatus

JudgeGames = Callable[[Store, list[StoredGame]], None]
GAMES_PER_BATCH = 16


@dataclass(frozen=True)
class TournamentPlan:
    cfg: TournamentConfig
    config_dir: Path
    debaters: list[DebaterEntry]
    questions: list[Question]
    source: str = "tournament"


@dataclass
class TournamentResult:
    tournament_id: int
    games: int = 0
    created: int = 0  # games (experiments) created by this run
    rounds: int = 0
    debates: dict[str, int] = field(default_factory=dict)  # status -> count, all games
    stats: RunStats = field(default_factory=RunStats)
    reset: int = 0  # failed debates made runnable again
    errors: list[tuple[int, str]] = field(default_factory=list)


def _named(exc: ConfigError, source: str) -> ConfigError:
    message = str(exc)
    return exc if message.startswith(source) else ConfigError(f"{source}: {message}")


def plan_tournament(cfg: TournamentConfig, config_dir: Path, source: str = "tournament"
                    ) -> TournamentPlan:
    """Validate the data set, the debaters and the games' experiment configs; write nothing."""
    try:
        debaters = expand_debaters(cfg)
        for d in debaters:
            validate_agent_settings(d.spec, d.where)
        questions = load_questions(validate_dataset_settings(cfg.dataset), config_dir)
        if not questions:
            raise ConfigError("dataset: the slice selects no questions")
        for q in questions:
            if len(q.answers) != 2:
                raise ConfigError(f"dataset: question {q.id!r} has {len(q.answers)} answers; "
                                  "protocols take two (choose a distractor rule)")
        plan = TournamentPlan(cfg, config_dir, debaters, questions, source)
        names = [d.name for d in debaters]
        for game in round_robin(names[:2], cfg.debate_protocols(), cfg.consultancy_protocols()):
            experiment_config(plan, game)  # every kind of game validates
        longest = max(len(n) for n in names)
        for p in cfg.protocols:
            if len(f"{cfg.tournament}/{p.name}/") + 2 * longest + 1 > 200:
                raise ConfigError("tournament: name too long for its experiments' names "
                                  "(200 characters at most)")
    except ConfigError as exc:
        raise _named(exc, source) from None
    return plan


def experiment_config(plan: TournamentPlan, game: Game) -> ExperimentConfig:
    cfg = plan.cfg
    by_name = {d.name: d.spec for d in plan.debaters}
    data: dict[str, Any] = {
        "name": game.experiment_name(cfg.tournament),
        "seed": cfg.seed,
        "dataset": cfg.dataset,
        "protocol": game.protocol.model_dump(exclude_none=True),
        "both_orders": cfg.both_orders,
        "judges": cfg.judges,
        "description": f"tournament {cfg.tournament}: {game.kind} game",
    }
    if game.kind == CROSS:
        data["honest_debater"] = by_name[game.honest]
        data["deceptive_debater"] = by_name[game.deceptive]
    else:
        data["debater"] = by_name[game.honest]
    return parse_config(data, f"{plan.source}: game {data['name']}")


class _Runner:
    """Stores and runs games, building each debater once."""

    def __init__(self, store: Store, plan: TournamentPlan, tournament_id: int,
                 show_progress: bool):
        self.store, self.plan, self.tournament_id = store, plan, tournament_id
        self.show_progress = show_progress
        self.context = BuildContext(config_dir=plan.config_dir, db_url=store.url,
                                    seed=plan.cfg.seed)
        self.specs = {d.name: d for d in plan.debaters}
        self.built: dict[str, Debater] = {}
        self.result = TournamentResult(tournament_id)

    def agent(self, name: str) -> Debater:
        if name not in self.built:
            d = self.specs[name]
            try:
                self.built[name] = build_agent(d.spec, d.where, self.context)
            except ConfigError as exc:
                raise _named(exc, self.plan.source) from None
        return self.built[name]

    def store_games(self, games: list[Game]) -> list[tuple[StoredGame, dict[int, Debater]]]:
        stored = []
        for game in games:
            cfg = experiment_config(self.plan, game)
            honest, deceptive = self.agent(game.honest), self.agent(game.deceptive)
            exp = store_experiment(
                self.store, name=cfg.name, config=cfg.model_dump(mode="json"),
                config_hash=cfg.hash(), protocol=cfg.built_protocol(), seed=cfg.seed,
                questions=self.plan.questions, both_orders=cfg.both_orders,
                identities={"honest": honest.identity, "deceptive": deceptive.identity},
                source="tournament",
            )
            link_game(self.store, self.tournament_id, exp.id, game.round, game.kind,
                      game.protocol.name, game.honest, game.deceptive)
            self.result.created += int(exp.created)
            if not exp.created:
                self.result.reset += reset_failed(self.store, exp.id)
            agents = {exp.agent_ids["honest"]: honest, exp.agent_ids["deceptive"]: deceptive}
            stored.append((StoredGame(exp.id, cfg.name, game.round, game.kind, game.protocol.name,
                                      game.honest, game.deceptive), agents))
        return stored

    def run_games(self, games: list[tuple[StoredGame, dict[int, Debater]]], label: str) -> None:
        """Run the games' unfinished debates, GAMES_PER_BATCH games at a time in one engine
        pass (one batched call per agent per step across those games), then any debate
        left (held by another worker, say) game by game as `debate run` would."""
        counts = [count_by_status(self.store, g.experiment_id) for g, _ in games]
        total = sum(sum(c.values()) for c in counts)
        already = sum(c.get(DebateStatus.DONE, 0) + c.get(DebateStatus.WAITING_HUMAN, 0)
                      for c in counts)
        todo = [(g, a) for (g, a), c in zip(games, counts)
                if c.get(DebateStatus.PENDING, 0) + c.get(DebateStatus.RUNNING, 0)]
        stats = self.result.stats
        options = EngineOptions(source_indexes={})
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("debates · {task.fields[rate]:.0f} turns/s"), TimeElapsedColumn(),
                      disable=not self.show_progress) as bar:
            task = bar.add_task(label, total=total, completed=already, rate=0.0)
            finished = [already]

            def run_one(engine_call: Callable[[Engine], RunStats], agents: dict[int, Debater]) -> None:
                base = finished[0]

                def hook(s: RunStats, _active: int) -> None:
                    bar.update(task, completed=base + s.debates_done + s.debates_failed
                               + s.debates_waiting,
                               rate=(stats.turns + s.turns) / max(stats.seconds + s.seconds, 1e-9))

                run = engine_call(Engine(self.store, agents, options, hook))
                finished[0] += run.debates_done + run.debates_failed + run.debates_waiting
                for name in ("turns", "debates_done", "debates_failed", "debates_waiting",
                             "steps", "seconds"):
                    setattr(stats, name, getattr(stats, name) + getattr(run, name))
                stats.errors += run.errors[: max(0, 3 - len(stats.errors))]

            for i in range(0, len(todo), GAMES_PER_BATCH):
                batch = todo[i: i + GAMES_PER_BATCH]
                agents = {k: v for _, a in batch for k, v in a.items()}
                ids = [d for g, _ in batch for d in claim_debates(
                    self.store, g.experiment_id, options.worker, options.claim_size,
                    options.lease_seconds)]
                if not ids:
                    continue
                try:
                    run_one(lambda engine, ids=ids: engine.advance_leased(ids), agents)
                finally:
                    release_debates(self.store, options.worker, ids)
            for game, agents in todo:
                left = count_by_status(self.store, game.experiment_id)
                if left.get(DebateStatus.PENDING, 0) + left.get(DebateStatus.RUNNING, 0):
                    run_one(lambda engine, g=game: engine.run(g.experiment_id), agents)

    def close(self) -> None:
        for agent in self.built.values():
            agent.close()


def run_tournament(
    store: Store,
    cfg: TournamentConfig,
    config_dir: Path,
    *,
    plan: TournamentPlan | None = None,
    judge_games: JudgeGames | None = None,
    show_progress: bool = True,
) -> TournamentResult:
    """Expand (once), run and judge the tournament; rerunning resumes it. Nothing is
    written when the config, data set or debaters are refused, or when a game's
    experiment already exists with a different config."""
    plan = plan or plan_tournament(cfg, config_dir)
    if cfg.schedule.type == "swiss" and judge_games is None:
        raise ConfigError(f"{plan.source}: judges: a swiss schedule needs its judges run "
                          "between rounds (run it with `debate run`)")
    names = [d.name for d in plan.debaters]
    first = (round_robin(names, cfg.debate_protocols(), cfg.consultancy_protocols(), cfg.self_play)
             if cfg.schedule.type == "round_robin" else
             self_and_consultancy_games(names, cfg.debate_protocols(), cfg.consultancy_protocols()))
    _refuse_changed(store, plan, first)
    tid = save_tournament(store, cfg.tournament, cfg.schedule.type, cfg.model_dump(mode="json"),
                          cfg.hash(), cfg.seed)
    runner = _Runner(store, plan, tid, show_progress)
    try:
        rounds = [first]
        if cfg.schedule.type == "swiss":
            rounds += [None] * cfg.schedule.rounds  # paired when reached
        every: list[StoredGame] = []
        for r, games in enumerate(rounds):
            if games is None:
                games = _swiss_games(store, plan, r, every)
            stored = runner.store_games(games)
            every += [g for g, _ in stored]
            runner.run_games(stored, f"{cfg.tournament} round {r}" if len(rounds) > 1
                             else cfg.tournament)
            if judge_games is not None:
                judge_games(store, [g for g, _ in stored])
            runner.result.rounds = r + 1
    finally:
        runner.close()
    result = runner.result
    result.games = len(every)
    for g in every:
        for status, n in count_by_status(store, g.experiment_id).items():
            result.debates[status] = result.debates.get(status, 0) + n
        if len(result.errors) < 3:
            result.errors += first_errors(store, g.experiment_id, 3 - len(result.errors))
    return result


def _refuse_changed(store: Store, plan: TournamentPlan, games: list[Game]) -> None:
    """A game whose experiment exists under another config stops the run before any write."""
    wanted = {experiment_config(plan, g).name: experiment_config(plan, g).hash() for g in games}
    for name, stored_hash in experiment_hashes(store, list(wanted)).items():
        if stored_hash != wanted[name]:
            raise ConfigError(
                f"{plan.source}: experiment {name!r} already exists with a different config "
                "(changed dataset, seed, protocol or debater settings?); give the tournament "
                "another name")


def _swiss_games(store: Store, plan: TournamentPlan, round_: int,
                 so_far: list[StoredGame]) -> list[Game]:
    """The round's games. Pairs stored for this round by an earlier run are kept (both
    side assignments, whichever was stored; a run killed while storing them loses none);
    debaters in no stored pair (all of them the first time, or debaters added since) are
    paired among themselves by current rating."""
    cfg = plan.cfg
    names = [d.name for d in plan.debaters]
    stored = [g for g in tournament_games(store, cfg.tournament) or []
              if g.round == round_ and g.kind == CROSS]
    pairs = list(dict.fromkeys(tuple(sorted((g.honest, g.deceptive))) for g in stored
                               if g.honest in names and g.deceptive in names))
    paired = {n for p in pairs for n in p}
    free = [n for n in names if n not in paired]
    if len(free) >= 2:
        debate_games = [g for g in so_far if g.kind != CONSULTANCY]
        ratings = tournament_ratings(store, [g.experiment for g in debate_games],
                                     cfg.rating_judge())
        played = {frozenset((g.honest, g.deceptive)) for g in debate_games if g.kind == CROSS}
        pairs += swiss_pairs({n: ratings.get(n, 0.0) for n in free}, played, cfg.seed, round_)
    return swiss_round(pairs, cfg.debate_protocols(), round_)
