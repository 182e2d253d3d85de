"""The Debate tab: a person takes a debater seat. They read the source, insert quotes by
selecting text in it, see a word counter with the protocol's limits (enforced on the
server), and submit; the engine then goes on with the debate until the next person's
turn or the end."""

import json
from typing import Any

import gradio as gr

from debate.browse import stored_marks
from debate.human_turns import (
    HumanTurnSettings,
    submit_human_turn,
    turn_context,
    waiting_turns,
)
from debate.quotes import quote_segments
from debate.store.db import Store
from debate.vocabulary import SPEAKER_LABELS, DebateStatus, UserRole
from web.auth import current_user, user_errors
from web.render import LEGEND, answers_html, esc, turns_html

# Word counter in the browser; the server checks the same limits again on submit.
COUNT_JS = """(text, limits) => {
  const lim = JSON.parse(limits || '{}');
  const words = (text || '').split(/\\s+/).filter(Boolean).length;
  let quoted = 0;
  const re = /<\\s*quote\\s*>([\\s\\S]*?)(<\\s*\\/\\s*quote\\s*>|$)/gi;
  let m; while ((m = re.exec(text || '')) !== null) {
    quoted += m[1].split(/\\s+/).filter(Boolean).length; if (m[0].length === 0) break; }
  const over = (lim.max_words && words > lim.max_words) ||
               (lim.max_quoted_words != null && quoted > lim.max_quoted_words);
  const q = lim.max_quoted_words != null ? ` · quoted words: ${quoted} / ${lim.max_quoted_words}` : '';
  return `${over ? '⚠ over the limit · ' : ''}words: ${words} / ${lim.max_words || '?'}` +
         (lim.min_words ? ` (at least ${lim.min_words})` : '') + q;
}"""

# Wrap the text last selected inside the source in <quote> tags, at the cursor.
QUOTE_JS = """(text) => {
  const sel = (window.__debateSourceSelection || '').trim();
  if (!sel) { return text; }
  const box = document.querySelector('#turn-text textarea');
  const at = box && box.selectionStart != null ? box.selectionStart : (text || '').length;
  const t = text || '';
  return t.slice(0, at) + '<quote>' + sel + '</quote>' + t.slice(at);
}"""


def _label(p) -> str:
    return (f"Debate {p.debate_id} · {p.experiment} · {SPEAKER_LABELS.get(p.role, p.role)}, "
            f"round {p.round} ({p.kind})")


def build(store: Store) -> dict[str, Any]:
    settings = HumanTurnSettings.from_env()  # a bad DEBATE_LEASE_SECONDS: refused at start
    gr.Markdown("Turns waiting for you. Select text in the source and press **Insert quote** "
                "to quote it; quotes that match the source are shown to the judge as verified.")
    with gr.Row():
        pick = gr.Dropdown(label="Waiting turn", choices=[], value=None, scale=3, allow_custom_value=True,
                           elem_id="turn-pick")
        refresh = gr.Button("Refresh", scale=1, elem_id="turn-refresh")
    context = gr.HTML("", elem_id="turn-context")
    source = gr.HTML("", elem_id="turn-source")
    role_box = gr.Textbox(visible=False, value="")
    round_box = gr.Textbox(visible=False, value="")
    limits_box = gr.Textbox(visible=False, value="{}")
    choice = gr.Radio([("Answer 1", 0), ("Answer 2", 1)], label="The answer you will argue for",
                      visible=False, elem_id="turn-choice")
    text = gr.Textbox(label="Your turn", lines=6, elem_id="turn-text")
    with gr.Row():
        quote_btn = gr.Button("Insert quote from selection", elem_id="turn-quote")
        counter = gr.Markdown("", elem_id="turn-counter")
    submit_btn = gr.Button("Submit turn", variant="primary", elem_id="turn-submit")
    status = gr.Markdown("", elem_id="turn-status")

    shown = [context, source, role_box, round_box, limits_box, choice, text, counter]

    def _empty(msg: str) -> list[Any]:
        return [f"<p>{esc(msg)}</p>", "", "", "", "{}", gr.update(visible=False), "", ""]

    def _choices(user) -> tuple[list[tuple[str, str]], str | None]:
        turns = waiting_turns(store, user.name, user.id)
        return [(_label(p), str(p.debate_id)) for p in turns], (
            str(turns[0].debate_id) if turns else None)

    def _open(user, debate_value: Any) -> list[Any]:
        if not debate_value:
            return _empty("No turn is waiting for you.")
        ctx = turn_context(store, user.name, user.id, int(debate_value))
        r = ctx.request
        parts = [f'<div class="debate-view"><p class="question">{esc(r.question)}</p>',
                 answers_html(r.answers)]
        who = SPEAKER_LABELS.get(r.role, r.role)
        if ctx.my_answer_text is not None:
            parts.append(f"<p>You are <b>{esc(who)}</b> and argue for answer "
                         f"{r.my_answer + 1}: <b>{esc(ctx.my_answer_text)}</b>. "
                         f"Round {r.round} of {r.rounds}.</p>")
        elif r.kind == "choice":
            parts.append(f"<p>You are <b>{esc(who)}</b>: choose the answer you will argue "
                         "for, and say so.</p>")
        else:
            parts.append(f"<p>You are <b>{esc(who)}</b>: ask the debaters a question.</p>")
        marks = stored_marks(store, r.debate_id)
        turns = [(SPEAKER_LABELS.get(t.role, t.role), t.round, t.kind,
                  quote_segments(t.text, marks.get((t.role, t.round, t.kind), ()), r.source))
                 for t in r.transcript]
        parts.append(LEGEND if turns else "")
        parts.append(turns_html(turns) if turns else "<p><i>You speak first.</i></p>")
        parts.append("</div>")
        src = ""
        if r.source:
            title = f"<b>{esc(r.source_title)}</b><br>" if r.source_title else ""
            src = (f"<p><b>Source</b> (select a passage, then press Insert quote)</p>"
                   f'<div class="source-text" id="source-text">{title}{esc(r.source)}</div>')
        lim = r.limits
        limits = json.dumps({"min_words": lim.min_words, "max_words": lim.max_words,
                             "max_quoted_words": lim.max_quoted_words})
        counter_text = (f"words: 0 / {lim.max_words}"
                        + (f" · quoted words: 0 / {lim.max_quoted_words}"
                           if lim.max_quoted_words is not None else ""))
        return ["".join(parts), src, r.role, str(r.round), limits,
                gr.update(visible=r.kind == "choice", value=None), "", counter_text]

    @user_errors
    def load(request: gr.Request):
        user = current_user(store, request, UserRole.DEBATER)
        choices, first = _choices(user)
        return [gr.update(choices=choices, value=first)] + _open(user, first)

    @user_errors
    def open_turn(debate_value: Any, request: gr.Request):
        user = current_user(store, request, UserRole.DEBATER)
        return _open(user, debate_value)

    @user_errors
    def submit(debate_value: Any, role: Any, rnd: Any, body: Any, chosen: Any,
               request: gr.Request):
        user = current_user(store, request, UserRole.DEBATER)
        if not debate_value:
            raise gr.Error("debate: choose a waiting turn first")
        new_status = submit_human_turn(store, user.name, user.id, debate_value, role, rnd, body,
                                       chosen, settings=settings)
        choices, first = _choices(user)
        what = {DebateStatus.DONE: "The debate is finished.",
                DebateStatus.WAITING_HUMAN: "The debate now waits for the next person's turn.",
                DebateStatus.FAILED: "The debate failed after your turn (see Browse)."}.get(
                    new_status, f"The debate is now {new_status}.")
        return ([f"Your turn in debate {int(debate_value)} is stored. {what}",
                 gr.update(choices=choices, value=first)] + _open(user, first))

    refresh.click(load, outputs=[pick] + shown, api_name="debate_turns")
    pick.input(open_turn, inputs=pick, outputs=shown, api_name="open_turn")
    text.input(None, inputs=[text, limits_box], outputs=counter, js=COUNT_JS)
    quote_btn.click(None, inputs=text, outputs=text, js=QUOTE_JS).then(
        None, inputs=[text, limits_box], outputs=counter, js=COUNT_JS)
    submit_btn.click(submit, inputs=[pick, role_box, round_box, text, choice],
                     outputs=[status, pick] + shown, api_name="submit_turn")
    return {"load": load, "load_outputs": [pick] + shown}

