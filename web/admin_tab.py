"""The Admin tab (admins only): judging campaigns and user accounts."""

from typing import Any

import gradio as gr
import pandas as pd

from debate.browse import experiment_names
from debate.store.db import Store
from debate.users import ROLES, add_user, generate_password, list_users
from debate.vocabulary import JUDGING_ROLES, CampaignMode, UserRole
from judges import queue
from web.auth import require_admin, user_errors
from web.render import md_text


def campaigns_frame(store: Store) -> pd.DataFrame:
    rows = []
    for c in queue.list_campaigns(store):
        st = queue.campaign_status(store, c.id)
        rows.append({
            "id": c.id, "name": c.name, "experiment": c.experiment, "mode": c.mode,
            "per debate": c.judgments_per_debate, "reveal": c.reveal_truth,
            "judges": ", ".join(c.judges) if c.judges else "(all judges)",
            "repeats": c.allow_repeats,
            "active": c.active, "submitted": st.submitted, "open": st.assigned - st.submitted,
            "target": st.total,
        })
    return pd.DataFrame(rows)


def build(store: Store) -> dict[str, Any]:
    gr.Markdown("### New judging campaign")
    with gr.Row():
        name = gr.Textbox(label="Name", elem_id="camp-name")
        exp = gr.Dropdown(label="Experiment", choices=[], elem_id="camp-exp", allow_custom_value=True)
        judges = gr.Dropdown(label="Judges (none: every judge)", choices=[], multiselect=True, allow_custom_value=True,
                             elem_id="camp-judges")
    with gr.Row():
        per = gr.Number(label="Judgments per debate", value=1, precision=0, minimum=1,
                        elem_id="camp-per")
        mode = gr.Radio(list(queue.MODES), value=CampaignMode.WHOLE.value, label="Mode", elem_id="camp-mode")
        reveal = gr.Checkbox(value=True, label="Show the truth after submitting",
                             elem_id="camp-reveal")
        repeats = gr.Checkbox(value=False, elem_id="camp-repeats",
                              label="Allow questions a judge met elsewhere (repeats)")
    create = gr.Button("Create campaign", variant="primary", elem_id="camp-create")
    message = gr.Markdown("", elem_id="admin-message")
    table = gr.Dataframe(value=None, interactive=False, label="Campaigns")
    with gr.Row():
        camp_id = gr.Number(label="Campaign id", precision=0, value=None)
        close = gr.Button("Close campaign")
        reopen = gr.Button("Reopen campaign")
    gr.Markdown("### New user")
    with gr.Row():
        uname = gr.Textbox(label="Name")
        urole = gr.Radio(list(ROLES), value=UserRole.JUDGE.value, label="Role")
        upass = gr.Textbox(label="Password (empty: generate one)", type="password")
        uadd = gr.Button("Add user")
    users = gr.Dataframe(value=None, interactive=False, label="Users")

    def _users() -> pd.DataFrame:
        return pd.DataFrame([{"id": u.id, "name": u.name, "role": u.role}
                             for u in list_users(store)])

    @user_errors
    def load(request: gr.Request):
        try:
            require_admin(store, request)
        except gr.Error:
            return gr.update(), gr.update(), gr.update(), gr.update()
        judge_names = [u.name for u in list_users(store) if u.role in JUDGING_ROLES]
        return (gr.update(choices=experiment_names(store)), gr.update(choices=judge_names),
                campaigns_frame(store), _users())

    @user_errors
    def do_create(n: Any, e: Any, js: Any, k: Any, m: Any, r: Any, rep: Any = False,
                  request: gr.Request = None):  # type: ignore[assignment]
        require_admin(store, request)
        try:
            per_debate = int(k)
        except (TypeError, ValueError):
            raise gr.Error("judgments per debate: give a whole number") from None
        c = queue.create_campaign(store, name=n or "", experiment=e or "", judges=js or None,
                                  judgments_per_debate=per_debate, mode=m or CampaignMode.WHOLE,
                                  reveal_truth=bool(r), allow_repeats=bool(rep))
        return f"Campaign **{md_text(c.name)}** (id {c.id}) created.", campaigns_frame(store)

    def _toggle(active: bool):
        @user_errors
        def handler(value: Any, request: gr.Request):
            require_admin(store, request)
            if value is None:
                raise gr.Error("campaign id: give a campaign id")
            queue.set_campaign_active(store, int(value), active)
            return f"Campaign {int(value)} {'reopened' if active else 'closed'}.", \
                campaigns_frame(store)
        return handler

    @user_errors
    def do_add_user(n: Any, role: Any, pw: Any, request: gr.Request):
        require_admin(store, request)
        password = pw or generate_password()
        u = add_user(store, n or "", role or "", password)
        shown = f" Generated password (shown once): `{password}`" if not pw else ""
        return f"User **{md_text(u.name)}** ({md_text(u.role)}) added.{shown}", _users()

    create.click(do_create, inputs=[name, exp, judges, per, mode, reveal, repeats],
                 outputs=[message, table], api_name="create_campaign")
    close.click(_toggle(False), inputs=camp_id, outputs=[message, table], api_name="close_campaign")
    reopen.click(_toggle(True), inputs=camp_id, outputs=[message, table],
                 api_name="reopen_campaign")
    uadd.click(do_add_user, inputs=[uname, urole, upass], outputs=[message, users],
               api_name="add_user")
    return {"load": load, "load_outputs": [exp, judges, table, users]}
