"""The Judge tab: a campaign's queue, the debate shown blind, probabilities, feedback.

Nothing a handler here returns before the final submit holds ground truth: the view comes
from judges.queue.judge_view (no correct answer, no honest side, no agent names, no other
judgments), and every component starts empty in the page config.
"""

from typing import Any

import gradio as gr

from debate.store.db import Store
from debate.vocabulary import UserRole
from judges import queue
from web.auth import current_user, user_errors
from web.render import esc, judge_html, md_text

INTRO = (
    "Pick a campaign and press **Next debate**. Keys: **1-9** set answer 1 to 10-90%, "
    "**[ / ]** move it by 5, **Ctrl+Enter** submits, **N** takes the next debate "
    "(keys work when you are not typing in a text box)."
)
LIKERT = [("1 - very low", 1), ("2", 2), ("3", 3), ("4", 4), ("5 - very high", 5)]


def build(store: Store) -> dict[str, Any]:
    gr.Markdown(INTRO)
    with gr.Row():
        campaign = gr.Dropdown(label="Campaign", choices=[], value=None, scale=3, allow_custom_value=True,
                               elem_id="judge-campaign")
        next_btn = gr.Button("Next debate (N)", variant="secondary", scale=1,
                             elem_id="judge-next")
    progress_md = gr.Markdown("", elem_id="judge-progress")
    view = gr.HTML("", elem_id="judge-view")
    assignment_box = gr.Textbox(visible=False, value="")
    debate_box = gr.Textbox(visible=False, value="")
    round_box = gr.Textbox(visible=False, value="")
    with gr.Row():
        prob_a = gr.Slider(1, 99, value=50, step=1, label="Answer 1: probability it is correct (%)",
                           elem_id="prob-a")
        prob_b = gr.Slider(1, 99, value=50, step=1, label="Answer 2: probability it is correct (%)",
                           elem_id="prob-b")
    explanation = gr.Textbox(label="Explanation (required)", lines=3, elem_id="judge-explanation",
                             placeholder="Why these probabilities? Which quotes convinced you?")
    submit_btn = gr.Button("Submit (Ctrl+Enter)", variant="primary", elem_id="judge-submit",
                           interactive=False)
    message = gr.Markdown("", elem_id="judge-message")
    judgment_box = gr.Textbox(visible=False, value="")
    with gr.Group(visible=False, elem_id="judge-feedback") as feedback_group:
        gr.Markdown("**A few questions about this debate** (1 = very low, 5 = very high)")
        clarity = gr.Radio(LIKERT, label="How clear were the arguments?", elem_id="fb-clarity")
        evidence = gr.Radio(LIKERT, label="How well did the debaters use evidence (quotes)?",
                            elem_id="fb-evidence")
        confidence = gr.Radio(LIKERT, label="How confident are you in your judgment?",
                              elem_id="fb-confidence")
        comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="fb-comment")
        feedback_btn = gr.Button("Send feedback", elem_id="fb-submit")

    # The two sliders always sum to 100: moving one sets the other, in the browser.
    prob_a.input(None, inputs=prob_a, outputs=prob_b, js="(a) => 100 - a")
    prob_b.input(None, inputs=prob_b, outputs=prob_a, js="(b) => 100 - b")

    shown = [view, assignment_box, debate_box, round_box, progress_md, message, submit_btn,
             feedback_group, judgment_box, prob_a, prob_b, explanation]

    def _progress_text(p: queue.Progress) -> str:
        return (f"**Your progress:** {p.mine} judged (of at most {p.mine_possible} questions) "
                f"· **Campaign:** {p.campaign_done} of {p.campaign_total} judgments")

    def _progress(user, campaign: "int | queue.CampaignInfo") -> str:
        return _progress_text(queue.progress(store, user, campaign))

    def _blank(text: str, prog: str = "") -> list[Any]:
        return [f"<p>{esc(text)}</p>", "", "", "", prog, "", gr.update(interactive=False),
                gr.update(visible=False), "", 50, 50, ""]

    # Sliders and explanation: (50, 50, "") for a new debate; in stepped mode the judge's
    # own last values are sent back. Echoing a value is cheaper for Gradio than gr.update(),
    # which rebuilds the component on the server.
    fresh = (50, 50, "")

    def _render(v: queue.JudgeView, a: queue.AssignmentInfo, prog: str, msg: str = "",
                inputs: tuple[Any, Any, Any] = fresh) -> list[Any]:
        return [judge_html(v), str(a.id), str(a.debate_id), str(a.rounds_shown), prog, msg,
                gr.update(interactive=True), gr.update(visible=False), "", *inputs]

    def _show(user, campaign: "int | queue.CampaignInfo", a: queue.AssignmentInfo,
              msg: str = "", inputs: tuple[Any, Any, Any] = fresh) -> list[Any]:
        return _render(queue.judge_view(store, a), a, _progress(user, campaign), msg, inputs)

    def _campaign_id(value: Any) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise gr.Error("campaign: choose a campaign first") from None

    @user_errors
    def load(request: gr.Request):
        user = current_user(store, request, UserRole.JUDGE)
        camps = queue.campaigns_for(store, user)
        choices = [(f"{c.name} ({c.mode})", str(c.id)) for c in camps]
        if not camps:
            return [gr.update(choices=[], value=None)] + _blank(
                "No judging campaign is open to you right now.")
        first = camps[0].id
        return [gr.update(choices=choices, value=str(first))] + _current(user, first)

    def _current(user, campaign_id: int) -> list[Any]:
        a = queue.open_assignment(store, user.id, campaign_id)
        if a is None:
            return _blank("Press Next debate to get a debate to judge.",
                          _progress(user, campaign_id))
        return _show(user, campaign_id, a)

    @user_errors
    def select(campaign_value: Any, request: gr.Request):
        user = current_user(store, request, UserRole.JUDGE)
        cid = _campaign_id(campaign_value)
        if not queue.get_campaign(store, cid).allows(user):
            raise gr.Error(queue.no_campaign(cid))
        return _current(user, cid)

    @user_errors
    def next_debate(campaign_value: Any, request: gr.Request):
        user = current_user(store, request, UserRole.JUDGE)
        a, view, prog = queue.next_with_view(store, user, _campaign_id(campaign_value))
        assert prog is not None
        if a is None or view is None:
            return _blank("Nothing left to judge in this campaign for you. Thank you!",
                          _progress_text(prog))
        return _render(view, a, _progress_text(prog))

    @user_errors
    def submit(campaign_value: Any, assignment_id: Any, debate_id: Any, round_seen: Any,
               pa: Any, pb: Any, text: Any, request: gr.Request):
        user = current_user(store, request, UserRole.JUDGE)
        cid = _campaign_id(campaign_value)
        result = queue.submit_judgment(store, user, assignment_id, debate_id, round_seen,
                                       [pa, pb], text)
        if not result.final:
            a = queue.open_assignment(store, user.id, cid)
            assert a is not None
            return _show(user, cid, a, f"Recorded after round {result.after_round}. "
                         f"Round {result.next_round} is now shown below.", (pa, pb, text))
        msg = "**Judgment recorded.** "
        if result.reveal is not None:
            msg += (f"The correct answer was: *{md_text(result.reveal.correct_answer)}*. "
                    f"You gave it {result.reveal.your_probability:.0f}%.")
        else:
            msg += "This campaign does not reveal the answers."
        return [gr.update(), assignment_id, debate_id, round_seen, _progress(user, cid), msg,
                gr.update(interactive=False), gr.update(visible=True), str(result.judgment_id),
                pa, pb, text]

    @user_errors
    def feedback(judgment_id: Any, c1: Any, c2: Any, c3: Any, note: Any, request: gr.Request):
        user = current_user(store, request, UserRole.JUDGE)
        queue.record_feedback(store, user, judgment_id,
                              {"clarity": c1, "evidence": c2, "confidence": c3}, note or "")
        return "Thanks for the feedback. Press **Next debate** to go on.", gr.update(visible=False)

    campaign.input(select, inputs=campaign, outputs=shown, api_name="select_campaign")
    next_btn.click(next_debate, inputs=campaign, outputs=shown, api_name="next_debate")
    submit_btn.click(submit, inputs=[campaign, assignment_box, debate_box, round_box, prob_a,
                                     prob_b, explanation], outputs=shown,
                     api_name="submit_judgment")
    feedback_btn.click(feedback, inputs=[judgment_box, clarity, evidence, confidence, comment],
                       outputs=[message, feedback_group], api_name="submit_feedback")
    return {"load": load, "load_outputs": [campaign] + shown}
