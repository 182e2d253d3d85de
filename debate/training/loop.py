"""`debate train loop`: rounds of self-play -> preference data -> DPO -> a new debater.

    # loop.yaml
    name: selfplay                 # experiments: {name}-{protocol}-r{round}
    rounds: 2                      # DPO rounds; round 0 is the base model
    seed: 0
    dataset: {name: sample, limit: 20}
    eval_dataset: null             # held-out questions to measure every round on (advised)
    both_orders: true
    protocols:                     # one track per protocol, each its own line of debaters
      - {name: debate, rounds: 2, max_words: 80}
      - {name: consultancy, rounds: 2, max_words: 80}
    debater:                       # round 0; later rounds load the previous round's model
      type: model
      model: Qwen/Qwen2.5-0.5B-Instruct
      best_of: 2                   # two candidate speeches per turn: the preference pairs
      temperature: 0.8             # (scored by `judge`'s model unless preference_judge is set)
    judge: {type: logprob, model: Qwen/Qwen2.5-0.5B-Instruct}   # accuracy per round
    data: {min_margin: 0.0, pairs: best_worst, sources: [candidates]}   # SelectionRule
    dpo: {beta: 0.1, max_steps: 100, learning_rate: 5.0e-6}            # or a YAML file name
    lora: false                    # true: LoRA (settings in dpo.lora, defaults otherwise)
    cross_play: true               # debate tracks: round r against round r-1, both sides
    strength_bootstrap: 200        # replicates for the strength curve's intervals
    out: selfplay-runs/            # data, checkpoints and report (relative to the config)

Every round's debater is its own agent (`{name}-{protocol}-r{round}`, its own model
directory), so the analysis rates it; cross-play experiments between consecutive rounds
give the Bradley-Terry ratings matches to rate. Per round the report shows judge
accuracy beside the exploit counts (debate.training.exploits).

Everything resumes: experiments by name, judgments per judge, data folders that are
complete, DPO from its last checkpoint. The judge is passed in by the caller (`judges`
sits above `debate`), as `judge_fn(store, experiment) -> {"judge": name, ...}`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from debate.analysis import analyze
from debate.analysis.strength import strength_analysis
from debate.backends.settings import BackendSettings
from debate.config import ProtocolSettings, parse_config
from debate.errors import ConfigError, UserError
from debate.run import plan_run, run_experiment
from debate.store.db import Store
from debate.training.dpo import train_dpo
from debate.training.exploits import exploit_counts
from debate.training.loop_config import LoopConfig
from debate.training.pairs_io import read_manifest, write_preference_dir
from debate.training.preferences import build_preference_data
from debate.training.report import (
    LoopReport,
    RoundRow,
    ratings_of_rounds,
    strength_ratings,
    write_report,
)
from debate.training.settings import DPOSettings

JudgeFn = Callable[[Store, str], dict[str, Any]]
Log = Callable[[str], None]


def _agent_name(cfg: LoopConfig, track: str, rnd: int) -> str:
    return f"{cfg.name}-{track}-r{rnd}"


def _debater(cfg: LoopConfig, track: str, rnd: int, model: str,
             config_dir: Path) -> dict[str, Any]:
    spec = {**cfg.debater, "model": model, "name": _agent_name(cfg, track, rnd)}
    if "preference_judge" not in spec:
        # Candidates are scored by the judge the debaters are trained to convince.
        judge = {k: v for k, v in cfg.judge.items() if k in BackendSettings.model_fields}
        if isinstance(judge.get("model"), str):
            judge["model"] = _local_or_hub(judge["model"], config_dir)
        spec["preference_judge"] = judge
    return spec


def _experiment(cfg: LoopConfig, name: str, protocol: ProtocolSettings, seed: int,
                source: str, dataset: dict[str, Any] | None = None,
                **seats: dict[str, Any]) -> Any:
    return parse_config({
        "name": name,
        "seed": seed,
        "dataset": dataset or cfg.dataset,
        "protocol": protocol.model_dump(exclude_none=True),
        "both_orders": cfg.both_orders,
        **seats,
    }, f"{source}: experiment {name}")


def _accuracy(store: Store, experiment: str, judge: str | None) -> dict[str, Any]:
    acc = analyze(store, experiments=[experiment], by=["experiment", "judge"]).tables["accuracy"]
    if judge is not None and "judge" in acc:
        acc = acc[acc["judge"] == judge]
    if acc.empty:
        return {}
    row = acc.iloc[0]

    def num(key: str) -> float | None:
        value = row.get(key)
        return None if value is None or pd.isna(value) else float(value)

    n = row.get("n", row.get("debates"))
    return {"accuracy": num("accuracy"), "accuracy_low": num("wilson_low"),
            "accuracy_high": num("wilson_high"),
            "deceptive_win_rate": num("deceptive_win_rate"),
            "judged_debates": int(n) if n is not None and not pd.isna(n) else 0}


def _left_out(counts: dict[str, Any], key: str) -> int:
    return sum(int(v) for c in counts.values() for k, v in c.items() if k == key)


def _local_or_hub(model: str, config_dir: Path) -> str:
    """A model directory next to the config (as an absolute path), else the name as given."""
    local = Path(model).expanduser()
    if not local.is_absolute() and (config_dir / local).is_dir():
        return str((config_dir / local).resolve())
    return model


def _question_key(q: Any) -> tuple:
    return (q.question.strip(), tuple(a.strip() for a in q.answers), (q.source or "").strip())


def check_loop(cfg: LoopConfig, config_dir: Path, source: str = "loop config") -> str:
    """Refuse what can be refused before anything is loaded or written (each track's
    experiments: protocol, data sets, debater settings; held-out questions that are also
    training questions); returns the base model."""
    base_model = _local_or_hub(cfg.debater["model"], config_dir)
    for p in cfg.protocols:
        spec = _debater(cfg, p.name, 0, base_model, config_dir)
        exp = _experiment(cfg, _agent_name(cfg, p.name, 0), p, cfg.seed, source, debater=spec)
        train = plan_run(exp, config_dir, f"{source}: experiment {exp.name}")
        if cfg.eval_dataset is None:
            continue
        eval_exp = _experiment(cfg, exp.name + "-eval", p, cfg.seed, source,
                               dataset=cfg.eval_dataset, debater=spec)
        held = plan_run(eval_exp, config_dir, f"{source}: eval_dataset")
        shared = {_question_key(q) for q in train.questions} & {
            _question_key(q) for q in held.questions}
        if shared:
            raise ConfigError(f"{source}: eval_dataset: {len(shared)} of its questions are "
                              "also training questions (dataset); hold out other questions")
    return base_model


def run_loop(store: Store, cfg: LoopConfig, dpo: DPOSettings, config_dir: Path,
             judge_fn: JudgeFn, *, log: Log = print, show_progress: bool = True,
             source: str = "loop config") -> LoopReport:
    out = Path(cfg.out or f"{cfg.name}-training")
    out = (out if out.is_absolute() else config_dir / out).resolve()
    base_model = check_loop(cfg, config_dir, source)
    rows: list[RoundRow] = []
    cross: list[str] = []
    held_out = cfg.eval_dataset

    def run_and_judge(exp: Any) -> dict[str, Any]:
        run_experiment(store, exp, config_dir, show_progress=show_progress)
        return judge_fn(store, exp.name)

    for p in cfg.protocols:
        track = p.name
        model = base_model
        family_is_debate = p.build().family == "debate"
        for rnd in range(cfg.rounds + 1):
            name = _agent_name(cfg, track, rnd)
            spec = _debater(cfg, track, rnd, model, config_dir)
            seed = cfg.seed + rnd
            log(f"[{track} round {rnd}] self-play: {name}")
            summary = run_and_judge(_experiment(cfg, name, p, seed, source, debater=spec))
            measured = name
            if held_out is not None:
                measured = f"{name}-eval"
                log(f"[{track} round {rnd}] held-out self-play: {measured}")
                run_and_judge(_experiment(cfg, measured, p, seed, source, dataset=held_out,
                                          debater=spec))
            row = RoundRow(track, rnd, name, measured, model, judge=summary.get("judge"))
            for k, v in _accuracy(store, measured, row.judge).items():
                setattr(row, k, v)
            if held_out is not None:
                row.train_accuracy = _accuracy(store, name, row.judge).get("accuracy")
            row.exploits = exploit_counts(store, measured)
            if rnd > 0 and cfg.cross_play and family_is_debate:
                prev_spec = _debater(cfg, track, rnd - 1, rows[-1].model, config_dir)
                for seat, honest, deceptive in (("honest", spec, prev_spec),
                                                ("deceptive", prev_spec, spec)):
                    xname = f"{name}-vs-r{rnd - 1}-{seat}"
                    log(f"[{track} round {rnd}] cross-play: {xname}")
                    run_and_judge(_experiment(cfg, xname, p, seed, source, dataset=held_out,
                                              honest_debater=honest,
                                              deceptive_debater=deceptive))
                    cross.append(xname)
            if rnd < cfg.rounds:
                model = _train_round(store, cfg, dpo, out, track, rnd, name, model, row, log,
                                     show_progress)
            rows.append(row)
    experiments = [r.experiment for r in rows] + cross
    ratings = ratings_of_rounds(store, experiments, rows)
    strength = strength_analysis(store, experiments, bootstrap=cfg.strength_bootstrap,
                                 seed=cfg.seed)
    strength_ratings(strength, rows)
    report = LoopReport(rows, out, cross, ratings, strength)
    write_report(report)
    return report


def _train_round(store: Store, cfg: LoopConfig, dpo: DPOSettings, out: Path, track: str,
                 rnd: int, experiment: str, model: str, row: RoundRow, log: Log,
                 show_progress: bool) -> str:
    data_dir = out / track / f"r{rnd}" / "data"
    try:
        manifest = read_manifest(data_dir)
    except UserError:
        data = build_preference_data(store, [experiment], cfg.data)
        write_preference_dir(data, data_dir, force=True)
        manifest = read_manifest(data_dir)
    if manifest.get("rule") != cfg.data.model_dump(mode="json"):
        raise UserError(f"data: {data_dir} was made with another selection rule "
                        f"({manifest.get('rule')}); keep the rule or choose a new `out`")
    counts = manifest.get("by_source", {})
    row.pairs = manifest.get("pairs", 0)
    row.ties = _left_out(counts, "left_out_tie")
    row.failed = _left_out(counts, "left_out_failed")
    log(f"[{track} round {rnd}] preference pairs: {row.pairs} "
        f"(ties left out {row.ties}, failed {row.failed})")
    if not row.pairs:
        raise UserError(
            f"loop: round {rnd} of {track} gave no preference pairs (ties {row.ties}, failed "
            f"{row.failed}); raise debater.best_of or temperature, or lower data.min_margin")
    ckpt = out / track / f"r{rnd + 1}" / "model"
    settings = dpo.model_copy(update={"seed": dpo.seed + rnd})
    log(f"[{track} round {rnd}] DPO from {model} -> {ckpt}")
    result = train_dpo(data_dir, model, ckpt, settings, show_progress=show_progress, log=log)
    row.dpo_steps = result.steps
    row.dpo_last_loss = result.losses[-1][1] if result.losses else None
    return str(ckpt)
