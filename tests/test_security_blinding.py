"""Adversarial: blinding holds across experiments and imports, and campaigns that are
closed or not yours tell you nothing.

The attack (issue 12, point 3): two experiments on the same questions (the main use:
compare protocols on one set), two campaigns with reveal on; a judge who saw q's answer
in the first was assigned q in the second, because "seen" was keyed on the question's
row. Now it is keyed on the question's content (text, answers, source) and counts every
assignment (revealed or not, submitted or not), judgment and debated turn, unless a
campaign explicitly allows repeats. Checked with two experiments built from one file, a
re-imported copy of the data set (other ids, answers swapped, other spacing), the NYU
2023 import beside an experiment built from the same rooms, and a database migrated
from revision 0001. Point 7: a closed campaign refuses new claims and lapsed submits,
and a closed, foreign or missing campaign gets one answer that names nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text, update
from web_world import add_accounts, write_questions

from debate.config import parse_config
from debate.importers.nyu import import_nyu
from debate.questions import question_content_key
from debate.run import run_experiment
from debate.store import open_store
from debate.store.db import make_engine, upgrade
from debate.store.models import Assignment, Campaign, Document, Experiment, Judgment, Turn
from debate.store.models import Question as QuestionRow
from debate.users import get_user
from judges import queue

N = 4


def run_on(store, tmp: Path, name: str, data: Path, protocol: str = "debate") -> None:
    cfg = parse_config({
        "name": name, "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": protocol, "rounds": 1}, "both_orders": True,
        "debater": {"type": "scripted"},
    })
    run_experiment(store, cfg, tmp, show_progress=False)


def judge_all(store, user, campaign_id: int) -> list[str]:
    """Judge everything the queue hands this judge; the content keys of what they got."""
    keys = []
    while True:
        a = queue.next_assignment(store, user, campaign_id)
        if a is None:
            return keys
        keys.append(key_of(store, a.question_id))
        queue.submit_judgment(store, user, a.id, a.debate_id, a.rounds_shown, [50, 50], "x")


def key_of(store, question_id: int) -> str:
    with store.session() as s:
        return s.scalar(select(QuestionRow.content_key).where(QuestionRow.id == question_id))


@pytest.fixture
def two_experiments(tmp_path, db_url):
    store = open_store(db_url)
    data = write_questions(tmp_path / "one.jsonl", N)
    run_on(store, tmp_path, "protocol-a", data, "debate")
    run_on(store, tmp_path, "protocol-b", data, "consultancy")
    add_accounts(store, ("alice", "judge"), ("bob", "judge"))
    yield store, tmp_path, data
    store.dispose()


def test_same_file_two_experiments_share_question_identity(two_experiments):
    store, _tmp, _data = two_experiments
    with store.session() as s:
        per_exp = s.execute(
            select(Experiment.name, func.count(func.distinct(QuestionRow.content_key)))
            .join(QuestionRow, QuestionRow.experiment_id == Experiment.id)
            .group_by(Experiment.name)).all()
        total = s.scalar(select(func.count(func.distinct(QuestionRow.content_key))))
    assert dict(per_exp) == {"protocol-a": N, "protocol-b": N}
    assert total == N  # one identity per question across both experiments


def test_a_judge_never_meets_a_question_again_in_another_experiment(two_experiments):
    store, _tmp, _data = two_experiments
    alice, bob = get_user(store, "alice"), get_user(store, "bob")
    c1 = queue.create_campaign(store, name="first", experiment="protocol-a", reveal_truth=True)
    c2 = queue.create_campaign(store, name="second", experiment="protocol-b", reveal_truth=True)
    seen = judge_all(store, alice, c1.id)
    assert len(seen) == N and len(set(seen)) == N  # both orders share one identity
    assert queue.next_assignment(store, alice, c2.id) is None  # saw every answer already
    assert len(judge_all(store, bob, c2.id)) == N  # someone fresh gets them


def test_an_unsubmitted_unrevealed_assignment_counts_too(two_experiments):
    store, _tmp, _data = two_experiments
    alice = get_user(store, "alice")
    c1 = queue.create_campaign(store, name="hidden", experiment="protocol-a",
                               reveal_truth=False)
    c2 = queue.create_campaign(store, name="later", experiment="protocol-b")
    open_one = queue.next_assignment(store, alice, c1.id)  # read, never submitted
    assert open_one is not None
    got = judge_all(store, alice, c2.id)
    assert key_of(store, open_one.question_id) not in got
    assert len(got) == N - 1


def test_a_judgment_outside_any_campaign_counts(two_experiments):
    store, _tmp, _data = two_experiments
    alice = get_user(store, "alice")
    with store.session() as s:
        debate_id, qid = s.execute(text(
            "SELECT d.id, d.question_id FROM debates d JOIN experiments e ON "
            "e.id = d.experiment_id WHERE e.name = 'protocol-a' ORDER BY d.id LIMIT 1")).one()
        s.add(Judgment(debate_id=debate_id, user_id=alice.id, probabilities=[0.5, 0.5],
                       shown_order=[0, 1], kind="offline"))
    c2 = queue.create_campaign(store, name="after-offline", experiment="protocol-b")
    assert key_of(store, qid) not in judge_all(store, alice, c2.id)


def test_a_person_who_argued_a_question_never_judges_it(two_experiments):
    store, _tmp, _data = two_experiments
    alice = get_user(store, "alice")
    with store.session() as s:
        turn_id, qid = s.execute(text(
            "SELECT t.id, d.question_id FROM turns t JOIN debates d ON d.id = t.debate_id "
            "JOIN experiments e ON e.id = d.experiment_id WHERE e.name = 'protocol-a' "
            "ORDER BY t.id LIMIT 1")).one()
        s.execute(update(Turn).where(Turn.id == turn_id).values(user_id=alice.id))
    c2 = queue.create_campaign(store, name="after-debating", experiment="protocol-b")
    assert key_of(store, qid) not in judge_all(store, alice, c2.id)


def test_repeats_only_when_the_campaign_says_so(two_experiments):
    store, _tmp, _data = two_experiments
    alice = get_user(store, "alice")
    c1 = queue.create_campaign(store, name="r1", experiment="protocol-a")
    judge_all(store, alice, c1.id)
    again = queue.create_campaign(store, name="r2", experiment="protocol-b",
                                  allow_repeats=True)
    got = judge_all(store, alice, again.id)
    assert len(got) == N and len(set(got)) == N  # still once per question inside it
    with store.session() as s:
        assert s.scalar(select(Campaign.allow_repeats).where(Campaign.id == again.id))


def test_a_reimported_copy_is_the_same_question(two_experiments):
    store, tmp, data = two_experiments
    copy = tmp / "copy.jsonl"
    with copy.open("w", encoding="utf-8") as out:
        for line in data.read_text(encoding="utf-8").splitlines():
            q = json.loads(line)
            q["id"] = "other-" + q["id"]
            q["answers"] = q["answers"][::-1]
            q["correct_index"] = 1 - q["correct_index"]
            q["question"] = "  " + q["question"].replace(" ", "  ") + "\n"
            q["metadata"] = {"imported_from": "elsewhere"}
            out.write(json.dumps(q) + "\n")
    run_on(store, tmp, "imported-copy", copy)
    alice = get_user(store, "alice")
    c1 = queue.create_campaign(store, name="orig", experiment="protocol-a")
    judge_all(store, alice, c1.id)
    c3 = queue.create_campaign(store, name="copy", experiment="imported-copy")
    assert queue.next_assignment(store, alice, c3.id) is None


def test_the_nyu_import_and_an_experiment_from_its_rooms_are_one_question_set(
        tmp_path, sqlite_url, nyu_sample):
    store = open_store(sqlite_url)
    import_nyu(store, nyu_sample)
    cfg = parse_config({
        "name": "rooms-again", "dataset": {"name": "nyu_stories", "path": str(nyu_sample),
                                           "limit": 3},
        "protocol": {"name": "debate", "rounds": 1}, "debater": {"type": "scripted"},
    })
    run_experiment(store, cfg, tmp_path, show_progress=False)
    add_accounts(store, ("alice", "judge"))
    alice = get_user(store, "alice")
    c1 = queue.create_campaign(store, name="again", experiment="rooms-again")
    seen = set(judge_all(store, alice, c1.id))
    assert len(seen) == 3
    with store.session() as s:
        imported = s.scalar(select(Experiment.name).where(Experiment.source == "import"))
        overlap = s.scalar(select(func.count()).select_from(QuestionRow).join(
            Experiment, QuestionRow.experiment_id == Experiment.id).where(
            Experiment.name == imported, QuestionRow.content_key.in_(seen)))
    assert overlap >= 3  # the import holds the same questions
    c2 = queue.create_campaign(store, name="imported", experiment=imported)
    got = set()
    for _ in range(overlap + 200):
        a = queue.next_assignment(store, alice, c2.id)
        if a is None:
            break
        got.add(key_of(store, a.question_id))
        queue.submit_judgment(store, alice, a.id, a.debate_id, a.rounds_shown, [50, 50], "x")
    assert not got & seen
    store.dispose()


def test_migration_gives_old_questions_their_content_key(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(insert(Experiment.__table__).values(
            id=1, name="old", protocol="debate", config={}, config_hash="x", seed=0,
            source="run", created_at=text("CURRENT_TIMESTAMP")))
        conn.execute(insert(Document.__table__).values(id=1, sha256="s" * 64, title=None,
                                                       text="src"))
        conn.execute(text(
            "INSERT INTO questions (id, experiment_id, external_id, dataset, text, answers, "
            "correct_index, document_id, metadata) VALUES (1, 1, 'q', 'jsonl', "
            "'Why  dark?', '[\"No ships\", \"Blind\"]', 0, 1, '{}')"))
    upgrade(engine)
    with engine.connect() as conn:
        key = conn.execute(text("SELECT content_key FROM questions WHERE id = 1")).scalar()
    engine.dispose()
    assert key == question_content_key("Why dark?", ["Blind", "No ships"], 1)


# ---------------------------------------------------------------- point 7: campaigns


def test_closed_campaign_takes_only_claims_made_before_within_the_lease(two_experiments,
                                                                        monkeypatch):
    store, _tmp, _data = two_experiments
    alice, bob = get_user(store, "alice"), get_user(store, "bob")
    c = queue.create_campaign(store, name="closing", experiment="protocol-a")
    a = queue.next_assignment(store, alice, c.id)
    b = queue.next_assignment(store, bob, c.id)
    queue.set_campaign_active(store, c.id, False)
    missing = f"no campaign with id {c.id} is open to you"
    with pytest.raises(queue.QueueError, match=missing):
        queue.next_assignment(store, alice, c.id)  # nothing new once closed
    # claimed before closing, within the lease: finished
    result = queue.submit_judgment(store, alice, a.id, a.debate_id, a.rounds_shown, [70, 30],
                                   "done before the lease ran out")
    assert result.final
    # a claim whose lease has run out: refused, nothing written
    monkeypatch.setattr(queue.submissions, "ASSIGNMENT_LEASE", timedelta(seconds=0))
    with store.session() as s:
        before = s.scalar(select(func.count()).select_from(Judgment))
    with pytest.raises(queue.QueueError, match="closed"):
        queue.submit_judgment(store, bob, b.id, b.debate_id, b.rounds_shown, [70, 30], "late")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == before
        assert s.scalar(select(Assignment.status).where(Assignment.id == b.id)) == "open"


def test_a_claim_made_after_closing_is_refused(two_experiments):
    store, _tmp, _data = two_experiments
    alice = get_user(store, "alice")
    c = queue.create_campaign(store, name="late-claim", experiment="protocol-a")
    a = queue.next_assignment(store, alice, c.id)
    queue.set_campaign_active(store, c.id, False)
    with store.session() as s:  # as if the claim had raced past the close
        s.execute(update(Campaign).where(Campaign.id == c.id).values(
            closed_at=queue.utcnow() - timedelta(minutes=5)))
    with pytest.raises(queue.QueueError, match="closed"):
        queue.submit_judgment(store, alice, a.id, a.debate_id, a.rounds_shown, [50, 50], "x")


def test_closed_foreign_and_missing_campaigns_get_one_answer(two_experiments):
    store, _tmp, _data = two_experiments
    add_accounts(store, ("carol", "judge"))
    alice, carol = get_user(store, "alice"), get_user(store, "carol")
    secret = queue.create_campaign(store, name="SECRET-campaign-name", experiment="protocol-a",
                                   judges=["carol"])
    closed = queue.create_campaign(store, name="SECRET-closed-name", experiment="protocol-a")
    queue.set_campaign_active(store, closed.id, False)
    answers = []
    for cid in (secret.id, closed.id, 9999):
        with pytest.raises(queue.QueueError) as err:
            queue.next_assignment(store, alice, cid)
        answers.append(str(err.value).replace(str(cid), "N"))
        assert "SECRET" not in str(err.value)
    assert len(set(answers)) == 1
    assert queue.next_assignment(store, carol, secret.id) is not None
