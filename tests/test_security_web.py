"""Adversarial: the web app's edges (issue 12, points 5, 6, 7).

- Uploads: the app has no upload component; a logged-in judge POSTing 30 MB to Gradio's
  upload route is refused and nothing is stored.
- Origins and framing: another origin (a localhost port included) cannot call the app
  with the judge's cookies, preflights included, and no response carries CORS
  permissions; every response forbids framing.
- Text in pop-ups: names users and admins choose reach pop-ups and admin messages as
  text, never as live HTML (headless Chromium); the reveal shows an apostrophe, not
  `&#x27;` (no double escaping).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from web_launch import launch
from web_world import PASSWORD, add_accounts, login

from debate.config import parse_config
from debate.run import run_experiment
from debate.store import open_store
from judges import queue

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
APOSTROPHE_ANSWER = "The keeper's lamp"


def write_apostrophe_questions(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(2):
            fh.write(json.dumps({
                "id": f"a{i}", "question": f"Whose light was it ({i})?",
                "answers": [APOSTROPHE_ANSWER, "The captain's torch"], "correct_index": 0,
                "source": "It was the keeper's lamp that burned every night.",
            }) + "\n")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("websec")
    store = open_store(f"sqlite:///{tmp / 'sec.db'}")
    data = write_apostrophe_questions(tmp / "a.jsonl")
    run_experiment(store, parse_config({
        "name": "exp", "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": "debate", "rounds": 1}, "debater": {"type": "scripted"},
        "both_orders": False,
    }), tmp, show_progress=False)
    add_accounts(store, ("alice", "judge"), ("root", "admin"))
    queue.create_campaign(store, name="reveal-c", experiment="exp", reveal_truth=True)
    launched = launch(store)
    yield store, launched.url
    launched.close()
    store.dispose()


def client(url: str, user: str | None = "alice", **kw) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=60, **kw)
    if user:
        http.post("login", data={"username": user, "password": PASSWORD}).raise_for_status()
    return http


# ---------------------------------------------------------------- uploads


def test_uploads_are_refused_and_nothing_is_stored(site):
    _store, url = site
    http = client(url)
    cache = Path(os.environ.get("GRADIO_TEMP_DIR", "/tmp/gradio"))
    before = {p for p in cache.rglob("*")} if cache.exists() else set()
    big = b"A" * (30 * 1024 * 1024)
    r = http.post("gradio_api/upload", files={"files": ("big.bin", big)})
    assert r.status_code == 403
    assert "upload" in r.json()["detail"]
    r = http.post("gradio_api/upload/", files={"files": ("small.txt", b"hi")})
    assert r.status_code == 403
    after = {p for p in cache.rglob("*")} if cache.exists() else set()
    assert not [p for p in after - before if p.name in ("big.bin", "small.txt")]


# ---------------------------------------------------------------- origins and framing


@pytest.mark.parametrize("origin", ["http://localhost:1234", "http://127.0.0.1:9",
                                    "https://evil.example", "null"])
def test_other_origins_cannot_call_the_app(site, origin):
    _store, url = site
    http = client(url)
    r = http.get("config", headers={"Origin": origin})
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    pre = http.options("gradio_api/queue/join", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 403
    assert "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-credentials" not in pre.headers
    login = httpx.post(url + "login", data={"username": "alice", "password": PASSWORD},
                       headers={"Origin": origin})
    assert login.status_code == 403 and "set-cookie" not in login.headers


def test_own_origin_works_and_gets_no_cors_grant(site):
    _store, url = site
    own = url.rstrip("/")
    http = client(url)
    r = http.get("config", headers={"Origin": own})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


def test_every_response_forbids_framing(site):
    _store, url = site
    for path, user in [("", None), ("config", "alice"), ("login_check", None)]:
        r = client(url, user).get(path)
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-content-type-options"] == "nosniff"


# ---------------------------------------------------------------- text in pop-ups (browser)




@pytest.mark.browser
@pytest.mark.slow
def test_admin_strings_in_messages_and_popups_stay_text(site, browser):
    _store, url = site
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    login(page, url, "root")
    page.get_by_role("tab", name="Admin").click()
    page.locator("#camp-name textarea, #camp-name input").first.fill(HOSTILE_NAME)
    exp = page.locator("#camp-exp input").first
    exp.fill("exp")
    exp.press("Enter")
    page.locator("#camp-create").click()
    page.locator("#admin-message").get_by_text("created").wait_for(timeout=30_000)
    assert HOSTILE_NAME in page.locator("#admin-message").inner_text()
    page.locator("#camp-create").click()  # same name again: an error pop-up names it
    toast = page.get_by_text("already exists")
    toast.wait_for(timeout=30_000)
    assert "<img" in page.locator("body").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    page.context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_reveal_shows_an_apostrophe(site, browser):
    _store, url = site
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    login(page, url, "alice")
    page.locator("#judge-next").click()
    page.locator("#debate-view").wait_for(timeout=30_000)
    page.locator("#judge-explanation textarea").fill("The quote settles it.")
    page.locator("#judge-submit").click()
    page.get_by_text("The correct answer was").wait_for(timeout=30_000)
    message = page.locator("#judge-message").inner_text()
    assert APOSTROPHE_ANSWER in message
    assert "&#" not in message and "&amp;" not in message
    page.context.close()


def test_admin_can_create_a_campaign_that_allows_repeats(site):
    from gradio_client import Client

    store, url = site
    root = Client(url, auth=("root", PASSWORD), verbose=False, download_files=False)
    root.predict("repeats-ok", "exp", [], 1, "whole", True, True, api_name="/create_campaign")
    root.predict("no-repeats", "exp", [], 1, "whole", True, api_name="/create_campaign")
    flags = {c.name: c.allow_repeats for c in queue.list_campaigns(store)}
    assert flags["repeats-ok"] is True and flags["no-repeats"] is False
