"""The Gradio app: one Blocks with the Judge, Debate, Browse, Results and Admin tabs.

Login is required (Gradio auth checked against the users table). Tabs a user's role does
not need are hidden, and every handler behind them checks the role again on the server.
No component holds data in the page config: everything is loaded per logged-in user.
"""

import os
from contextlib import asynccontextmanager
from typing import Any

import gradio as gr

from debate.accounts import LoginPolicy
from debate.human_turns import release_agents
from debate.store.db import Store
from debate.vocabulary import JUDGING_ROLES, UserRole
from web import admin_tab, browse_tab, debate_tab, judge_tab, results_tab
from web.auth import current_user, make_auth
from web.render import CSS, esc
from web.security import install_guard
from web.shortcuts import HEAD

TABS = ("Judge", "Debate", "Browse", "Results", "Admin")
MAX_UPLOAD = "1kb"


def tabs_for(role: str) -> dict[str, bool]:
    admin = role == UserRole.ADMIN
    return {"Judge": role in JUDGING_ROLES,
            "Debate": role in (UserRole.DEBATER, UserRole.ADMIN),
            "Browse": admin, "Results": admin, "Admin": admin}


def build_app(store: Store) -> gr.Blocks:
    with gr.Blocks(title="Debate judging", analytics_enabled=False) as demo:
        header = gr.Markdown("", elem_id="whoami")
        tabs: dict[str, gr.Tab] = {}
        loads: list[dict[str, Any]] = []
        with gr.Tabs():
            with gr.Tab("Judge", id="judge", visible=False, elem_id="tab-judge") as tabs["Judge"]:
                loads.append(judge_tab.build(store))
            with gr.Tab("Debate", id="debate", visible=False,
                        elem_id="tab-debate") as tabs["Debate"]:
                loads.append(debate_tab.build(store))
            with gr.Tab("Browse", id="browse", visible=False,
                        elem_id="tab-browse") as tabs["Browse"]:
                loads.append(browse_tab.build(store))
            with gr.Tab("Results", id="results", visible=False,
                        elem_id="tab-results") as tabs["Results"]:
                loads.append(results_tab.build(store))
            with gr.Tab("Admin", id="admin", visible=False, elem_id="tab-admin") as tabs["Admin"]:
                loads.append(admin_tab.build(store))

        def who(request: gr.Request):
            user = current_user(store, request)
            shown = tabs_for(user.role)
            text = (f"Logged in as **{esc(user.name)}** ({user.role}) · "
                    "[log out](/logout)")
            return [text] + [gr.update(visible=shown[name]) for name in TABS]

        demo.load(who, outputs=[header] + [tabs[name] for name in TABS], api_name="whoami")
        roles = {"Judge": UserRole.JUDGE, "Debate": UserRole.DEBATER}
        for name, spec in zip(TABS, loads):
            fn = spec["load"]
            if name in roles:
                fn = _quiet_unless(store, roles[name], fn, len(spec["load_outputs"]))
            demo.load(fn, outputs=spec["load_outputs"], api_visibility="private")
    return demo


def _quiet_unless(store: Store, role: str, fn, n_outputs: int):
    """Run a tab's page-load only for users of its role (others get no change)."""

    def wrapper(request: gr.Request):
        user = current_user(store, request)
        if user.role not in (role, UserRole.ADMIN):
            return [gr.update()] * n_outputs
        return fn(request)

    return wrapper


def _lifespan(store: Store, policy: LoginPolicy):
    """The security guard at startup; the Debate tab's cached agents closed at shutdown."""
    guard = install_guard(store, policy)

    @asynccontextmanager
    async def lifespan(app: Any):
        async with guard(app):
            try:
                yield
            finally:
                release_agents()

    return lifespan


def launch_app(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    block: bool = True,
    quiet: bool = False,
    policy: LoginPolicy | None = None,
) -> tuple[gr.Blocks, str]:
    """Start the server; with block=False returns at once (the server runs in a thread).

    `policy`: login throttling and session lifetime (default: LoginPolicy.from_env()).
    The security guard (web.security) sits in front of every request."""
    policy = policy or LoginPolicy.from_env()
    demo = build_app(store)
    # After every event Gradio rebuilds a pandas summary of its last 10,000 events, for a
    # monitoring page this app does not serve: work that grows with every click of the day
    # (a fifth of the server's CPU after only 400 clicks). Once per 10,000 events is enough.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "10000")
    # Queue-position estimates go out once a minute, not to every waiting client after
    # every finished event (with many judges at once those messages cost more than the work).
    demo.queue(default_concurrency_limit=8, max_size=1024, status_update_rate=60)
    _app, url, _share = demo.launch(
        server_name=host,
        server_port=port,
        auth=make_auth(store, policy),
        app_kwargs={"lifespan": _lifespan(store, policy)},
        # The app has no upload component: the guard refuses the upload route, and
        # Gradio's own limit is set tiny should any upload reach it.
        max_file_size=MAX_UPLOAD,
        auth_message="Log in with the account an admin made for you (`debate users add`).",
        prevent_thread_lock=not block,
        show_error=False,
        quiet=quiet,
        ssr_mode=False,
        footer_links=[],
        max_threads=64,
        css=CSS,
        head=HEAD,
        enable_monitoring=False,
        mcp_server=False,
        inbrowser=False,
        share=False,
    )
    return demo, url


__all__ = ["TABS", "build_app", "launch_app", "tabs_for"]
