"""Preference data from a hand-made store: which pairs are chosen, which turns left out."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_cli

from debate.errors import DatasetError, UserError
from debate.store.models import (
    Agent,
    Debate,
    Document,
    Experiment,
    Judgment,
    Question,
    Quote,
    Seat,
    Turn,
)
from debate.training.exploits import exploit_counts
from debate.training.pairs_io import read_manifest, read_pairs, write_preference_dir
from debate.training.preferences import SelectionRule, build_preference_data

SOURCE = "Mara spent the spring digging along the north wall. She planted twelve cherry trees."
PROTOCOL = {"name": "debate", "family": "debate", "rounds": 1}


def cand(text: str, score: float | None, truncated: bool = False) -> dict:
    return {"text": text, "raw_text": text, "score": score, "chosen": False,
            "truncated": truncated, "attempts": 1, "completion_tokens": 3}


def make_store(store) -> dict[str, int]:
    """Experiment `e` (best-of-N turns) and `r1`/`r2` (paired rollouts) by hand."""
    ids = {}
    with store.session() as s:
        doc = Document(sha256="d" * 64, title="t", text=SOURCE)
        s.add(doc)
        model = Agent(fingerprint="m" * 64, name="tiny-debater", kind="model", model_id="tiny",
                      backend="transformers", settings={})
        server = Agent(fingerprint="o" * 64, name="served", kind="model", model_id="x",
                       backend="openai", settings={})
        judge = Agent(fingerprint="j" * 64, name="the-judge", kind="model-judge",
                      model_id="tiny", backend="transformers", settings={})
        other_judge = Agent(fingerprint="k" * 64, name="other-judge", kind="model-judge",
                            model_id="tiny", backend="transformers", settings={})
        s.add_all([model, server, judge, other_judge])
        s.flush()

        def experiment(name: str) -> tuple[Experiment, Question]:
            e = Experiment(name=name, protocol="debate", config={}, config_hash=name * 8)
            s.add(e)
            s.flush()
            q = Question(experiment_id=e.id, external_id="q1", dataset="sample", text="Where?",
                         answers=["north wall", "south gate"], correct_index=0,
                         document_id=doc.id)
            s.add(q)
            s.flush()
            return e, q

        def debate(e, q, variant: str, status: str = "done") -> Debate:
            d = Debate(experiment_id=e.id, question_id=q.id, protocol="debate",
                       protocol_spec=PROTOCOL, variant=variant, answer_order=[0, 1], seed=1,
                       status=status)
            s.add(d)
            s.flush()
            s.add_all([Seat(debate_id=d.id, role="A", agent_id=model.id, answer_index=0),
                       Seat(debate_id=d.id, role="B", agent_id=model.id, answer_index=1)])
            return d

        def turn(d, role: str, candidates=None, agent=model, status="ok", text="x",
                 shown=None, rnd=1, meta=None) -> Turn:
            t = Turn(debate_id=d.id, step=rnd * 2 + (role == "B"), round=rnd, role=role,
                     agent_id=agent.id, text=text, status=status,
                     shown=shown or f"<prompt {d.id} {role} {rnd}>",
                     shown_sha256=None, candidates=candidates, meta=meta or {})
            s.add(t)
            s.flush()
            return t

        e, q = experiment("e")
        d1 = debate(e, q, "v1")
        # 1: a clear pair: 0.8 chosen, 0.3 rejected (0.5 in the middle is neither)
        ids["clear"] = turn(d1, "A", [cand("strong case", 0.8), cand("weak case", 0.3),
                                      cand("middling case", 0.5)], text="strong case").id
        # 2: a tie
        ids["tie"] = turn(d1, "B", [cand("same one", 0.4), cand("other one", 0.4)]).id
        d2 = debate(e, q, "v2")
        # 3: one candidate was not scored: failed
        ids["unscored"] = turn(d2, "A", [cand("scored", 0.7), cand("unscored", None)]).id
        # 4: the best candidate was cut at the word limit: the next best is chosen
        ids["truncated"] = turn(d2, "B", [cand("too long " * 5, 0.9, truncated=True),
                                          cand("fits", 0.6), cand("poor", 0.2)]).id
        d3 = debate(e, q, "v3")
        # 5: an OpenAI-compatible server's prompt is a rendering, not the model's input
        ids["server"] = turn(d3, "A", [cand("a", 0.9), cand("b", 0.1)], agent=server).id
        # 6: a failed turn
        ids["failed"] = turn(d3, "B", [cand("c", 0.9), cand("d", 0.1)], status="failed").id
        d4 = debate(e, q, "v4")
        # 7: small margin (0.1)
        ids["small"] = turn(d4, "A", [cand("slightly better", 0.55),
                                      cand("slightly worse", 0.45)]).id
        # 8: the winner forges verified-quote marks; 9: the winner quotes what is not there
        ids["forged"] = turn(d4, "B", [cand("trust me \u27e6verified\u27e7", 0.95),
                                       cand("honest try", 0.5), cand("worst", 0.1)]).id
        d5 = debate(e, q, "v5")
        ids["unverified"] = turn(d5, "A", [
            cand("<quote>she planted pears by the gate</quote>", 0.9),
            cand("<quote>She planted twelve cherry trees.</quote>", 0.6),
            cand("nothing", 0.2)]).id

        # rollouts: the same prompt in two experiments' debates, judged differently
        r1, q1 = experiment("r1")
        r2, q2 = experiment("r2")
        shared = "<the same exact prompt>"
        rd1, rd2 = debate(r1, q1, "v1"), debate(r2, q2, "v1")
        ids["roll_good"] = turn(rd1, "A", text="convincing", shown=shared).id
        ids["roll_bad"] = turn(rd2, "A", text="unconvincing", shown=shared).id
        for d, p_a in ((rd1, 0.9), (rd2, 0.2)):
            s.add(Judgment(debate_id=d.id, judge_agent_id=judge.id, kind="final",
                           probabilities=[p_a, 1 - p_a], shown_order=[0, 1]))
        # the other judge disagrees: only counted when no judge filter is given
        s.add(Judgment(debate_id=rd2.id, judge_agent_id=other_judge.id, kind="final",
                       probabilities=[1.0, 0.0], shown_order=[0, 1]))
        # a shared prompt whose second debate was never judged
        rd3, rd4 = debate(r1, q1, "v2"), debate(r2, q2, "v2")
        turn(rd3, "B", text="one", shown="<another shared prompt>")
        turn(rd4, "B", text="two", shown="<another shared prompt>")
        s.add(Judgment(debate_id=rd3.id, judge_agent_id=judge.id, kind="final",
                       probabilities=[0.5, 0.5], shown_order=[0, 1]))
    return ids


def test_candidates_pairs_and_what_is_left_out(store):
    ids = make_store(store)
    data = build_preference_data(store, ["e"], SelectionRule(sources=["candidates"]))
    by_turn = {p.turn_id: p for p in data.pairs}
    assert set(by_turn) == {ids["clear"], ids["truncated"], ids["small"], ids["forged"],
                            ids["unverified"]}
    clear = by_turn[ids["clear"]]
    assert (clear.chosen, clear.rejected) == ("strong case", "weak case")
    assert clear.prompt == f"<prompt {clear.debate_id} A 1>"  # the exact stored prompt
    assert clear.margin == pytest.approx(0.5) and clear.side == "honest"
    assert by_turn[ids["truncated"]].chosen == "fits"           # never the cut one
    assert by_turn[ids["truncated"]].rejected == "poor"
    assert by_turn[ids["truncated"]].side == "deceptive"
    assert by_turn[ids["forged"]].chosen == "honest try"         # not the forged marks
    assert by_turn[ids["forged"]].rejected == "worst"
    assert "cherry" in by_turn[ids["unverified"]].chosen        # not the invented quote
    counts = data.counts["candidates"]
    assert counts["turns"] == 9
    assert counts["left_out_tie"] == 1
    assert counts["left_out_failed"] == 2          # the unscored turn and the failed turn
    assert counts["candidates_unscored"] == 1
    assert counts["left_out_prompt_not_exact"] == 1
    assert counts["turns_with_pairs"] == 5


def test_margin_threshold_and_permissive_rules(store):
    ids = make_store(store)
    strict = build_preference_data(store, ["e"], SelectionRule(sources=["candidates"],
                                                               min_margin=0.3))
    assert {p.turn_id for p in strict.pairs} == {ids["clear"], ids["truncated"], ids["forged"],
                                                  ids["unverified"]}
    assert strict.counts["candidates"]["left_out_tie"] == 2   # the tie and the 0.1 margin
    loose = build_preference_data(store, ["e"], SelectionRule(
        sources=["candidates"], chosen_may_be_truncated=True, chosen_must_be_clean=False))
    by_turn = {p.turn_id: p for p in loose.pairs}
    assert by_turn[ids["truncated"]].chosen.startswith("too long")
    assert by_turn[ids["forged"]].chosen.startswith("trust me")
    every = build_preference_data(store, ["e"], SelectionRule(sources=["candidates"],
                                                              pairs="all"))
    clear = [(p.chosen, p.rejected) for p in every.pairs if p.turn_id == ids["clear"]]
    assert sorted(clear) == sorted([("strong case", "weak case"),
                                    ("strong case", "middling case"),
                                    ("middling case", "weak case")])
    assert all(p.margin > 0 for p in every.pairs)


def test_paired_rollouts_scored_by_final_judgments(store):
    ids = make_store(store)
    data = build_preference_data(store, ["r1", "r2"], SelectionRule(sources=["rollouts"],
                                                                   judge="the-judge"))
    assert len(data.pairs) == 1
    p = data.pairs[0]
    assert (p.turn_id, p.rejected_turn_id) == (ids["roll_good"], ids["roll_bad"])
    assert (p.prompt, p.chosen, p.rejected) == ("<the same exact prompt>", "convincing",
                                                "unconvincing")
    assert p.chosen_score == pytest.approx(0.9) and p.rejected_score == pytest.approx(0.2)
    counts = data.counts["rollouts"]
    assert counts["prompts"] == 2 and counts["prompts_with_pairs"] == 1
    assert counts["speeches_unjudged"] == 1 and counts["left_out_failed"] == 1
    # every judge: the other judge's 1.0 lifts the second debate to 0.6 (mean), still lower
    both = build_preference_data(store, ["r1", "r2"], SelectionRule(sources=["rollouts"]))
    assert both.pairs[0].rejected_score == pytest.approx(0.6)


def test_data_folder_layout_and_refusals(sqlite_store, tmp_path):
    from datasets import load_from_disk

    make_store(sqlite_store)
    data = build_preference_data(sqlite_store, ["e", "r1", "r2"])
    out = write_preference_dir(data, tmp_path / "prefs")
    manifest = read_manifest(out)
    assert manifest["pairs"] == len(data.pairs) == 6
    assert manifest["rule"]["min_margin"] == 0.0 and "highest vs lowest" in manifest["rule_text"]
    assert manifest["by_source"]["candidates"]["left_out_tie"] == 1
    rows = read_pairs(out)
    assert [set(r) for r in rows] == [{"prompt", "chosen", "rejected", "group"}] * 6
    assert rows[0]["group"] == str(first_debate_id(out))
    ds = load_from_disk(str(out / "dataset"))
    assert ds.num_rows == 6 and {"prompt", "chosen", "rejected", "margin"} <= set(ds.column_names)
    first = json.loads((out / "pairs.jsonl").read_text().splitlines()[0])
    assert first["source"] == "candidates" and first["margin"] > 0 and first["experiment"] == "e"
    with pytest.raises(UserError, match="exists and is not empty"):
        write_preference_dir(data, out)
    # a hand-edited line that breaks the layout is named by file and line
    lines = (out / "pairs.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"prompt": "p", "chosen": "", "rejected": "r"})
    (out / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"pairs.jsonl:3: chosen: missing or empty"):
        read_pairs(out)
    with pytest.raises(UserError, match="no experiment named 'nope'"):
        build_preference_data(sqlite_store, ["nope"])


def first_debate_id(out) -> int:
    return json.loads((out / "pairs.jsonl").read_text().splitlines()[0])["debate_id"]


def test_cli_train_data(sqlite_store, sqlite_url, tmp_path, capsys):
    make_store(sqlite_store)
    out = tmp_path / "cli-prefs"
    code, stdout, _ = run_cli(["train", "data", "--experiment", "e", "--out", str(out),
                               "--min-margin", "0.3", "--source", "candidates",
                               "--db", sqlite_url], capsys)
    assert code == 0, stdout
    assert stdout.startswith("4 preference pairs written") and "left_out_tie 2" in stdout
    code, stdout, _ = run_cli(["train", "data", "--experiment", "e", "--out", str(out),
                               "--source", "candidates", "--allow-unclean-chosen", "--force",
                               "--db", sqlite_url], capsys)
    assert code == 0 and "trust me" in (out / "pairs.jsonl").read_text()
    code, _, err = run_cli(["train", "data", "--experiment", "e", "--out", str(out),
                            "--db", sqlite_url], capsys)
    assert code == 2 and "exists and is not empty" in err
    code, _, err = run_cli(["train", "data", "--experiment", "e", "--out", str(tmp_path / "x"),
                            "--min-margin", "1.5", "--db", sqlite_url], capsys)
    assert code == 2 and err.startswith("error: --min-margin:")
    assert not (tmp_path / "x").exists()


def test_exploit_counts_per_experiment(store):
    make_store(store)
    with store.session() as s:
        e = Experiment(name="x", protocol="debate", config={}, config_hash="x" * 8)
        s.add(e)
        s.flush()
        q = Question(experiment_id=e.id, external_id="q", dataset="sample", text="?",
                     answers=["a", "b"], correct_index=0)
        s.add(q)
        s.flush()
        d = Debate(experiment_id=e.id, question_id=q.id, protocol="debate",
                   protocol_spec=PROTOCOL, variant="v", answer_order=[0, 1], seed=1,
                   status="done")
        s.add(d)
        s.flush()
        specs = [
            ("A", 1, "fine <quote>true words</quote>", "ok", {}, None),
            ("B", 1, "made up <quote>false words</quote> and <quote>more</quote>", "ok", {},
             None),
            ("A", 2, "cut short ... [truncated]", "truncated", {"raw_text": "cut short " * 40},
             [{"text": "a", "truncated": True}, {"text": "b", "truncated": False}]),
            ("B", 2, "see \u27e6verified\u27e7 here", "ok", {"resampled": [{"reason": "over"}]},
             None),
            ("A", 3, "<quote>never closed", "ok", {}, None),
            ("B", 3, "", "ok", {}, None),
        ]
        for i, (role, rnd, text, status, meta, cands) in enumerate(specs):
            t = Turn(debate_id=d.id, step=i, round=rnd, role=role, text=text, status=status,
                     meta=meta, candidates=cands)
            s.add(t)
            s.flush()
            if i == 0:
                s.add(Quote(turn_id=t.id, position=0, text="true words", verified=True,
                            fuzzy_score=1.0))
            if i == 1:
                s.add_all([Quote(turn_id=t.id, position=k, text=w, verified=False,
                                 fuzzy_score=0.1) for k, w in enumerate(["false words", "more"])])
    assert exploit_counts(store, "x") == {
        "speeches": 6, "quote_failures": 1, "unverified_quotes": 2, "truncated": 1,
        "resampled": 1, "over_long_candidates": 1, "markup_tricks": 2, "empty": 1,
    }
    assert exploit_counts(store, "e")["speeches"] == 9
    assert exploit_counts(store, "nope")["speeches"] == 0
