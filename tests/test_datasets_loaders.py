"""The real data set loaders on fixture files written in each official format."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debate.datasets import load_questions, validate_dataset_settings
from debate.datasets.records import json_array
from debate.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
PASSING = {"20001_SIGNAL_1", "20002_MARROW_1", "20002_MARROW_2", "20002_MARROW_3"}


def load(**cfg):
    return load_questions(validate_dataset_settings(cfg), FIXTURES)


def quality_articles() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "quality.jsonl").read_text().splitlines()]


def option_text(article_id: str, qid: str, label: int) -> str:
    for article in quality_articles():
        for q in article["questions"]:
            if q["question_unique_id"] == qid:
                return q["options"][label - 1]
    raise KeyError(qid)


def correct_and_other(q) -> tuple[str, str]:
    return q.answers[q.correct_index], q.answers[1 - q.correct_index]


# --- QuALITY ---------------------------------------------------------------------------


def test_quality_default_filters_keep_the_hard_unambiguous_gutenberg_questions():
    qs = load(name="quality", path="quality.jsonl")
    assert {q.id for q in qs} == PASSING
    for q in qs:
        assert len(q.answers) == 2
        assert q.dataset == "quality"
        assert q.source and q.source.startswith(q.source_title)
        assert q.metadata["distractor_rule"] == "best"
        assert q.metadata["source"] == "Gutenberg"
        assert q.metadata["speed_accuracy"] <= 0.5


@pytest.mark.parametrize(
    ("switched_off", "comes_back"),
    [
        ("gutenberg_only", {"20003_BUDGET_1"}),
        ("hard_only", {"20001_SIGNAL_2"}),
        ("untimed_correct_answerable", {"20001_SIGNAL_3", "20001_SIGNAL_5"}),
        ("writer_equals_gold", {"20001_SIGNAL_4"}),
    ],
)
def test_each_quality_filter_can_be_switched_off(switched_off, comes_back):
    qs = load(name="quality", path="quality.jsonl", **{switched_off: False})
    assert {q.id for q in qs} == PASSING | comes_back


def test_quality_without_filters_keeps_every_question():
    off = dict.fromkeys(
        ["gutenberg_only", "hard_only", "untimed_correct_answerable", "writer_equals_gold"], False
    )
    assert len(load(name="quality", path="quality.jsonl", **off)) == 9


@pytest.mark.parametrize(
    ("qid", "gold", "best"),
    [
        ("20001_SIGNAL_1", 2, 3),  # votes 3, 3, 1
        ("20002_MARROW_2", 3, 1),  # votes 1, 4: a tie goes to the lower option
        ("20002_MARROW_3", 4, 2),  # votes 4, 4, 2: votes for the gold answer do not count
    ],
)
def test_quality_best_distractor_is_the_most_common_vote(qid, gold, best):
    q = next(q for q in load(name="quality", path="quality.jsonl") if q.id == qid)
    article = qid.split("_")[0]
    assert correct_and_other(q) == (option_text(article, qid, gold), option_text(article, qid, best))
    assert q.metadata["distractor_option"] == best
    assert q.metadata["correct_option"] == gold


def test_distractor_rules_first_and_random_are_recorded_and_reproducible():
    first = load(name="quality", path="quality.jsonl", distractor="first")
    q = next(q for q in first if q.id == "20001_SIGNAL_1")
    assert correct_and_other(q)[1] == option_text("20001", "20001_SIGNAL_1", 1)
    assert q.metadata["distractor_rule"] == "first"

    rand = load(name="quality", path="quality.jsonl", distractor="random", seed=7)
    again = load(name="quality", path="quality.jsonl", distractor="random", seed=7, limit=2)
    assert all(q.metadata == {**q.metadata, "distractor_rule": "random", "distractor_seed": 7}
               for q in rand)
    by_id = {q.id: q.answers for q in rand}
    assert all(by_id[q.id] == q.answers for q in again)  # independent of the slice
    picks = {
        tuple(q.metadata["distractor_option"] for q in
              load(name="mmlu", path="mmlu", distractor="random", seed=s))
        for s in range(6)
    }
    assert len(picks) > 1  # the seed matters


def test_quality_per_story_cap_and_seeded_shuffle():
    capped = load(name="quality", path="quality.jsonl", max_per_story=1)
    assert [q.id for q in capped] == ["20001_SIGNAL_1", "20002_MARROW_1"]
    picks = {
        tuple(q.id for q in load(name="quality", path="quality.jsonl", max_per_story=1,
                                 shuffle=True, seed=s))
        for s in range(8)
    }
    assert len(picks) > 1
    a = load(name="quality", path="quality.jsonl", max_per_story=2, shuffle=True, seed=3)
    b = load(name="quality", path="quality.jsonl", max_per_story=2, shuffle=True, seed=3)
    assert [q.id for q in a] == [q.id for q in b]


def test_correct_answer_position_is_a_seeded_coin_flip():
    qs = load(name="mmlu", path="mmlu") + load(name="arc", path="arc.jsonl")
    qs += load(name="gpqa", path="gpqa.csv")
    assert {q.correct_index for q in qs} == {0, 1}
    assert [q.answers for q in load(name="gpqa", path="gpqa.csv")] == [
        q.answers for q in load(name="gpqa", path="gpqa.csv")
    ]


# --- GPQA, MMLU, TruthfulQA, BoolQ, ARC ----------------------------------------------------


def test_gpqa_closed_and_extractive():
    closed = load(name="gpqa", path="gpqa.csv")
    assert [q.id for q in closed] == ["recGPQA0001", "recGPQA0002", "recGPQA0003"]
    assert all(q.source is None for q in closed)
    q = closed[0]
    assert correct_and_other(q) == ("S_z", "S_x")
    assert q.metadata["distractor_option"] == "Incorrect Answer 1"
    extractive = load(name="gpqa", path="gpqa.csv", mode="extractive")
    assert extractive[0].source.startswith("The Hamiltonian is proportional to S_z")
    assert "\n" in extractive[0].source  # the quoted multi-line explanation survives
    assert extractive[1].source.startswith("PCC in dichloromethane")


def test_mmlu_official_csv_folder_and_subject_filter():
    qs = load(name="mmlu", path="mmlu")
    assert [q.id for q in qs][:2] == ["mmlu-astronomy-1", "mmlu-astronomy-2"]
    assert len(qs) == 5
    assert all(q.source is None for q in qs)
    fusion = qs[1]
    assert correct_and_other(fusion) == ("Nuclear fusion", "Chemical burning")
    only = load(name="mmlu", path="mmlu", subjects=["college_physics"])
    assert [correct_and_other(q)[0] for q in only] == ["Newton", "zero net force"]


def test_mmlu_hub_layout_jsonl_and_parquet(tmp_path: Path):
    rows = [json.loads(line) for line in (FIXTURES / "mmlu_hf.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000.parquet")
    for path in (FIXTURES / "mmlu_hf.jsonl", tmp_path / "test-00000.parquet"):
        qs = load(name="mmlu", path=str(path))
        assert [correct_and_other(q)[0] for q in qs] == ["56", "Carbon dioxide"]
        assert qs[1].metadata["subject"] == "high_school_biology"


def test_truthfulqa_official_and_hub_layouts():
    qs = load(name="truthfulqa", path="truthfulqa_mc_task.json")
    assert [correct_and_other(q)[0] for q in qs] == [
        "It passes through your digestive system.",
        "No, it is far too narrow to see from the Moon.",
        "Black.",
    ]
    assert correct_and_other(qs[2])[1] == "White."
    hub = load(name="truthfulqa", path="truthfulqa_hf.jsonl")
    assert correct_and_other(hub[0]) == (
        "No, we use virtually all of our brain.", "Yes, we use only ten percent."
    )


def test_boolq_hides_the_passage_and_answers_yes_no():
    qs = load(name="boolq", path="boolq.jsonl")
    assert [q.answers for q in qs] == [("Yes", "No")] * 3
    assert [q.correct_index for q in qs] == [0, 1, 1]
    assert qs[0].question == "Is the moon larger than pluto?"
    assert qs[0].source.startswith("The Moon has a diameter")
    assert qs[0].metadata["distractor_rule"] == "opposite"


def test_arc_official_and_hub_layouts():
    qs = load(name="arc", path="arc.jsonl")
    assert [correct_and_other(q)[0] for q in qs] == ["luster", "graduated cylinder", "chemical"]
    assert qs[1].metadata["correct_option"] == "2"  # digit labels
    hub = load(name="arc", path="arc_hf.jsonl")
    assert correct_and_other(hub[0]) == ("dry palms", "wet palms")


# --- NYU rooms ---------------------------------------------------------------------------


def test_nyu_rooms_are_deduplicated_and_the_story_detokenized():
    qs = load(name="nyu_stories", path="nyu_rooms")
    assert [q.id for q in qs] == ["nyu-keepers-daughter-1", "nyu-keepers-daughter-3"]
    first = qs[0]
    assert first.metadata["rooms"] == ["keepers-daughter-1", "keepers-daughter-2"]
    assert correct_and_other(first)[0] == "The boat was not hers."
    assert first.source == (
        "The lighthouse keeper's daughter, Ada, rowed out at dawn.\n"
        'She said "The boat isn\'t ours" and turned back (sadly).'
    )
    assert qs[1].source is first.source or qs[1].source == first.source


def test_nyu_shared_sample(nyu_sample: Path):
    qs = load(name="nyu_stories", path=str(nyu_sample))
    rooms = sorted(p.stem for p in (nyu_sample / "debates").glob("*.json"))
    assert sorted(r for q in qs for r in q.metadata["rooms"]) == rooms
    keys = {(q.metadata["article_id"], q.question) for q in qs}
    assert len(keys) == len(qs)
    for q in qs:
        assert len(q.answers) == 2 and q.source and len(q.source.split()) > 500
        assert "-LSB-" not in q.source and " 's " not in q.source


# --- settings ----------------------------------------------------------------------------


def test_unknown_data_set_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        validate_dataset_settings({"name": "qualty"})
    msg = str(err.value)
    assert msg.startswith("dataset.name: unknown data set 'qualty'; known: ")
    for name in ("quality", "gpqa", "mmlu", "truthfulqa", "boolq", "arc", "nyu_stories"):
        assert name in msg


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        ({"name": "quality", "path": "x", "distractor": "worst"}, "dataset.distractor"),
        ({"name": "gpqa", "path": "x", "distractor": "best"}, "dataset.distractor"),
        ({"name": "gpqa", "path": "x", "mode": "open"}, "dataset.mode"),
        ({"name": "quality", "path": "x", "max_per_story": 0}, "dataset.max_per_story"),
        ({"name": "mmlu", "path": "x", "hub": "cais/mmlu"}, "dataset: give either path"),
        ({"name": "arc", "path": "x", "filter": True}, "dataset.filter"),
    ],
)
def test_bad_settings_name_the_field(cfg, field):
    with pytest.raises(ConfigError, match=rf"^{field}"):
        validate_dataset_settings(cfg)


def test_quality_reads_the_release_file_names(tmp_path: Path):
    release = tmp_path / "QuALITY.v1.0.1.htmlstripped.dev"
    release.write_bytes((FIXTURES / "quality.jsonl").read_bytes())
    assert {q.id for q in load(name="quality", path=str(release))} == PASSING


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(
        st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8)),
                        max_size=3),
        max_size=6,
    ),
    indent=st.sampled_from([None, 1, 2, 4]),
)
def test_json_array_items_and_their_start_lines(tmp_path_factory, items, indent):
    path = tmp_path_factory.mktemp("arr") / "items.json"
    text = json.dumps(items, indent=indent)
    path.write_text(text)
    got = list(json_array(path))
    assert [item for _, item in got] == items
    lines = text.splitlines()
    for where, item in got:
        line = int(where.rsplit(":", 1)[1])
        start = json.dumps(item, indent=indent).splitlines()[0]
        assert start.strip() in lines[line - 1]


def test_quality_thresholds_are_settings():
    # SIGNAL_3: 2 of 3 untimed annotators correct; SIGNAL_5: answerability ratings 1, 2, 1.
    looser = load(name="quality", path="quality.jsonl", min_untimed_accuracy=0.6)
    assert {q.id for q in looser} == PASSING | {"20001_SIGNAL_3"}
    looser = load(name="quality", path="quality.jsonl", max_answerability=1.5)
    assert {q.id for q in looser} == PASSING | {"20001_SIGNAL_5"}
    # Speed accuracy: SIGNAL_1 2/5, MARROW_1 1/5, MARROW_2 1/4, MARROW_3 1/5.
    harder = load(name="quality", path="quality.jsonl", max_speed_accuracy=0.25)
    assert {q.id for q in harder} == PASSING - {"20001_SIGNAL_1"}
    # Every untimed annotator in the fixture rates the context needed as 2.
    assert len(load(name="quality", path="quality.jsonl", min_context_required=2)) == 4
    assert load(name="quality", path="quality.jsonl", min_context_required=2.5) == []


def test_quality_story_cap_counts_both_writer_sets(tmp_path: Path):
    lines = (FIXTURES / "quality.jsonl").read_text().splitlines()
    second_set = json.loads(lines[1])
    second_set["set_unique_id"] = "20002_MARROW_B"
    for q in second_set["questions"]:
        q["question_unique_id"] += "_B"
    path = tmp_path / "two-sets.jsonl"
    path.write_text("\n".join([lines[1], lines[0], json.dumps(second_set)]) + "\n")
    assert len(load(name="quality", path=str(path))) == 7
    capped = load(name="quality", path=str(path), max_per_story=2)
    assert [q.id for q in capped] == ["20002_MARROW_1", "20002_MARROW_2", "20001_SIGNAL_1"]


def test_nyu_rooms_that_disagree_on_the_answer_are_flagged(tmp_path: Path):
    import shutil

    shutil.copytree(FIXTURES / "nyu_rooms", tmp_path / "rooms")
    room_path = tmp_path / "rooms" / "debates" / "keepers-daughter-2.json"
    room = json.loads(room_path.read_text())
    room["setup"]["correctAnswerIndex"] = 0  # "A storm was coming." in this room's order
    room_path.write_text(json.dumps(room))
    first = load(name="nyu_stories", path=str(tmp_path / "rooms"))[0]
    assert first.metadata["rooms_disagree_on_correct_answer"] is True
    assert correct_and_other(first)[0] == "The boat was not hers."  # the first room's answer
