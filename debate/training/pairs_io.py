"""The preference data folder that `debate train data` writes and `debate train dpo` reads.

    DIR/
      pairs.jsonl      one pair a line: prompt, chosen, rejected (TRL's DPO layout, standard
                       text format: the prompt is the exact text the model read, chat
                       template applied) + scores, margin and provenance
      dataset/         the same rows as a Hugging Face `datasets` folder (load_from_disk)
      manifest.json    the selection rule (as data and in words), experiments, counts of
                       prompts with pairs, ties and failures left out

The folder is built beside DIR and renamed into place, so a killed run leaves no half-
written data; an existing non-empty DIR is refused unless `force` (then replaced whole).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from debate.errors import DatasetError, UserError
from debate.jsonl import iter_json_lines
from debate.training.preferences import PreferenceData

FORMAT = "debate-preferences/1"
TRL_COLUMNS = ("prompt", "chosen", "rejected")


def write_preference_dir(data: PreferenceData, out: Path, *, force: bool = False) -> Path:
    from datasets import Dataset

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"--out: {out} exists and is not empty (pass --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = [p.record() for p in data.pairs]
        with (tmp / "pairs.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        columns = {k: [r[k] for r in rows] for k in rows[0]} if rows else {
            k: [] for k in TRL_COLUMNS}
        Dataset.from_dict(columns).save_to_disk(str(tmp / "dataset"))
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "experiments": data.experiments,
            "rule": data.rule.model_dump(mode="json"),
            "rule_text": data.rule.describe(),
            **data.summary(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_manifest(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise UserError(f"--data: {data_dir} has no manifest.json (write it with `debate train "
                        "data`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: format: expected {FORMAT!r}")
    return manifest


def read_pairs(data_dir: Path) -> list[dict[str, str]]:
    """The (prompt, chosen, rejected) rows of pairs.jsonl, checked line by line, each with
    a `group` (its debate) for held-out splits."""
    read_manifest(data_dir)
    path = Path(data_dir) / "pairs.jsonl"
    if not path.is_file():
        raise UserError(f"--data: {path} is missing")
    rows = []
    for where, obj in iter_json_lines(path, DatasetError):
        if not isinstance(obj, dict):
            raise DatasetError(f"{where}: expected an object")
        for key in TRL_COLUMNS:
            value = obj.get(key)
            if not isinstance(value, str) or not value.strip():
                raise DatasetError(f"{where}: {key}: missing or empty (expected text)")
        if obj["chosen"] == obj["rejected"]:
            raise DatasetError(f"{where}: chosen and rejected are the same text")
        row = {k: obj[k] for k in TRL_COLUMNS}
        # held-out splits keep a debate's pairs together
        row["group"] = str(obj.get("debate_id", obj["prompt"]))
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path}: no preference pairs (nothing to train on)")
    return rows
