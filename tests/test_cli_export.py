"""`debate export` on the command line: formats, one-line errors."""

from __future__ import annotations

import io
import json

from rich.console import Console

from debate.cli import main
from debate.demo_scripted import run
from debate.store import open_store


def cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_command(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store = open_store(url)
    run(store, Console(file=io.StringIO()))
    store.dispose()
    out = tmp_path / "export"
    code, stdout, _ = cli(capsys, "export", "--db", url, "--format", "jsonl", "--out", str(out),
                          "--experiment", "demo-debate")
    assert code == 0
    assert stdout.strip() == (
        f"wrote {out}: 1 experiments, 20 documents, 40 debates, 240 turns, "
        f"{sum(1 for _ in (out / 'quotes.jsonl').open())} quotes, 0 judgments"
    )
    first = json.loads((out / "turns.jsonl").read_text().splitlines()[0])
    assert {"id", "debate_id", "experiment", "protocol", "round", "role"} <= set(first)

    code, _, err = cli(capsys, "export", "--db", url, "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "exists and is not empty" in err
    code, _, err = cli(capsys, "export", "--db", url, "--out", str(tmp_path / "n"),
                       "--experiment", "nope")
    assert code == 2 and err.startswith("error: --experiment: no experiment named 'nope'")
    code, _, err = cli(capsys, "export", "--db", url, "--out", str(tmp_path / "x"),
                       "--format", "xml")
    assert code == 2 and "'xml' is not one of 'jsonl', 'csv', 'parquet'" in err
    assert not (tmp_path / "n").exists() and not (tmp_path / "x").exists()
