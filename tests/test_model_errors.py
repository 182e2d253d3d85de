"""Model failures that no rerun can fix, with a local model: one line, exit 2 from
`debate judge`; a failed run that does not advise rerunning."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from cli_runner import run_cli
from engine_agents import write_questions

# A template that takes the backend's load-time probes but refuses the debate's prompts
# (the questions written by write_questions ask "what does the passage say?").
BROKEN = (
    "{% for message in messages %}"
    "{% if 'what does the passage say' in message['content'] %}"
    "{{ raise_exception('this template refuses every prompt') }}{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "templates").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, folder / "models" / "tiny")
    (folder / "templates" / "broken.jinja").write_text(BROKEN)
    write_questions(folder / "q.jsonl", 2)
    return folder


def test_a_chat_template_error_is_one_line_and_advises_no_rerun(tmp_path, tiny_model_dir,
                                                                 capsys, monkeypatch):
    folder = _project(tmp_path, tiny_model_dir)
    monkeypatch.chdir(tmp_path)  # not the config's folder: the paths are read from there
    url = f"sqlite:///{tmp_path / 'run.db'}"
    model = {"type": "model", "model": "models/tiny", "chat_template": "templates/broken.jinja",
             "max_new_tokens": 4, "temperature": 0.0, "max_resamples": 0, "cpu_threads": 1}
    config = folder / "broken.yaml"
    config.write_text(yaml.safe_dump({
        "name": "broken-template", "dataset": {"name": "jsonl", "path": "q.jsonl"},
        "protocol": {"name": "debate", "rounds": 1}, "debater": model}))
    code, out, err = run_cli(["run", str(config), "--db", url, "--quiet"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "0 turns made (2 more failed)" in out
    assert "refused the prompt (this template refuses every prompt)" in err
    assert "a rerun will not fix this" in err and "rerun the same command" not in err
    # debates to judge, then a judge with the broken template
    good = folder / "good.yaml"
    good.write_text(yaml.safe_dump({
        "name": "scripted", "dataset": {"name": "jsonl", "path": "q.jsonl"},
        "protocol": {"name": "debate", "rounds": 1}, "debater": {"type": "scripted"}}))
    assert run_cli(["run", str(good), "--db", url, "--quiet"], capsys)[0] == 0
    judge = folder / "judge.yaml"
    judge.write_text(yaml.safe_dump({
        "name": "broken-judge", "type": "text", "model": "models/tiny",
        "chat_template": "templates/broken.jinja", "max_new_tokens": 4, "cpu_threads": 1}))
    code, _, err = run_cli(["judge", "--experiment", "scripted", "--judge", str(judge),
                            "--db", url, "--quiet"], capsys)
    # (transformers' own weight-loading bar may come first on stderr)
    lines = [ln for ln in err.splitlines() if ln.strip() and "Loading weights" not in ln]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("error: judge 'broken-judge': the chat template of")
    assert "(this template refuses every prompt); set chat_template: plain" in err
    assert "no judgments were written; a rerun will not fix this" in err
