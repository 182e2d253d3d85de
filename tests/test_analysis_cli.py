"""`debate analyze`: table, Markdown and JSON output, CSV and PNG files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from debate.analysis import TABLE_ORDER
from debate.analysis.synthetic import seed_synthetic
from debate.cli import main
from debate.store import open_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def seeded_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'analysis.db'}"
    store = open_store(url)
    seed_synthetic(store, questions=40, seed=2)
    store.dispose()
    return url


def test_json_is_one_document_and_out_writes_csv_and_png(seeded_url: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    main(["analyze", "--db", seeded_url, "--format", "json", "--out", str(out), "--bootstrap", "50",
          "--experiment", "synthetic"])
    doc = json.loads(capsys.readouterr().out)  # the whole of stdout parses as one document
    assert list(doc["tables"]) == list(TABLE_ORDER)
    assert doc["meta"]["debates"] == 200 and doc["meta"]["bootstrap"] == 50
    accuracy = {(r["protocol"], r["judge"]): r for r in doc["tables"]["accuracy"]}
    assert ("debate", "model-judge") in accuracy and accuracy[("debate", "model-judge")]["boot_low"] is not None
    for name in TABLE_ORDER:
        assert (out / f"{name}.csv").is_file()
    pngs = sorted(p.name for p in out.glob("*.png"))
    # strength.png: the synthetic consultancies are self-play points of the strength curve
    assert pngs == ["accuracy.png", "ratings.png", "reliability.png", "rounds.png", "strength.png",
                    "win_rates.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert sorted(doc["meta"]["files"]) == sorted(str(p) for p in out.iterdir())


def test_table_and_markdown_formats(seeded_url: str, capsys) -> None:
    main(["analyze", "--db", seeded_url, "--by", "protocol,topic", "--format", "markdown",
          "--table", "accuracy", "--table", "calibration"])
    text = capsys.readouterr().out
    assert "## accuracy" in text and "## calibration" in text and "## ratings" not in text
    assert "| protocol | topic | n | accuracy |" in text
    main(["analyze", "--db", seeded_url, "--where", "topic=t1", "--table", "accuracy"])
    text = capsys.readouterr().out
    assert "accuracy" in text and "consultancy" in text and "…" not in text  # nothing truncated


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "protocol,colour"], "error: --by/--where: unknown field 'colour'"),
    (["--where", "topic"], "error: --where: expected FIELD=VALUE"),
    (["--table", "nonsense"], "error: --table: unknown table nonsense"),
    (["--experiment", "missing"], "error: --experiment: no experiment named 'missing'"),
    (["--bootstrap", "-1"], "error: --bootstrap: must be >= 0"),
])
def test_bad_options_end_in_one_line(seeded_url: str, capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--db", seeded_url, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
