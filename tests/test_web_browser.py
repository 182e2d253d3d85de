"""Headless Chromium walks the app: a judge logs in, judges a debate in stepped mode with
the keyboard and the mouse, submits, gives feedback and takes the next debate; a debater
quotes the source by selecting text and submits a turn. Hostile debater text must not
run, and nothing the judge's browser receives before submitting holds the truth.
Screenshots go to $DEBATE_ARTIFACTS (default tests/artifacts/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from test_web_api import LEAKS
from web_launch import launch
from web_world import add_accounts, artifacts_dir, login, run_scripted
from web_world import add_accounts as _add

from debate.store import open_store
from debate.store.models import Debate, Feedback, Judgment, Quote, Turn
from debate.tournaments.config import parse_tournament
from debate.tournaments.run import run_tournament
from debate.users import get_user
from judges import queue
from judges.tournament import judge_games_with

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    store = open_store(f"sqlite:///{tmp / 'web.db'}")
    run_scripted(store, tmp, "exp", n_questions=3, rounds=2, xss=True)
    run_scripted(store, tmp, "hx", n_questions=1, rounds=2, both_orders=False,
                 honest={"type": "human", "name": "person", "user": "deb"})
    add_accounts(store, ("alice", "judge"), ("deb", "debater"))
    campaign = queue.create_campaign(store, name="stepped-c", experiment="exp", mode="stepped")
    launched = launch(store)
    yield store, launched.url, campaign
    launched.close()
    store.dispose()




def shot(page, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"web-{name}.png"), full_page=True)


def test_judge_walkthrough_stepped(site, browser):
    store, url, _campaign = site
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    received: list[str] = []

    def keep(response) -> None:
        # Gradio's own scripts, styles and fonts are the same static files for everyone.
        if "queue/data" in response.url or response.request.resource_type in (
                "image", "font", "script", "stylesheet"):
            return
        if 300 <= response.status < 400:
            return  # redirects have no body
        received.append(response.text())

    page.on("response", keep)
    # Event-stream bodies are read whole through a route, so they can be checked too.
    def stream(route) -> None:
        response = route.fetch()
        received.append(response.text())
        route.fulfill(response=response)

    page.route(re.compile(r".*/gradio_api/queue/data.*"), stream)
    login(page, url, "alice")
    page.locator("#judge-next").click()
    view = page.locator("#debate-view")
    view.wait_for(timeout=30_000)
    page.get_by_text("Round 1 of 2 shown").wait_for()
    assert page.locator(".quote-verified").count() >= 1
    assert page.locator(".quote-unverified").count() >= 1
    shot(page, "judge-round1")

    # Everything received so far (page, config, every event's stream) holds no truth.
    received.append(page.content())
    for text in received:
        for pattern in LEAKS:
            assert not pattern.search(text), f"leak {pattern.pattern!r} in browser payload"
    # Hostile debater text is shown as text and did not run.
    assert page.evaluate("window.__pwned") is None
    assert "FORGED-VERIFIED" in view.inner_text()
    forged_marked = page.locator(".quote-verified", has_text="FORGED")
    assert forged_marked.count() == 0
    assert page.locator(".quote-unverified", has_text="FORGEDQUOTE").count() >= 1
    assert view.locator("img, script, svg, a").count() == 0

    # Keyboard: "7" sets answer 1 to 70%, the other slider follows; Ctrl+Enter submits.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("7")
    page.wait_for_function(
        "document.querySelector('#prob-b input[type=range]').value === '30'", timeout=10_000)
    page.locator("#judge-explanation textarea").fill("Debater B quotes the text; A does not.")
    page.locator("#judge-explanation textarea").press("Control+Enter")
    page.get_by_text("Recorded after round 1").wait_for(timeout=30_000)
    page.get_by_text("Round 2 of 2 shown").wait_for()
    shot(page, "judge-round2")
    assert page.evaluate("window.__pwned") is None

    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("]")  # 70 -> 75
    page.wait_for_function(
        "document.querySelector('#prob-b input[type=range]').value === '25'", timeout=10_000)
    page.locator("#judge-submit").click()
    page.get_by_text("Judgment recorded").wait_for(timeout=30_000)
    page.get_by_text("The correct answer was").wait_for()
    page.locator("#judge-feedback").first.wait_for()
    for group in ("#fb-clarity", "#fb-evidence", "#fb-confidence"):
        page.locator(group).get_by_text("4").click()
    shot(page, "judge-submitted")
    page.locator("#fb-submit").click()
    page.get_by_text("Thanks for the feedback").wait_for(timeout=30_000)

    first = view.get_attribute("data-debate")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("n")
    page.wait_for_function(
        f"document.querySelector('#debate-view').dataset.debate !== '{first}'", timeout=30_000)
    page.get_by_text("Round 1 of 2 shown").wait_for()
    shot(page, "judge-next")
    second = view.get_attribute("data-debate")

    # A page refresh shows the same assignment.
    page.reload()
    page.locator("#debate-view").wait_for(timeout=30_000)
    assert page.locator("#debate-view").get_attribute("data-debate") == second
    # The event stream of the reloaded page may still be open: stop routing it before
    # closing, or its in-flight fetch fails inside the next test.
    page.unroute_all(behavior="ignoreErrors")
    context.close()

    alice = get_user(store, "alice")
    with store.session() as s:
        rows = s.execute(select(Judgment.kind, Judgment.after_round, Judgment.probabilities,
                                Judgment.shown_order, Judgment.debate_id)
                         .where(Judgment.user_id == alice.id).order_by(Judgment.id)).all()
        assert s.scalar(select(Feedback.answers).where(Feedback.user_id == alice.id)) == {
            "clarity": 4, "evidence": 4, "confidence": 4}
    assert [(r.kind, r.after_round) for r in rows] == [("stepped", 1), ("final", 2)]
    order = rows[0].shown_order
    assert rows[0].probabilities[order[0]] == pytest.approx(0.70)
    assert rows[1].probabilities[order[0]] == pytest.approx(0.75)
    assert str(rows[0].debate_id) == first


def test_debater_turn_with_selected_quote(site, browser):
    store, url, _campaign = site
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    login(page, url, "deb")
    page.get_by_role("tab", name="Debate").click()
    source = page.locator("#source-text")
    source.wait_for(timeout=30_000)
    assert page.get_by_role("tab", name="Admin").count() == 0  # hidden for a debater
    # Select a passage of the source the way a mouse would, then insert it as a quote.
    page.evaluate("""() => {
        const el = document.getElementById('source-text');
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        let node; while ((node = walker.nextNode())) {
            const i = node.textContent.indexOf('painted red by the old fisherman');
            if (i >= 0) {
                const r = document.createRange();
                r.setStart(node, i); r.setEnd(node, i + 'painted red by the old fisherman'.length);
                const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
                return;
            }
        }
        throw new Error('passage not found');
    }""")
    page.wait_for_function("window.__debateSourceSelection === 'painted red by the old fisherman'")
    box = page.locator("#turn-text textarea")
    box.fill("Read the source: ")
    box.press("End")
    page.locator("#turn-quote").click()
    page.wait_for_function(
        "document.querySelector('#turn-text textarea').value.includes("
        "'<quote>painted red by the old fisherman</quote>')", timeout=10_000)
    box.press("End")
    box.type(" so the boat was red.")
    counter = page.locator("#turn-counter")
    counter.get_by_text("words: 14 / 150 · quoted words: 6 / 50").wait_for(timeout=10_000)
    shot(page, "debater-turn")
    page.locator("#turn-submit").click()
    page.get_by_text("is stored").wait_for(timeout=60_000)
    shot(page, "debater-submitted")
    context.close()

    deb = get_user(store, "deb")
    with store.session() as s:
        turn = s.scalars(select(Turn).where(Turn.user_id == deb.id)).one()
        quotes = s.scalars(select(Quote).where(Quote.turn_id == turn.id)).all()
        status = s.scalar(select(Debate.status).where(Debate.id == turn.debate_id))
    assert "<quote>painted red by the old fisherman</quote>" in turn.text
    assert [q.verified for q in quotes] == [True]
    assert status in ("waiting_human", "done")


def test_admin_sees_browse_results_and_admin(site, browser):
    store, url, _campaign = site

    _add(store, ("boss", "admin"))
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    login(page, url, "boss")
    page.get_by_role("tab", name="Browse").click()
    page.locator("#browse-filter").click()
    page.wait_for_function("document.body.innerText.includes('order=')", timeout=30_000)
    page.get_by_label("Debate id").fill("1")
    page.locator("#browse-open").click()
    page.locator("#browse-detail").get_by_text("(correct)").wait_for(timeout=30_000)
    assert page.evaluate("window.__pwned") is None  # hostile text is inert here too
    shot(page, "admin-browse")
    page.get_by_role("tab", name="Results").click()
    page.locator("#results-run").click()
    page.locator("#results-html table").first.wait_for(timeout=60_000)
    shot(page, "admin-results")
    cfg = parse_tournament({
        "tournament": "web-ladder", "dataset": {"name": "planted", "count": 4},
        "protocols": [{"name": "debate", "rounds": 1}, {"name": "consultancy", "rounds": 1}],
        "debaters": [{"type": "planted", "name": "p{strength}", "sweep": {"strength": [0.2, 0.8]}}],
        "judges": [{"type": "rule"}]})
    run_tournament(store, cfg, Path.cwd(), judge_games=judge_games_with(cfg.judges, Path.cwd()),
                   show_progress=False)
    page.locator("#results-strength").click()
    page.locator("#results-strength-html img").first.wait_for(timeout=60_000)
    assert "strength_fit" in page.locator("#results-strength-html").inner_text()
    shot(page, "admin-results-strength")
    page.get_by_role("tab", name="Admin").click()
    page.get_by_text("New judging campaign").wait_for()
    shot(page, "admin-campaigns")
    context.close()
