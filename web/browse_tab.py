"""The Browse tab (admins only): filter debates, open one with its seats, turns, quotes and
judgments. Every handler checks the role on the server."""

from typing import Any

import gradio as gr
import pandas as pd

from debate.browse import DEBATE_COLUMNS, MAX_ROWS, debate_detail, filter_options, find_debates
from debate.quotes import QuoteMark, quote_segments, segments_html
from debate.store.db import Store
from debate.store.probes import turn_probe_scores
from debate.vocabulary import DebateStatus
from web.auth import require_admin, user_errors
from web.render import esc, esc_block

STATUSES = [s.value for s in DebateStatus]


def debate_detail_html(store: Store, debate_id: int) -> str:
    d = debate_detail(store, debate_id)
    if d is None:
        raise gr.Error(f"debate: no debate with id {debate_id}")
    answers, correct, source = d.answers, d.correct, d.source
    seats, turns, quotes, judgments = d.seats, d.turns, d.quotes, d.judgments
    # admins only (this tab): probe scores are ground truth in disguise
    probe_scores = turn_probe_scores(store, [t[0] for t in turns])
    out = [(f'<div class="debate-view"><p><b>Debate {d.id}</b> · experiment '
            f'{esc(d.experiment or "?")} · {esc(d.protocol)} · {esc(d.variant)} · '
            f'status <b>{esc(d.status)}</b></p>'),
           f'<p class="question">{esc(d.question)}</p><ol>']
    for pos, i in enumerate(d.answer_order):
        mark = " <b>(correct)</b>" if i == correct else ""
        out.append(f"<li>shown {pos + 1}: {esc(answers[i])}{mark}</li>")
    out.append("</ol><p><b>Seats</b></p><ul>")
    for role, ans, name, kind, model in seats:
        side = esc(answers[ans]) if ans is not None else "(chooses)"
        honest = "" if ans is None else (" — honest" if ans == correct else " — deceptive")
        out.append(f"<li>{esc(role)}: {esc(name)} ({esc(kind)}{', ' + esc(model) if model else ''})"
                   f" argues {side}{honest}</li>")
    out.append("</ul><p><b>Transcript</b></p>")
    marks: dict[int, dict[int, QuoteMark]] = {}
    for tid, pos, _text, verified, _fuzzy, start, end in quotes:
        marks.setdefault(tid, {})[pos] = QuoteMark(bool(verified), start, end)
    for tid, rnd, role, kind, text, status, uname in turns:
        by_pos = marks.get(tid, {})
        ordered = [by_pos.get(p, QuoteMark(False, None, None))
                   for p in range(max(by_pos) + 1)] if by_pos else []
        who = f" by {esc(uname)}" if uname else ""
        probes = "".join(f" · probe {esc(name)}: {score:+.2f}"
                         for name, score in probe_scores.get(tid, []))
        out.append(f'<div class="turn"><div class="speaker">{esc(role)} · round {rnd} · '
                   f'{esc(kind)} · {esc(status)}{who} (turn {tid}){probes}</div>'
                   f'<div class="text">{segments_html(quote_segments(text, ordered, source))}'
                   '</div></div>')
    out.append("<p><b>Quotes</b></p><table><tr><th>turn</th><th>#</th><th>verified</th>"
               "<th>fuzzy</th><th>debater's text (raw)</th><th>source span</th></tr>")
    for tid, pos, text, verified, fuzzy, start, end in quotes:
        # the debater's raw quote, kept for audit; the span's source text beside it
        span = (esc(source[start:end]) if verified and source and start is not None
                and end is not None and 0 <= start < end <= len(source) else "")
        out.append(f"<tr><td>{tid}</td><td>{pos}</td><td>{'yes' if verified else 'no'}</td>"
                   f"<td>{fuzzy:.2f}</td><td>{esc(text)}</td><td>{span}</td></tr>")
    out.append("</table><p><b>Judgments</b></p><ul>")
    for kind, after, probs, expl, ms, uname, aname in judgments:
        who = esc(uname or aname or "?")
        p = ", ".join(f"{esc(answers[i])}: {v * 100:.0f}%" for i, v in enumerate(probs or []))
        when = f" after round {after}" if after is not None else ""
        took = f" in {ms / 1000:.0f}s" if ms is not None else ""
        out.append(f"<li>{who} ({esc(kind)}{when}{took}): {p or 'no verdict'}<br>"
                   f"<i>{esc_block(expl or '')}</i></li>")
    out.append("</ul>")
    if source:
        out.append(f'<details><summary>Source</summary><div class="source-text">'
                   f'{esc(source)}</div></details>')
    out.append("</div>")
    return "".join(out)


def build(store: Store) -> dict[str, Any]:
    with gr.Row():
        exp = gr.Dropdown(label="Experiment", choices=[], value=None, allow_custom_value=True)
        proto = gr.Dropdown(label="Protocol", choices=[], value=None, allow_custom_value=True)
        status = gr.Dropdown(label="Status", choices=STATUSES, value=None)
        search = gr.Button("Filter", elem_id="browse-filter")
    table = gr.Dataframe(value=None, interactive=False, label=f"Debates (first {MAX_ROWS})")
    with gr.Row():
        debate_id = gr.Number(label="Debate id", precision=0, value=None)
        open_btn = gr.Button("Open", elem_id="browse-open")
    detail = gr.HTML("", elem_id="browse-detail")

    @user_errors
    def load(request: gr.Request):
        try:
            require_admin(store, request)
        except gr.Error:
            return gr.update(), gr.update()
        exps, protos = filter_options(store)
        return gr.update(choices=exps), gr.update(choices=protos)

    @user_errors
    def do_search(e: Any, p: Any, s: Any, request: gr.Request):
        require_admin(store, request)
        return pd.DataFrame(find_debates(store, e or None, p or None, s or None),
                            columns=DEBATE_COLUMNS)

    @user_errors
    def do_open(value: Any, request: gr.Request):
        require_admin(store, request)
        if value is None:
            raise gr.Error("debate id: give a debate id")
        return debate_detail_html(store, int(value))

    search.click(do_search, inputs=[exp, proto, status], outputs=table, api_name="browse")
    open_btn.click(do_open, inputs=debate_id, outputs=detail, api_name="open_debate")
    return {"load": load, "load_outputs": [exp, proto]}
