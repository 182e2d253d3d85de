"""The Results tab (admins only): analysis tables and plots, and a form that starts a model
judge over an experiment with its progress shown. Both use other parts of the platform
(debate.analysis, judges.run), imported here like any other module."""

import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from debate.analysis import analyze
from debate.analysis.strength import strength_analysis
from debate.browse import experiment_folder_by_name, experiment_names
from debate.store.db import Store
from debate.store.tournaments import tournament_games, tournament_names
from judges.run import judge_experiment
from web.auth import require_admin, user_errors
from web.render import esc, md_text, png_tag


def analysis_html(store: Store, experiments: list[str] | None, by: list[str]) -> str:
    result = analyze(store, experiments=experiments or None, by=by or ["protocol", "judge"])
    parts: list[str] = []
    for name, frame in result.tables.items():
        parts.append(f"<h4>{esc(name)}</h4>")
        if frame.empty:
            parts.append("<p><i>no rows yet</i></p>")
            continue
        table = frame.to_html(escape=True, index=False, float_format=lambda v: f"{v:.3f}",
                              na_rep="", border=0)
        parts.append(f'<div style="overflow-x:auto">{table}</div>')
    with tempfile.TemporaryDirectory() as tmp:
        for path in result.plot_pngs(Path(tmp)):
            parts.append(f"<h4>{esc(Path(path).stem)}</h4>")
            parts.append(png_tag(Path(path).read_bytes(), Path(path).stem))
    return "".join(parts) or "<p>No results yet.</p>"


STRENGTH_INTRO = (
    "<p>Judge accuracy in self-play (and the deceptive side's win rate) against each "
    "debater's aggregate rating: the mean of its true-side and false-side Bradley-Terry "
    "ratings from cross-play, per judge; debate and consultancy on one plot. Intervals: "
    "bootstrap over questions.</p>")


def strength_html(store: Store, tournaments: list[str]) -> str:
    """The strength-accuracy curve of the chosen tournaments (none: every experiment)."""
    experiments: list[str] = []
    for name in tournaments:
        games = tournament_games(store, name)
        if games is None:
            raise gr.Error(f"tournament: no tournament named {name!r}")
        experiments += [g.experiment for g in games]
    result = strength_analysis(store, experiments or None)
    t = result.tables
    if t["strength"].empty:
        return "<p>No self-play verdicts yet: run a tournament and judge it.</p>"
    parts = [STRENGTH_INTRO]
    with tempfile.TemporaryDirectory() as tmp:
        path = result.plot(Path(tmp) / "strength.png")
        if path is not None:
            parts.append(png_tag(path.read_bytes(), "strength-accuracy curve"))
    for name in ("strength_fit", "side_ratings", "connectivity", "strength"):
        parts.append(f"<h4>{esc(name)}</h4>")
        if t[name].empty:
            parts.append("<p><i>none</i></p>" if name == "connectivity" else "<p><i>no rows</i></p>")
            continue
        table = t[name].to_html(escape=True, index=False, float_format=lambda v: f"{v:.3f}",
                                na_rep="", border=0)
        parts.append(f'<div style="overflow-x:auto">{table}</div>')
    return "".join(parts)


def parse_judge_config(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise gr.Error(f"judge config: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise gr.Error("judge config: expected a mapping, e.g. {type: model, model: PATH}")
    return data


def build(store: Store) -> dict[str, Any]:
    with gr.Row():
        exps = gr.Dropdown(label="Experiments (none: all)", choices=[], multiselect=True, allow_custom_value=True)
        by = gr.CheckboxGroup(["protocol", "judge", "judge_type", "experiment", "family",
                               "debater"],
                              value=["protocol", "judge"], label="Group by")
        run_btn = gr.Button("Show results", elem_id="results-run")
    results = gr.HTML("", elem_id="results-html")
    gr.Markdown("### Strength-accuracy curve (tournaments)")
    with gr.Row():
        tourns = gr.Dropdown(label="Tournaments (none: every experiment)", choices=[],
                             multiselect=True, allow_custom_value=True)
        strength_btn = gr.Button("Show strength curve", elem_id="results-strength")
    strength = gr.HTML("", elem_id="results-strength-html")
    gr.Markdown("### Start a model judge over an experiment")
    with gr.Row():
        judge_exp = gr.Dropdown(label="Experiment", choices=[], allow_custom_value=True)
        judge_cfg = gr.Textbox(label="Judge config (YAML)", lines=4,
                               value="",
                               placeholder="type: logprob\nmodel: Qwen/Qwen2.5-0.5B-Instruct")
    judge_btn = gr.Button("Start model judge", elem_id="results-judge")
    judge_status = gr.Markdown("", elem_id="results-judge-status")

    @user_errors
    def load(request: gr.Request):
        try:
            require_admin(store, request)
        except gr.Error:
            return gr.update(), gr.update(), gr.update()
        names = experiment_names(store)
        return (gr.update(choices=names), gr.update(choices=names),
                gr.update(choices=tournament_names(store)))

    @user_errors
    def show(selected: Any, groups: Any, request: gr.Request):
        require_admin(store, request)
        return analysis_html(store, list(selected or []), list(groups or []))

    @user_errors
    def show_strength(selected: Any, request: gr.Request):
        require_admin(store, request)
        return strength_html(store, [str(t) for t in (selected or [])])

    @user_errors
    def start_judge(experiment: Any, cfg_text: Any, request: gr.Request,
                    progress=gr.Progress()):  # noqa: B008 - Gradio injects it
        require_admin(store, request)
        if not experiment:
            raise gr.Error("experiment: choose an experiment")
        config = parse_judge_config(cfg_text)

        def report(done: int, total: int) -> None:
            progress((done, total), desc=f"judged {done} of {total} debates")

        # relative paths in the judge settings are read from the experiment config's folder
        out = judge_experiment(store, str(experiment), config, progress=report,
                               config_dir=experiment_folder_by_name(store, str(experiment)))
        summary = json.dumps(out, default=str)[:500] if out is not None else "done"
        return f"Model judge finished on {md_text(experiment)}: {md_text(summary)}"

    run_btn.click(show, inputs=[exps, by], outputs=results, api_name="results")
    strength_btn.click(show_strength, inputs=[tourns], outputs=strength, api_name="strength")
    judge_btn.click(start_judge, inputs=[judge_exp, judge_cfg], outputs=judge_status,
                    api_name="start_model_judge")
    return {"load": load, "load_outputs": [exps, judge_exp, tourns]}
