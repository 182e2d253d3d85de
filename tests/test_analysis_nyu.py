"""`debate analyze` reproduces per-setting judge accuracy straight from the NYU rooms' JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from debate.analysis import analyze
from debate.cli import main
from debate.store import open_store


def accuracy_from_json(sample: Path) -> dict[str, tuple[int, float, float]]:
    """Per setting, over includedInPaper rooms finished by a live judge:
    (verdicts, plain accuracy, accuracy averaged over answer orders and consultant sides)."""
    metadata = {}
    for line in (sample / "debates-metadata.jsonl").read_text().splitlines():
        item = json.loads(line)
        metadata[item["name"]] = item
    cells: dict[str, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((sample / "debates").glob("*.json")):
        meta = metadata[path.stem]
        result = (meta["status"].get("Complete") or {}).get("result") or {}
        if not meta["includedInPaper"] or not result.get("judgingInfo"):
            continue
        room = json.loads(path.read_text())
        correct = room["setup"]["correctAnswerIndex"]
        p = result["judgingInfo"]["finalJudgement"][correct]
        score = 1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0
        setting = meta["setting"]
        name = f"{'human' if setting['isHuman'] else 'AI'} {'debate' if setting['isDebate'] else 'consultancy'}"
        side = None
        if not setting["isDebate"]:
            consultant = 0 if "Debater A" in room["setup"]["roles"] else 1
            side = consultant == correct
        cells[name][(correct == 0, side)].append(score)
    out = {}
    for name, by_cell in cells.items():
        scores = [s for cell in by_cell.values() for s in cell]
        # Average over the two answer orders within a consultant side, then over the sides.
        by_side: dict = defaultdict(list)
        for (_first, side), cell in by_cell.items():
            by_side[side].append(sum(cell) / len(cell))
        balanced = sum(sum(v) / len(v) for v in by_side.values()) / len(by_side)
        out[name] = (len(scores), sum(scores) / len(scores), balanced)
    return out


@pytest.fixture(scope="module")
def imported_url(tmp_path_factory, nyu_sample: Path):
    """The sample imported once (through the CLI) for every test here."""
    url = f"sqlite:///{tmp_path_factory.mktemp('nyu') / 'nyu.db'}"
    main(["import", "nyu", str(nyu_sample), "--db", url, "--quiet"])
    return url


@pytest.fixture(scope="module")
def nyu_sample() -> Path:
    """Module-scoped twin of conftest's fixture (same path, same skip), so the import runs once."""
    sample = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nyu-debate-2023-sample"
    if not (sample / "debates").is_dir():
        pytest.skip(f"the shared NYU sample is not present at {sample}")
    return sample


def test_per_setting_accuracy_matches_the_json(imported_url: str, nyu_sample: Path) -> None:
    expected = accuracy_from_json(nyu_sample)
    assert set(expected) == {"human debate", "human consultancy", "AI debate", "AI consultancy"}
    sqlite_store = open_store(imported_url, migrate=False)
    acc = analyze(sqlite_store, by=["setting"], where={"included_in_paper": "true", "judging": "final"},
                  bootstrap=200).tables["accuracy"].set_index("setting")
    for setting, (n, plain, balanced) in expected.items():
        assert acc.loc[setting, "n"] == n
        assert acc.loc[setting, "accuracy_raw"] == pytest.approx(plain)
        assert acc.loc[setting, "accuracy"] == pytest.approx(balanced)
        assert acc.loc[setting, "boot_low"] <= acc.loc[setting, "accuracy"] <= acc.loc[setting, "boot_high"]

    # Debate against consultancy, human and AI settings apart: grouped by family.
    sig = analyze(sqlite_store, by=["family", "is_human"],
                  where={"included_in_paper": "true", "judging": "final"}).tables["significance"]
    sig = sig.set_index("is_human")
    assert sig.loc["true", "n_debate"] == expected["human debate"][0]
    assert sig.loc["false", "n_consultancy"] == expected["AI consultancy"][0]
    assert sig.loc["true", "difference"] == pytest.approx(
        expected["human debate"][2] - expected["human consultancy"][2])
    assert 0 <= sig.loc["true", "p_value"] <= 1
    sqlite_store.dispose()


def test_cli_json_gives_the_same_figures(imported_url: str, nyu_sample: Path, capsys) -> None:
    capsys.readouterr()
    main(["analyze", "--db", imported_url, "--by", "setting,included_in_paper", "--format", "json", "--table", "accuracy"])
    doc = json.loads(capsys.readouterr().out)
    rows = {r["setting"]: r for r in doc["tables"]["accuracy"]
            if r["included_in_paper"] == "true" and r["judging"] == "final"}
    for setting, (n, plain, _) in accuracy_from_json(nyu_sample).items():
        assert rows[setting]["n"] == n
        assert rows[setting]["accuracy_raw"] == pytest.approx(plain, abs=1e-6)
