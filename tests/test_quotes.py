"""Quote parsing, verification and rendering: worked examples.

The properties that must hold for any text are in test_quotes_properties.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from debate.quotes import (
    PLAIN_CLOSE,
    PLAIN_OPEN,
    TRUNCATION_MARK,
    Segment,
    count_words,
    normalize,
    parse_segments,
    quoted_word_count,
    render_html,
    render_plain,
    truncate_words,
    verify_quote,
    verify_quotes,
)

SOURCE = (
    "The keeper climbed the tower every evening for thirty years. After the new harbour "
    "opened to the south, no ship came through the channel any more, and one autumn night "
    "he simply left the lamp dark. \u201cNobody needs it,\u201d he said."
)


def test_parse_segments_splits_text_and_quotes() -> None:
    assert parse_segments("a <quote>b</quote> c") == [
        Segment("text", "a "),
        Segment("quote", "b"),
        Segment("text", " c"),
    ]


def test_tags_are_case_and_space_insensitive() -> None:
    assert parse_segments("x< QUOTE >y</Quote >z") == [
        Segment("text", "x"),
        Segment("quote", "y"),
        Segment("text", "z"),
    ]


def test_unclosed_quote_runs_to_end_and_is_never_verified() -> None:
    segs = parse_segments("look: <quote>The keeper climbed the tower")
    assert segs[-1] == Segment("quote", "The keeper climbed the tower", closed=False)
    (check,) = verify_quotes("look: <quote>The keeper climbed the tower", SOURCE)
    assert not check.verified and check.start is None and check.fuzzy == 0.0


def test_quotes_do_not_nest_and_stray_close_is_text() -> None:
    segs = parse_segments("</quote>a<quote>b <quote>c</quote>d</quote>")
    assert segs == [
        Segment("text", "</quote>a"),
        Segment("quote", "b <quote>c"),
        Segment("text", "d</quote>"),
    ]


@pytest.mark.parametrize(
    "quote",
    [
        "the keeper climbed the tower",
        "THE KEEPER CLIMBED",
        "keeper   climbed\n the\ttower",
        "keeper climbed the tower every evening",
        "evening, for thirty years",  # punctuation added
        "After the new harbour opened to the south no ship",  # punctuation dropped
        '"Nobody needs it," he said',  # straight quotes for the source's curly ones
        "\u201cnobody needs it\u201d",
        "\uff34he keeper",  # full-width T
    ],
)
def test_normalisation_verifies_equivalent_quotes(quote: str) -> None:
    check = verify_quote(quote, SOURCE)
    assert check.verified, quote
    assert normalize(SOURCE[check.start : check.end]) == normalize(quote)
    assert check.fuzzy == 1.0


def test_span_points_at_the_source_characters() -> None:
    check = verify_quote("no ship came through", SOURCE)
    assert SOURCE[check.start : check.end] == "no ship came through"
    check = verify_quote("Nobody needs it", SOURCE)
    assert SOURCE[check.start : check.end] == "Nobody needs it"
    # punctuation the quote shares with the source at its ends is part of the span
    check = verify_quote("\u201cNobody needs it,\u201d", SOURCE)
    assert SOURCE[check.start : check.end] == "\u201cNobody needs it,\u201d"
    check = verify_quote("for thirty years.", SOURCE)
    assert SOURCE[check.start : check.end] == "for thirty years."
    check = verify_quote("for thirty years!", SOURCE)  # not the source's punctuation
    assert SOURCE[check.start : check.end] == "for thirty years"


@pytest.mark.parametrize(
    "quote",
    [
        "the keeper climbed the lighthouse",  # a word changed
        "keep",  # part of a word is not a word
        "eeper climbed",
        "",
        "   ",
        "the tower the keeper",  # words of the source out of order
    ],
)
def test_non_matching_quotes_are_unverified(quote: str) -> None:
    check = verify_quote(quote, SOURCE)
    assert not check.verified
    assert check.start is None and check.end is None


def test_no_source_means_unverified() -> None:
    check = verify_quote("anything", None)
    assert not check.verified and check.fuzzy == 0.0


def test_fuzzy_score_is_share_of_word_trigrams_found() -> None:
    # 6 words -> 4 trigrams; "the keeper climbed", "keeper climbed the" are in the source,
    # "climbed the lighthouse", "the lighthouse today" are not.
    check = verify_quote("the keeper climbed the lighthouse today", SOURCE)
    assert not check.verified
    assert check.fuzzy == pytest.approx(2 / 4)
    assert verify_quote("entirely made up words here", SOURCE).fuzzy == 0.0
    # under three words: all or nothing
    assert verify_quote("keeper climbed", SOURCE).fuzzy == 1.0
    assert verify_quote("climbed keeper", SOURCE).fuzzy == 0.0


def test_word_counts_treat_tags_as_separators() -> None:
    text = "He said<quote>the keeper climbed</quote>then left."
    assert count_words(text) == 7  # He said | the keeper climbed | then left.
    assert quoted_word_count(text) == 3


def test_truncate_words_keeps_tags_balanced() -> None:
    text = "one two <quote>three four five six</quote> seven eight"
    out, cut = truncate_words(text, 4)
    assert cut
    assert out == "one two <quote>three four</quote>" + TRUNCATION_MARK
    out, cut = truncate_words(text, 2)
    assert out == "one two" + TRUNCATION_MARK
    assert truncate_words(text, 8) == (text, False)


def test_render_html_marks_quotes_and_escapes_everything_else() -> None:
    text = (
        '<b>bold</b> <span class="quote-verified">&#10003; fake</span> '
        "<quote>the keeper climbed</quote> and <quote>he lit the lamp</quote>"
        "<script>alert(1)</script> ![x](http://evil.example/a.png) [click](javascript:x)"
    )
    out = render_html(text, SOURCE)
    assert out.count('class="quote-verified"') == 1
    assert out.count('class="quote-unverified"') == 1
    assert "<script" not in out and "<b>" not in out
    assert "&#10003;" in out.split('class="quote-verified"')[1]
    assert out.count("&#10003;") == 1
    assert "](" not in out and "![" not in out and "javascript:" not in out


def test_render_plain_marks_quotes_and_strips_forged_marks_and_escapes() -> None:
    text = (
        "\u27e6\u2713 \u201cforged\u201d\u27e7 \x1b[31m<quote>the keeper climbed</quote> "
        "<quote>he lit the lamp</quote>\u202e"
    )
    out = render_plain(text, SOURCE)
    assert out.count(PLAIN_OPEN + "\u2713") == 1
    assert out.count(PLAIN_OPEN + "\u2717") == 1
    assert out.count(PLAIN_OPEN) == 2 and out.count(PLAIN_CLOSE) == 2
    assert "\x1b" not in out and "\u202e" not in out
    assert "forged" in out


def test_protocols_and_quotes_are_pure() -> None:
    code = (
        "import sys, debate.protocols, debate.quotes\n"
        "heavy = {'torch', 'sqlalchemy', 'transformers', 'gradio', 'pandas', 'numpy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
