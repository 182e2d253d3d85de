"""Storing pixel debates like every other debate: an experiment per table run.

One question per (image, lie): answers (true label, lie) as strings, correct_index 0, the
image in the question's metadata. One debate per order: debater A speaks first, so A is
the honest player in "honest-first" debates. Each turn reveals one pixel; the judgment
holds the judge's ten logits (meta) and its probabilities over the two claims. The rows
are written by the store's row writers (store.experiments, store.turns, store.judgments).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from debate.agents.base import AgentIdentity
from debate.errors import ConfigError
from debate.pixels.data import ImageSet
from debate.pixels.table import GameRecord
from debate.protocols import DEBATER_A, DEBATER_B, get_protocol
from debate.questions import Question
from debate.store.db import Store
from debate.store.experiments import (
    agent_id,
    find_experiment,
    insert_debate_rows,
    insert_experiment,
    insert_questions,
    insert_seats,
)
from debate.store.judgments import insert_judgments
from debate.store.models import utcnow
from debate.store.turns import TurnWrite, write_turns
from debate.vocabulary import DebateStatus, JudgmentKind, TurnStatus

PROTOCOL = "pixel-debate"
QUESTION_TEXT = "Which digit is in this image?"


def pixel_turn(pixel: int, image_values, width: int) -> tuple[str, dict[str, Any]]:
    row, col = divmod(int(pixel), width)
    value = int(image_values[row][col])
    return f"({row}, {col}) = {value}", {"pixel": [row, col], "value": value}


def two_claim_probabilities(logits: list[float], truth: int, lie: int) -> list[float]:
    """Softmax over the two claimed labels' logits, in the question's order (truth, lie)."""
    a, b = logits[truth], logits[lie]
    top = max(a, b)
    ea, eb = math.exp(a - top), math.exp(b - top)
    return [ea / (ea + eb), eb / (ea + eb)]


def store_games(
    store: Store,
    *,
    name: str | None,
    data: ImageSet,
    image_ids: dict[int, int],
    k: int,
    games: list[GameRecord],
    honest_name: str,
    liar_name: str,
    judge_name: str,
    judge_settings: dict[str, Any],
    config: dict[str, Any],
    seed: int = 0,
) -> tuple[int, str]:
    """Write one experiment with its questions, debates, turns and judgments in one
    transaction; returns (experiment id, name). `image_ids` maps a row of `data` to the
    image's index in its split (stored in the question metadata)."""
    protocol = get_protocol(PROTOCOL, rounds=k // 2)
    spec = protocol.to_dict()
    if name is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        name = f"pixels-{data.name}-k{k}-{honest_name}-vs-{liar_name}-{stamp}"
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    _, width = data.shape
    with store.write_session() as session:
        if find_experiment(session, name) is not None:
            raise ConfigError(f"--name: experiment {name!r} already exists; choose another name")
        exp_id = insert_experiment(session, name=name, protocol=PROTOCOL, config=config,
                                   config_hash=config_hash, seed=seed, source="pixels")
        honest_id = agent_id(session, AgentIdentity(f"pixels-{honest_name}", "pixel-player",
                                                    settings={"player": honest_name}))
        liar_id = agent_id(session, AgentIdentity(f"pixels-{liar_name}", "pixel-player",
                                                  settings={"player": liar_name}))
        judge_id = agent_id(session, AgentIdentity(judge_name, "model-judge", model_id=judge_name,
                                                   backend="torch", settings=judge_settings))
        keys = sorted({(g.image, g.lie) for g in games})
        questions = [
            Question(
                id=f"{data.name}-{image_ids[img]}-lie{lie}",
                question=QUESTION_TEXT,
                answers=(str(int(data.labels[img])), str(lie)),
                correct_index=0,
                dataset=data.name,
                metadata={
                    "image": data.images[img].astype(int).tolist(),
                    "label": int(data.labels[img]),
                    "split_index": image_ids[img],
                    "max_value": data.max_value,
                    "shape": list(data.shape),
                    "k": k,
                },
            )
            for img, lie in keys
        ]
        qids = dict(zip(keys, insert_questions(session, exp_id, questions)))
        debate_rows = []
        for i, g in enumerate(games):
            order = [0, 1] if g.honest_first else [1, 0]
            debate_rows.append({
                "experiment_id": exp_id, "question_id": qids[(g.image, g.lie)],
                "protocol": PROTOCOL, "protocol_spec": spec,
                "variant": "honest-first" if g.honest_first else "liar-first",
                "answer_order": order, "seed": seed + i, "status": DebateStatus.DONE, "steps_done": k,
                "meta": {"honest_role": DEBATER_A if g.honest_first else DEBATER_B,
                         "honest": honest_name, "liar": liar_name, "k": k},
            })
        debate_ids = insert_debate_rows(session, debate_rows)
        seats, turns, judgments = [], [], []
        now = utcnow()
        for did, g in zip(debate_ids, games):
            honest_role = DEBATER_A if g.honest_first else DEBATER_B
            roles = {honest_role: (honest_id, 0),
                     (DEBATER_B if honest_role == DEBATER_A else DEBATER_A): (liar_id, 1)}
            for role, (aid, answer) in roles.items():
                seats.append({"debate_id": did, "role": role, "agent_id": aid,
                              "answer_index": answer})
            for step, pixel in enumerate(g.pixels):
                role = DEBATER_A if step % 2 == 0 else DEBATER_B
                text, meta = pixel_turn(pixel, data.images[g.image], width)
                turns.append(TurnWrite(
                    debate_id=did, step=step, round=step // 2 + 1, role=role, kind="pixel",
                    agent_id=roles[role][0], user_id=None, text=text, status=TurnStatus.OK, meta=meta,
                    created_at=now))
            probs = two_claim_probabilities(g.logits, g.truth, g.lie)
            judgments.append({
                "debate_id": did, "judge_agent_id": judge_id, "kind": JudgmentKind.FINAL,
                "after_round": None, "probabilities": probs,
                "shown_order": [0, 1] if g.honest_first else [1, 0],
                "meta": {"logits": g.logits, "judge": judge_name}, "created_at": now,
            })
        insert_seats(session, seats)
        write_turns(session, turns)
        insert_judgments(session, judgments)
        return exp_id, name
