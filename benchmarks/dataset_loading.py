"""Data set loading: a QuALITY dev-sized file, loaded, filtered and stored, against a naive
loader that stores one question at a time, committing each.

    python benchmarks/dataset_loading.py [--quick] [--articles N] [--words N] [--db-dir DIR]

The fixture is generated here in the official QuALITY JSONL layout at the dev file's
scale: 230 article lines (writer sets) of about 5,000 words with 9 questions each, about
2,070 questions, with annotations drawn so that the Khan et al. 2024 filters keep a
realistic minority. Each arm gets a fresh SQLite file, created and opened (schema
migrated) before its clock starts; the clock covers loading, filtering and storing.

Two settings are measured: the Khan et al. filters (the usual hard subset), and every
filter off (all ~2,070 questions go into the store: the heaviest case). Both arms parse
and filter with the same loader (`debate.datasets.load_questions`) and end with the same
rows (experiment, documents stored once, questions, one debate and its seats per
question), which the script checks.

  ours   `debate.store.experiments.store_experiment`: one transaction, batched inserts
         (what `debate run` does)
  naive  the same rows written question by question: look the article up, insert it if
         new, insert the question, its debate and seats, commit

The issue's limit is 20 s for loading and filtering the full dev file into the store.
The last line is `dataset_loading ratio=<naive/ours, all filters off> target=<claimed>`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from debate.datasets import load_questions, loaders, validate_dataset_settings
from debate.protocols import JUDGE, get_protocol, plan_debates
from debate.questions import Question
from debate.store import open_store
from debate.store.db import Store
from debate.store.experiments import (
    SeatAgents,
    sha256_text,
    store_experiment,
)
from debate.store.models import Debate, Document, Experiment, Seat
from debate.store.models import Question as QuestionRow
from debate.vocabulary import DebateStatus

LIMIT_S = 20.0
TARGET = 5.0  # the speed-up we claim over the naive loader (all filters off)
QUESTIONS_PER_ARTICLE = 9
FILTERS_OFF = {
    "gutenberg_only": False,
    "hard_only": False,
    "untimed_correct_answerable": False,
    "writer_equals_gold": False,
}


def vocabulary(rng: random.Random, n: int = 3000) -> list[str]:
    letters = "etaoinshrdlucmfwypvbgk"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)]


def article_text(rng: random.Random, words: list[str], n_words: int) -> str:
    out, count = [], 0
    while count < n_words:
        sentence = rng.choices(words, k=rng.randint(6, 24))
        count += len(sentence)
        out.append(" ".join(sentence).capitalize() + ".")
        if rng.random() < 0.15:
            out.append("\n\n")
    return " ".join(out)


def annotated_question(rng: random.Random, article_id: str, k: int, words: list[str]) -> dict:
    gold = rng.randint(1, 4)
    wrong = [o for o in range(1, 5) if o != gold]
    validation = [
        {
            "untimed_annotator_id": f"u{a}",
            "untimed_answer": gold if rng.random() < 0.9 else rng.choice(wrong),
            "untimed_eval1_answerability": 1 if rng.random() < 0.92 else 2,
            "untimed_eval2_context": rng.randint(1, 4),
            "untimed_best_distractor": rng.choice(wrong),
        }
        for a in range(3)
    ]
    speed = [
        {"speed_annotator_id": f"s{a}", "speed_answer": gold if rng.random() < 0.55 else rng.choice(wrong)}
        for a in range(5)
    ]
    return {
        "question": " ".join(rng.choices(words, k=10)).capitalize() + "?",
        "question_unique_id": f"{article_id}_Q{k}",
        "options": [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(4)],
        "writer_label": gold if rng.random() < 0.95 else rng.choice(wrong),
        "gold_label": gold,
        "validation": validation,
        "speed_validation": speed,
        "difficult": int(sum(s["speed_answer"] == gold for s in speed) <= 2),
    }


def write_quality(path: Path, n_articles: int, n_words: int) -> int:
    """A QuALITY-layout JSONL file; returns the number of questions."""
    rng = random.Random(0)
    words = vocabulary(rng)
    texts = [article_text(rng, words, n_words) for _ in range(max(1, n_articles // 2))]
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n_articles):
            # Two writer sets per article, as in QuALITY: the article text repeats.
            article_id = f"{50000 + i // 2}"
            set_id = f"{article_id}_SET{i % 2}"
            questions = [
                annotated_question(rng, set_id, k, words) for k in range(QUESTIONS_PER_ARTICLE)
            ]
            n += len(questions)
            fh.write(json.dumps({
                "article_id": article_id,
                "set_unique_id": set_id,
                "batch_num": "1",
                "writer_id": str(1000 + i % 40),
                "source": "Gutenberg" if rng.random() < 0.7 else "Slate",
                "title": f"Story {article_id}",
                "year": 1950,
                "author": "Author",
                "topic": "Fiction",
                "article": texts[(i // 2) % len(texts)],
                "questions": questions,
                "url": "",
                "license": "",
            }) + "\n")
    return n


def load(path: Path, extra: dict) -> list[Question]:
    return load_questions(validate_dataset_settings({"name": "quality", "path": str(path), **extra}))


def store_ours(store: Store, questions: list[Question]) -> None:
    store_experiment(
        store,
        name="bench",
        config={"bench": True},
        config_hash="x" * 64,
        protocol=get_protocol("debate"),
        seed=1,
        questions=questions,
        both_orders=False,
        agents=SeatAgents(None, None),
    )


def store_naive(store: Store, questions: list[Question]) -> None:
    """One transaction per question: find or add its article, add the question, its debate
    and seats, commit."""
    protocol = get_protocol("debate")
    spec = protocol.to_dict()
    rng = random.Random(1)
    with store.session() as s:
        exp = Experiment(name="bench", protocol=protocol.name, config={"bench": True},
                         config_hash="x" * 64, seed=1, source="run")
        s.add(exp)
        s.flush()
        exp_id = exp.id
    for q in questions:
        with store.session() as s:
            doc_id = None
            if q.source:
                key = sha256_text(q.source)
                doc_id = s.scalar(select(Document.id).where(Document.sha256 == key))
                if doc_id is None:
                    doc = Document(sha256=key, text=q.source, title=q.source_title)
                    s.add(doc)
                    s.flush()
                    doc_id = doc.id
            row = QuestionRow(experiment_id=exp_id, external_id=q.id, dataset=q.dataset,
                              text=q.question, answers=list(q.answers),
                              correct_index=q.correct_index, document_id=doc_id,
                              meta=q.metadata)
            s.add(row)
            s.flush()
            for plan in plan_debates(protocol, 2, q.correct_index, rng, False):
                debate = Debate(experiment_id=exp_id, question_id=row.id,
                                protocol=protocol.name, protocol_spec=spec,
                                variant=plan.label, answer_order=list(plan.answer_order),
                                seed=rng.randrange(2**31), status=DebateStatus.PENDING, meta={})
                s.add(debate)
                s.flush()
                for role, answer in plan.seats.items():
                    s.add(Seat(debate_id=debate.id, role=role, agent_id=None,
                               answer_index=answer))
                if protocol.interactive:
                    s.add(Seat(debate_id=debate.id, role=JUDGE, agent_id=None,
                               answer_index=None))




def counts(url: str) -> tuple[int, ...]:
    store = open_store(url)
    try:
        with store.session() as s:
            return tuple(
                s.scalar(select(func.count()).select_from(t))
                for t in (Experiment, Document, QuestionRow, Debate, Seat)
            )
    finally:
        store.dispose()


def timed_arm(arm, url: str, path: Path, extra: dict) -> tuple[float, float, int]:
    """(seconds in all, of which loading and filtering, questions stored). The database
    is created and opened before the clock starts, for both arms."""
    store = open_store(url)
    try:
        t0 = time.perf_counter()
        questions = load(path, extra)
        t1 = time.perf_counter()
        arm(store, questions)
        return time.perf_counter() - t0, t1 - t0, len(questions)
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller file (CI)")
    parser.add_argument("--articles", type=int, default=None)
    parser.add_argument("--words", type=int, default=None)
    parser.add_argument("--db-dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    n_articles = args.articles or (40 if args.quick else 230)
    n_words = args.words or (2000 if args.quick else 5000)

    with tempfile.TemporaryDirectory(dir=args.db_dir) as tmp:
        tmp_path = Path(tmp)
        path = tmp_path / "quality-dev.jsonl"
        n = write_quality(path, n_articles, n_words)
        size_mb = path.stat().st_size / 1e6
        print(f"fixture: {n_articles} article lines, {n} questions, ~{n_words} words an "
              f"article, {size_mb:.1f} MB (QuALITY JSONL)")
        loaders()  # import every loader module before the clocks start
        results: dict[str, dict[str, tuple[float, float, int]]] = {}
        for label, extra in (("khan filters", {}), ("filters off", FILTERS_OFF)):
            results[label] = {}
            for arm_name, arm in (("ours", store_ours), ("naive", store_naive)):
                url = f"sqlite:///{tmp_path / f'{label[:5]}-{arm_name}.db'}"
                results[label][arm_name] = timed_arm(arm, url, path, extra)
                results[label][arm_name + "_rows"] = counts(url)  # type: ignore[assignment]
            if results[label]["ours_rows"] != results[label]["naive_rows"]:
                raise SystemExit(f"{label}: the arms stored different rows: {results[label]}")
            ours, naive = results[label]["ours"], results[label]["naive"]
            print(
                f"{label:>12}: {ours[2]:5d} questions stored  ours {ours[0]:6.2f}s "
                f"(load+filter {ours[1]:.2f}s)  naive {naive[0]:6.2f}s  "
                f"ratio {naive[0] / ours[0]:5.1f}x  rows {results[label]['ours_rows']}"
            )
        worst = max(r["ours"][0] for r in results.values())
        print(f"slowest of ours: {worst:.2f}s; limit {LIMIT_S:.0f}s: "
              f"{'within' if worst <= LIMIT_S else 'OVER'}")
        off = results["filters off"]
        ratio = off["naive"][0] / off["ours"][0]
        print(f"dataset_loading ratio={ratio:.2f} target={TARGET:.2f}")


if __name__ == "__main__":
    main()
