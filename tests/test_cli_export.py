"""`debate export` on the command line: formats, one-line errors."""

from __future__ import annotations

import io
import json

from cli_runner import run_cli
from rich.console import Console

from debate.demo.scripted import run
from debate.store import open_store


def test_export_command(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store = open_store(url)
    run(store, Console(file=io.StringIO()))
    store.dispose()
    out = tmp_path / "export"
    code, stdout, _ = run_cli(["export", "--db", url, "--format", "jsonl", "--out", str(out),
                          "--experiment", "demo-debate"], capsys)
    assert code == 0
    assert stdout.strip() == (
        f"wrote {out}: 1 experiments, 20 documents, 40 debates, 240 turns, "
        f"{sum(1 for _ in (out / 'quotes.jsonl').open())} quotes, 0 judgments, "
        "0 activations, 0 probes, 0 probe_scores"
    )
    first = json.loads((out / "turns.jsonl").read_text().splitlines()[0])
    assert {"id", "debate_id", "experiment", "protocol", "round", "role"} <= set(first)

    code, _, err = run_cli(["export", "--db", url, "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and "exists and is not empty" in err
    code, _, err = run_cli(["export", "--db", url, "--out", str(tmp_path / "n"),
                       "--experiment", "nope"], capsys)
    assert code == 2 and err.startswith("error: --experiment: no experiment named 'nope'")
    code, _, err = run_cli(["export", "--db", url, "--out", str(tmp_path / "x"),
                       "--format", "xml"], capsys)
    assert code == 2 and "'xml' is not one of 'jsonl', 'csv', 'parquet'" in err
    assert not (tmp_path / "n").exists() and not (tmp_path / "x").exists()
