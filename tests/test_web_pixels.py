"""Image debates are judged like the others: the judge sees the revealed pixels enlarged
and picks between the two claimed digits; the truth stays on the server."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from pixel_games import store_small_pixel_debate
from sqlalchemy import select
from web_world import add_accounts, artifacts_dir

from debate.store.models import Debate, Judgment, Question
from debate.users import get_user
from judges import queue
from web.render import judge_html


@pytest.fixture
def pixel_store(sqlite_store, pixel_judges: dict[int, Path]):
    store_small_pixel_debate(sqlite_store, pixel_judges[2], "pixels")
    add_accounts(sqlite_store, ("pj", "judge"))
    return sqlite_store


def test_pixel_debate_is_judged_from_the_revealed_pixels(pixel_store):
    store = pixel_store
    campaign = queue.create_campaign(store, name="pix", experiment="pixels", mode="stepped")
    judge = get_user(store, "pj")
    a, view, _progress = queue.next_with_view(store, judge, campaign.id)
    assert a is not None and view is not None
    assert a.rounds_shown == 0  # image debates are judged whole, even in a stepped campaign
    with store.session() as s:
        d = s.get(Debate, a.debate_id)
        q = s.get(Question, d.question_id)
        shown = [str(q.answers[i]) for i in d.answer_order]
        truth = str(q.answers[q.correct_index])
    assert list(view.answers) == shown  # the two claimed digits, in display order
    assert view.pixel_png is not None and view.pixel_png.startswith(b"\x89PNG")
    html = judge_html(view)
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(data) == view.pixel_png
    (artifacts_dir() / "web-pixel-debate.png").write_bytes(view.pixel_png)
    assert f"the digit is {shown[0]}" in html and f"the digit is {shown[1]}" in html
    for secret in ("honest", "liar", "minimax", "correct", "split_index", "meta"):
        assert secret not in html, secret
    assert truth in shown  # the truth is one of the claims, unmarked

    result = queue.submit_judgment(store, judge, a.id, a.debate_id, 0, [80, 20], "pixels")
    assert result.final and result.reveal is not None
    with store.session() as s:
        j = s.scalars(select(Judgment).where(Judgment.user_id == judge.id)).one()
    assert j.probabilities[d.answer_order[0]] == pytest.approx(0.8)
    assert result.reveal.correct_answer == truth
