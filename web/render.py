"""HTML for the web app. Every piece of text from a debater, a dataset or a user is escaped
here or by debate.quotes.segments_html; nothing else builds markup from stored text. A
verified quote is shown from the source's own characters (its stored span)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

from debate.quotes import ShownSegment, escape_html, segments_html
from debate.vocabulary import CampaignMode
from judges.queue import JudgeView

CSS = """
.debate-view { font-size: 15px; line-height: 1.5; }
.debate-view .question { font-size: 1.15em; font-weight: 600; margin: 0 0 .5em 0; }
.debate-view .answers li { margin: .2em 0; }
.debate-view .turn { border-left: 3px solid #9ca3af; padding: .3em .8em; margin: .5em 0; }
.debate-view .speaker { font-weight: 600; color: #374151; }
.debate-view .round-head { margin-top: 1em; font-weight: 600; color: #6b7280; }
.quote-verified, .quote-unverified { unicode-bidi: isolate; }
.quote-verified { background: #dcfce7; color: #14532d; border-radius: 3px; padding: 0 2px; }
.quote-unverified { background: #fee2e2; color: #7f1d1d; text-decoration: line-through dotted;
  border-radius: 3px; padding: 0 2px; }
.pixel-image { image-rendering: pixelated; width: 280px; height: 280px; border: 1px solid #999; }
.source-text { white-space: pre-wrap; max-height: 24em; overflow-y: auto; padding: .5em;
  border: 1px solid #d1d5db; background: #f9fafb; }
.legend { color: #6b7280; font-size: .9em; }
"""


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def md_text(text: object) -> str:
    """Stored text placed inside Markdown: in one pass, every HTML and Markdown special
    character becomes a numeric entity (and controls are removed), so links, images,
    emphasis and tags in it stay literal, and an apostrophe shows as an apostrophe (no
    entity is escaped twice)."""
    return escape_html("" if text is None else str(text))


def esc_block(text: object) -> str:
    return esc(text).replace("\n", "<br>")


def answers_html(answers: Iterable[str]) -> str:
    items = "".join(
        f"<li><b>Answer {i + 1}:</b> {esc(a)}</li>" for i, a in enumerate(answers)
    )
    return f'<ol class="answers" style="list-style:none;padding-left:0">{items}</ol>'


def claims_html(claims: Iterable[tuple[str, int | None]]) -> str:
    parts = []
    for label, pos in claims:
        side = f"answer {pos + 1}" if pos is not None else "a side it chooses in the debate"
        parts.append(f"<div>{esc(label)} argues for {side}.</div>")
    return "".join(parts)


def turns_html(turns: Iterable[tuple[str, int, str, Sequence[ShownSegment]]]) -> str:
    """Turns as (speaker label, round, kind, segments); verified quotes in the segments
    already hold the source's characters (debate.quotes.quote_segments)."""
    out: list[str] = []
    current = None
    for label, rnd, kind, segments in turns:
        if rnd != current:
            current = rnd
            head = "Opening" if rnd == 0 else f"Round {rnd}"
            out.append(f'<div class="round-head">{head}</div>')
        what = " (question)" if kind == "question" else ""
        out.append(
            f'<div class="turn"><div class="speaker">{esc(label)}{what}</div>'
            f'<div class="text">{segments_html(segments)}</div></div>'
        )
    if not out:
        out.append("<p><i>No transcript: judge from the question alone.</i></p>")
    return "".join(out)


LEGEND = (
    '<p class="legend"><span class="quote-verified">&#10003;&nbsp;verified quote</span> '
    "matches the hidden text; "
    '<span class="quote-unverified">&#10007;&nbsp;unverified quote</span> does not.</p>'
)


def judge_html(shown: JudgeView) -> str:
    """The judge's page for one assignment: the blind view (debate.view), escaped."""
    view = shown.view
    parts = [f'<div class="debate-view" id="debate-view" data-debate="{view.debate_id}">']
    parts.append(f'<p class="question">{esc(view.question)}</p>')
    if shown.pixel_png is not None:
        data = base64.b64encode(shown.pixel_png).decode()
        parts.append(
            f'<img class="pixel-image" alt="revealed pixels" src="data:image/png;base64,{data}">'
        )
        parts.append("<p>The two debaters claim different digits. Which claim is right?</p>")
        parts.append(answers_html(f"the digit is {a}" for a in view.answers))
    else:
        parts.append(answers_html(view.answers))
        parts.append(claims_html(view.claims))
    if view.source is not None:
        parts.append(f'<details open><summary>Source text</summary>'
                     f'<div class="source-text">{esc(view.source)}</div></details>')
    if shown.pixel_png is None:
        turns = [(t.speaker, t.round, t.kind, t.segments) for t in view.turns]
        if shown.mode == CampaignMode.STEPPED and view.rounds:
            parts.append(
                f"<p><b>Round {view.rounds_shown} of {view.rounds} shown.</b> "
                "Give your probabilities after this round.</p>"
            )
        parts.append(LEGEND)
        parts.append(turns_html(turns))
    parts.append("</div>")
    return "".join(parts)


def png_tag(png: bytes, alt: str = "plot") -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
