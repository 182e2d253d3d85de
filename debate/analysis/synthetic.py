"""A synthetic experiment with known judge behaviour, written with bulk inserts
(store.bulk: explicit ids, one transaction).

Used by the analysis benchmark (100,000 debates, 400,000 judgments) and by tests. Per
question: a debate in both answer orders, an honest and a deceptive consultancy, and a
naive or an expert judge baseline; a model and a human judge give final verdicts and the
model judge two stepped ones. A verdict is correct with the family's rate in ACCURACY
(plus POSITION_BONUS when the correct answer is shown first); 3% of verdicts are ties.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from debate.protocols import get_protocol
from debate.store.bulk import catch_up_sequences, insert_rows, next_id
from debate.store.db import Store
from debate.store.models import Agent, Debate, Document, Experiment, Judgment, Quote, Seat, Turn
from debate.store.models import Question as QuestionRow
from debate.vocabulary import DebateStatus, JudgmentKind, SeatRole, TurnStatus

ACCURACY = {"debate": 0.80, "consultancy": 0.70, "naive": 0.60, "expert": 0.90}
POSITION_BONUS = 0.04
TIE_RATE = 0.03
DEBATERS = ("strong-debater", "medium-debater", "weak-debater")
DEBATER_SKILL = (0.8, 0.0, -0.8)  # shifts the judge toward the side this debater argues
JUDGES = (("model-judge", "model"), ("human-judge", "human"))


@dataclass
class SyntheticCounts:
    experiment: str
    questions: int
    debates: int
    judgments: int
    turns: int


def seed_synthetic(store: Store, questions: int, seed: int = 0, experiment: str = "synthetic",
                   documents_per: int = 5, with_turns: bool = True) -> SyntheticCounts:
    """Write one synthetic experiment of `questions` questions (5 debates each)."""
    rng = np.random.default_rng(seed)
    protocols = {name: get_protocol(name) for name in ("debate", "consultancy", "naive-judge", "expert-judge")}
    with store.engine.begin() as conn:
        exp_id = next_id(conn, Experiment.id)
        insert_rows(conn, Experiment, [{
            "id": exp_id, "name": experiment, "protocol": "mixed", "config": {"synthetic": True},
            "config_hash": hashlib.sha256(experiment.encode()).hexdigest(), "seed": seed, "source": "run"}])
        agent0 = next_id(conn, Agent.id)
        names = [*DEBATERS, *(n for n, _ in JUDGES)]
        kinds = ["scripted"] * len(DEBATERS) + [k for _, k in JUDGES]
        insert_rows(conn, Agent, [{
            "id": agent0 + i, "fingerprint": hashlib.sha256(f"{experiment}/{n}".encode()).hexdigest(),
            "name": n, "kind": k, "settings": {}} for i, (n, k) in enumerate(zip(names, kinds))])
        debater_ids = [agent0 + i for i in range(len(DEBATERS))]
        model_judge, human_judge = agent0 + len(DEBATERS), agent0 + len(DEBATERS) + 1

        doc0 = next_id(conn, Document.id)
        n_docs = max(1, questions // documents_per)
        insert_rows(conn, Document, [{
            "id": doc0 + d, "sha256": hashlib.sha256(f"{experiment}/doc{d}".encode()).hexdigest(),
            "title": f"doc {d}", "text": f"Source document {d}. " * 20} for d in range(n_docs)])
        q0 = next_id(conn, QuestionRow.id)
        correct = rng.integers(0, 2, questions)
        insert_rows(conn, QuestionRow, [{
            "id": q0 + q, "experiment_id": exp_id, "external_id": f"q{q}", "dataset": "synthetic",
            "text": f"Question {q}?", "answers": ["yes", "no"], "correct_index": int(correct[q]),
            "document_id": doc0 + q % n_docs, "metadata": {"topic": f"t{q % 3}"}} for q in range(questions)])

        # Five debates per question: debate (both orders), consultancy honest/deceptive, baseline.
        q_of = np.repeat(np.arange(questions), 5)
        slot = np.tile(np.arange(5), questions)
        c = correct[q_of]
        first = np.where(slot == 0, 0, np.where(slot == 1, 1, rng.integers(0, 2, len(slot))))
        family = np.array(["debate", "debate", "consultancy", "consultancy", "naive"], dtype=object)[slot]
        family = np.where((slot == 4) & (q_of % 2 == 1), "expert", family)
        protocol_of = {"debate": "debate", "consultancy": "consultancy", "naive": "naive-judge",
                       "expert": "expert-judge"}
        n = len(slot)
        d0 = next_id(conn, Debate.id)
        ids = d0 + np.arange(n)
        specs = {name: p.to_dict() for name, p in protocols.items()}
        insert_rows(conn, Debate, [{
            "id": int(ids[i]), "experiment_id": exp_id, "question_id": int(q0 + q_of[i]),
            "protocol": protocol_of[family[i]], "protocol_spec": specs[protocol_of[family[i]]],
            "variant": f"s{slot[i]}", "answer_order": [int(first[i]), 1 - int(first[i])],
            "seed": 0, "status": DebateStatus.DONE, "metadata": {"batch": f"b{i % 2}"}}
            for i in range(n)])

        # Seats: debaters A/B argue the answers shown first/second; consultants one side.
        a_agent = rng.integers(0, len(DEBATERS), n)
        b_agent = (a_agent + rng.integers(1, len(DEBATERS), n)) % len(DEBATERS)
        consult_answer = np.where(slot == 2, c, 1 - c)
        seats = []
        for i in np.nonzero(family == "debate")[0]:
            seats.append({"debate_id": int(ids[i]), "role": SeatRole.A, "agent_id": debater_ids[a_agent[i]],
                          "answer_index": int(first[i])})
            seats.append({"debate_id": int(ids[i]), "role": SeatRole.B, "agent_id": debater_ids[b_agent[i]],
                          "answer_index": 1 - int(first[i])})
        for i in np.nonzero(family == "consultancy")[0]:
            seats.append({"debate_id": int(ids[i]), "role": SeatRole.CONSULTANT,
                          "agent_id": debater_ids[a_agent[i]], "answer_index": int(consult_answer[i])})
        insert_rows(conn, Seat, seats)

        # Verdicts: correct with the family's rate, nudged by position and debater skill.
        base = np.array([ACCURACY[f] for f in family]) + POSITION_BONUS * (first == c)
        a_honest = first == c
        skill = np.array(DEBATER_SKILL)
        nudge = np.where(family == "debate",
                         0.05 * np.where(a_honest, 1, -1) * (skill[a_agent] - skill[b_agent]), 0.0)
        judgments = []
        judge_rows = [(model_judge, JudgmentKind.FINAL, None), (human_judge, JudgmentKind.FINAL, None),
                      (model_judge, JudgmentKind.STEPPED, 1), (model_judge, JudgmentKind.STEPPED, 2)]
        for judge, kind, after in judge_rows:
            rate = np.clip(base + nudge - (0.1 if kind == JudgmentKind.STEPPED and after == 1 else 0), 0.02, 0.98)
            right = rng.random(n) < rate
            p = np.where(right, rng.uniform(0.55, 0.99, n), rng.uniform(0.01, 0.45, n))
            p = np.where(rng.random(n) < TIE_RATE, 0.5, p)
            p = np.round(p, 4)
            for i in range(n):
                probs = [0.0, 0.0]
                probs[c[i]] = float(p[i])
                probs[1 - c[i]] = round(1 - float(p[i]), 4)
                judgments.append({"debate_id": int(ids[i]), "judge_agent_id": judge, "kind": kind,
                                  "after_round": after, "probabilities": probs,
                                  "shown_order": [int(first[i]), 1 - int(first[i])], "metadata": {}})
        insert_rows(conn, Judgment, judgments)

        turns = 0
        if with_turns:
            t0 = next_id(conn, Turn.id)
            turn_rows, quote_rows = [], []
            lengths = rng.integers(20, 400, n * 2)
            for k, i in enumerate(np.nonzero(family == "debate")[0]):
                for j, role in enumerate((SeatRole.A, SeatRole.B)):
                    tid = t0 + len(turn_rows)
                    turn_rows.append({"id": tid, "debate_id": int(ids[i]), "step": j + 1, "round": 1,
                                      "role": role, "kind": "speech", "text": "w" * int(lengths[2 * k + j]),
                                      "status": TurnStatus.OK, "metadata": {}})
                    honest = (first[i] == c[i]) == (role == SeatRole.A)
                    quote_rows.append({"turn_id": tid, "position": 0, "text": "Source document",
                                       "verified": bool(honest or rng.random() < 0.5),
                                       "source_start": 0, "source_end": 15,
                                       "fuzzy_score": 1.0 if honest else float(rng.uniform(0.3, 1.0))})
            insert_rows(conn, Turn, turn_rows)
            insert_rows(conn, Quote, quote_rows)
            turns = len(turn_rows)
        catch_up_sequences(
            conn, ["experiments", "agents", "documents", "questions", "debates", "turns"])
    return SyntheticCounts(experiment, questions, n, len(judgments), turns)
