"""Probe scores are ground truth in disguise: they never reach a judge.

For every protocol: what a model judge is prompted with (final and after each round, in
both answer orders, log-prob and text prompts) and what a person judging in the web app
is sent (the queue's view and its HTML) are byte-for-byte the same before and after a
probe and its scores (and captured activations) are written for every debater turn; the
probe's name and score values appear in none of it. The admin's Browse view does show
them (the positive control: the scores are there to be leaked). A static check keeps
judge-facing modules from reading the probe tables at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pixel_games import store_small_pixel_debate
from sqlalchemy import select
from web_world import add_accounts

from debate.backends.prompts import TemplateSet, judge_prompt
from debate.config import parse_config
from debate.protocols import BUILTIN, Protocol
from debate.run import run_experiment
from debate.store.models import Activation, Debate, Experiment, Turn
from debate.store.probes import save_probe, write_probe_scores
from debate.store.turns import ACTIVATIONS as _ACTIVATIONS
from debate.store.turns import activation_columns
from debate.store.turns import bulk_insert as _bulk_insert
from debate.users import get_user
from judges import queue
from judges.model import judge_view
from judges.records import load_debates
from web.browse_tab import debate_detail_html
from web.render import judge_html

ROOT = Path(__file__).resolve().parents[1]
SECRET = "SECRET-PROBE-7f3a"
pytestmark = pytest.mark.slow
TEXT_PROTOCOLS = sorted(p for p in BUILTIN if p != "pixel-debate")


def _config(protocol: str) -> dict:
    spec = BUILTIN[protocol]
    cfg = {"name": f"blind-{protocol}", "dataset": {"name": "sample", "limit": 2},
           "protocol": {"name": protocol, **({"rounds": 2} if spec.rounds else {})},
           "both_orders": True}
    if spec.speaker_roles:
        cfg["debater"] = {"type": "scripted"}
    if spec.interactive:
        cfg["interactive_judge"] = {"type": "scripted", "name": "asker"}
    return cfg


def _model_judge_prompts(store, debate_ids: list[int]) -> dict[tuple, str]:
    templates = TemplateSet.load("judge")
    out = {}
    for rec in load_debates(store, debate_ids):
        if rec.protocol_spec.get("family") == "pixel":
            continue
        rounds = Protocol.from_dict(rec.protocol_spec).rounds
        for after in [None, *range(1, rounds + 1)]:
            for order in [(0, 1), (1, 0)]:
                for kind in ("logprob", "text"):
                    chat = judge_prompt(templates, judge_view(rec, after, order), kind)
                    out[(rec.id, after, order, kind)] = repr(chat)
    return out


def _human_views(store, assignments) -> dict[int, str]:
    out = {}
    for a in assignments:
        view = queue.judge_view(store, a)
        out[a.id] = repr(view) + judge_html(view)
    return out


@pytest.fixture
def blind_world(sqlite_store, pixel_judges, tmp_path):
    store = sqlite_store
    for protocol in TEXT_PROTOCOLS:
        run_experiment(store, parse_config(_config(protocol)), tmp_path, show_progress=False)
    store_small_pixel_debate(store, pixel_judges[2], "blind-pixel-debate")
    add_accounts(store, ("judge1", "judge"))
    judge = get_user(store, "judge1")
    assignments = []
    with store.session() as s:
        names = list(s.scalars(select(Experiment.name).order_by(Experiment.id)))
    for name in names:
        for mode in ("whole", "stepped"):
            # every experiment asks the same questions: repeats allowed, or the one judge
            # would (rightly) be kept from all but the first
            c = queue.create_campaign(store, name=f"{name}-{mode}", experiment=name, mode=mode,
                                      allow_repeats=True)
            a, view, _ = queue.next_with_view(store, judge, c.id)
            assert a is not None and view is not None, name
            assignments.append(a)
    return store, names, assignments


def test_probe_scores_reach_no_judge_in_any_protocol(blind_world):
    store, names, assignments = blind_world
    with store.session() as s:
        debates = [(d.id, d.protocol) for d in s.scalars(select(Debate).order_by(Debate.id))]
        turns = [(t.id, t.debate_id) for t in s.scalars(select(Turn).order_by(Turn.id))]
    protocols = {p for _, p in debates}
    assert protocols == set(BUILTIN)  # every protocol is covered
    debate_ids = [d for d, _ in debates]
    prompts_before = _model_judge_prompts(store, debate_ids)
    views_before = _human_views(store, assignments)
    assert len({k[0] for k in prompts_before}) == len(
        [d for d, p in debates if p != "pixel-debate"])

    # a probe with striking scores on every turn, and captured vectors for every turn
    probe_id = save_probe(store, name=SECRET, method="logistic", labels="side", layer=1,
                          position="generated_mean", model_id="m", dim=4,
                          params={"coef": [1, 0, 0, 0], "intercept": 0.0, "mean": [0] * 4,
                                  "scale": [1] * 4},
                          training={"experiment": names[0]}, metrics={})
    scores = {tid: 0.8125 + tid / 1024 for tid, _ in turns}
    write_probe_scores(store, probe_id, scores)
    with store.write_session() as s:
        _bulk_insert(s.connection(), _ACTIVATIONS, activation_columns(
            [(tid, (1, "generated_mean"), np.full(4, 0.8125, dtype=np.float16))
             for tid, _ in turns]))

    prompts_after = _model_judge_prompts(store, debate_ids)
    views_after = _human_views(store, assignments)
    assert prompts_after == prompts_before
    assert views_after == views_before
    shown = "\n".join([*prompts_after.values(), *views_after.values()])
    assert SECRET not in shown and "probe" not in shown.lower()
    assert len(prompts_after) > 100 and len(views_after) == 2 * len(names)
    with store.session() as s:
        assert s.query(Activation).count() == len(turns)

    # positive control: the admin's Browse view shows the scores
    tid, did = turns[0]
    admin = debate_detail_html(store, did)
    assert f"probe {SECRET}: {scores[tid]:+.2f}" in admin


JUDGE_FACING = [
    "judges/model.py", "judges/run.py", "judges/records.py",
    "judges/config.py", "debate/backends/prompts.py", "web/judge_tab.py", "web/render.py",
    "web/debate_tab.py", "web/app.py",
]


def test_judge_facing_modules_never_read_probe_tables():
    queue_modules = sorted((ROOT / "judges" / "queue").glob("*.py"))
    assert len(queue_modules) > 5  # the judging queue package, module by module
    pattern = re.compile(r"ProbeScore|Probe\b|probe_scores|store\.probes|debate\.probes|Activation")
    for rel in JUDGE_FACING + [str(p.relative_to(ROOT)) for p in queue_modules]:
        path = ROOT / rel
        if path.is_file():
            assert not pattern.search(path.read_text(encoding="utf-8")), rel
