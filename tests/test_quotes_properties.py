"""Property-based tests (hypothesis) for quote parsing, verification and rendering."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from debate.quotes import (
    _TAG_RE,
    PLAIN_CLOSE,
    PLAIN_OPEN,
    PLAIN_UNVERIFIED,
    PLAIN_VERIFIED,
    QUOTE_CLOSE,
    QUOTE_OPEN,
    TRUNCATION_MARK,
    UNVERIFIED_CLASS,
    VERIFIED_CLASS,
    Segment,
    clean_plain,
    count_words,
    join_segments,
    normalize,
    normalize_with_map,
    parse_segments,
    render_html,
    render_plain,
    strip_controls,
    truncate_words,
    verify_quote,
    verify_quotes,
)

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Pieces a hostile debater might use, mixed with ordinary words and arbitrary unicode.
HOSTILE = [
    "<quote>", "</quote>", "<QUOTE>", "</Quote >", "< quote>", "<quote", "quote>", "</",
    '<span class="quote-verified">', "</span>", "&#10003;", "&#x2713;", "&nbsp;", "&ldquo;",
    "\u2713", "\u2714", "\u2717", "\u2705", "\u27e6", "\u27e7", "\u301a", "\u201c", "\u201d",
    "<script>alert(1)</script>", "![img](http://x.example/a.png)", "[link](javascript:x)",
    "<img src=x onerror=alert(1)>", "**bold**", "`code`", "$x$", "\x1b[31m", "\u202e",
    "\n", "\r\n", " ", "  ", "\t", "&", "<", ">", '"', "'",
]
WORDS = ["the", "keeper", "climbed", "tower", "lamp", "dark", "ship", "Night", "THE", ",", "."]
piece = st.one_of(st.sampled_from(HOSTILE), st.sampled_from(WORDS), st.text(max_size=6))
hostile_text = st.lists(piece, max_size=25).map("".join)
source_text = st.lists(
    st.one_of(st.sampled_from(WORDS), st.sampled_from([" ", ", ", ". ", "\n", "\u2019s "]),
              st.text(max_size=5)),
    max_size=40,
).map("".join)


# Text and quote runs of several words, with odd spacing and tag spellings: runs to cut.
_run = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)
_sep = st.sampled_from([" ", "", "\n", "  "])
wordy_text = st.lists(
    st.one_of(
        st.tuples(_sep, _run, _sep).map("".join),
        st.tuples(st.sampled_from(["<quote>", "<QUOTE> ", "< quote >"]), _run,
                  st.sampled_from(["</quote>", " </Quote >", ""])).map("".join),
        st.sampled_from(["</quote>", "<", "/", "<quote"]),
    ),
    max_size=8,
).map("".join)


def canonical_tags(text: str) -> str:
    return _TAG_RE.sub(lambda m: QUOTE_CLOSE if m.group(1) else QUOTE_OPEN, text)


# ---------------------------------------------------------------- parser


@SETTINGS
@given(hostile_text)
def test_parse_then_join_restores_text_with_canonical_tags(text: str) -> None:
    text = canonical_tags(text)
    assert join_segments(parse_segments(text)) == text


@SETTINGS
@given(hostile_text)
def test_segments_are_well_formed(text: str) -> None:
    segs = parse_segments(text)
    for i, seg in enumerate(segs):
        if seg.kind == "text":
            assert seg.text
            # no opening tag survives in text; adjacent text segments are merged
            assert not any(m.group(1) == "" for m in _TAG_RE.finditer(seg.text))
            assert i == 0 or segs[i - 1].kind == "quote"
        else:
            assert not any(m.group(1) == "/" for m in _TAG_RE.finditer(seg.text))
            assert seg.closed or i == len(segs) - 1
    # the characters outside the tags are kept, in order
    assert "".join(s.text for s in segs) == _strip_structural_tags(text)


def _strip_structural_tags(text: str) -> str:
    out, pos, in_quote = [], 0, False
    for m in _TAG_RE.finditer(text):
        closing = m.group(1) == "/"
        if closing == in_quote:
            out.append(text[pos : m.start()])
            pos = m.end()
            in_quote = not in_quote
    out.append(text[pos:])
    return "".join(out)


segment_text = st.text(min_size=1, max_size=12).filter(lambda s: not _TAG_RE.search(s))


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["text", "quote"]), segment_text), max_size=8))
def test_balanced_segments_round_trip(parts: list[tuple[str, str]]) -> None:
    segs: list[Segment] = []
    for kind, text in parts:
        if kind == "text" and segs and segs[-1].kind == "text":
            segs[-1] = Segment("text", segs[-1].text + text)
        else:
            segs.append(Segment(kind, text))
    text = join_segments(segs)
    assert parse_segments(text) == segs
    assert text.count(QUOTE_OPEN) == text.count(QUOTE_CLOSE)


# ---------------------------------------------------------------- verification


def _occurs(quote: str, source: str) -> bool:
    q, s = normalize(quote), normalize(source)
    return bool(q) and f" {q} " in f" {s} "


@st.composite
def source_and_quote(draw):
    source = draw(source_text)
    how = draw(st.sampled_from(["slice", "slice-mangled", "free"]))
    if how == "free" or not source:
        return source, draw(hostile_text)
    i = draw(st.integers(0, len(source)))
    j = draw(st.integers(i, len(source)))
    quote = source[i:j]
    if how == "slice-mangled":
        quote = draw(st.sampled_from([str.upper, str.lower, str.title]))(quote)
        quote = re.sub(r"\s+", draw(st.sampled_from([" ", "  ", "\n", " , "])), quote)
        quote = quote.replace("\u2019", "'")
    return source, quote


@SETTINGS
@given(source_and_quote())
def test_verified_iff_normalised_quote_occurs_in_source(pair: tuple[str, str]) -> None:
    source, quote = pair
    check = verify_quote(quote, source)
    assert check.verified == _occurs(quote, source)
    assert 0.0 <= check.fuzzy <= 1.0
    if check.verified:
        assert check.fuzzy == 1.0
        assert 0 <= check.start < check.end <= len(source)
        # the span holds exactly the quoted words of the source
        assert normalize(source[check.start : check.end]) == normalize(quote)
    else:
        assert check.start is None and check.end is None


@SETTINGS
@given(source_and_quote())
def test_fuzzy_score_is_share_of_quote_trigrams_in_source(pair: tuple[str, str]) -> None:
    source, quote = pair
    check = verify_quote(quote, source)
    words = normalize(quote).split()
    if check.verified:
        return
    if len(words) >= 3:
        grams = [" ".join(words[k : k + 3]) for k in range(len(words) - 2)]
        expected = sum(_occurs(g, source) for g in grams) / len(grams)
    else:
        expected = 1.0 if _occurs(quote, source) else 0.0
    assert check.fuzzy == expected


@SETTINGS
@given(source_text, st.data())
def test_exact_slices_on_word_boundaries_verify(source: str, data) -> None:
    words = list(re.finditer(r"\w+", source))
    assume(words)
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(i, len(words) - 1))
    quote = source[words[i].start() : words[j].end()]
    assume(normalize(quote))
    assume(_occurs(quote, source))  # \w+ and the normaliser may disagree on exotic letters
    assert verify_quote(quote, source).verified


# ---------------------------------------------------------------- rendering


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(attrs)))
        if tag == "br":
            self.data.append("\n")

    def handle_data(self, data):
        self.data.append(data)


def _expected_display(text: str, source: str) -> tuple[str, list[bool]]:
    checks = iter(verify_quotes(text, source))
    out, flags = [], []
    for seg in parse_segments(text):
        if seg.kind == "text":
            out.append(strip_controls(seg.text))
        else:
            check = next(checks)
            ok = check.verified
            flags.append(ok)
            # a verified quote is shown in the source's characters, never the debater's
            shown = source[check.start : check.end] if ok else seg.text
            out.append(("\u2713" if ok else "\u2717") + "\xa0\u201c"
                       + (shown if ok else strip_controls(shown)) + "\u201d")
    return "".join(out), flags


@SETTINGS
@given(hostile_text, source_text)
def test_render_html_is_inert_and_faithful(text: str, source: str) -> None:
    out = render_html(text, source)
    parser = _Collector()
    parser.feed(out)
    parser.close()
    expected, flags = _expected_display(text, source)
    spans = [attrs for tag, attrs in parser.tags if tag == "span"]
    assert {tag for tag, _ in parser.tags} <= {"span", "br"}
    # one span per quote segment, in order, with the class its verification earned
    assert [dict(a)["class"] for a in spans] == [
        VERIFIED_CLASS if ok else UNVERIFIED_CLASS for ok in flags
    ]
    assert out.count(f'class="{VERIFIED_CLASS}"') == sum(flags)
    assert out.count("&#10003;") == sum(flags)
    # what the reader sees is the debater's text, verified quotes in the source's words
    assert "".join(parser.data) == expected


@SETTINGS
@given(hostile_text, source_text)
def test_render_html_output_has_no_markdown_or_raw_markup(text: str, source: str) -> None:
    out = render_html(text, source)
    ours = re.compile(
        r'<span class="quote-(?:un)?verified" title="(?:un)?verified quote">|</span>|<br>'
    )
    rest = ours.sub("", out)
    assert "<" not in rest and ">" not in rest
    for ch in "[]()!*_`$:":
        assert ch not in rest


@SETTINGS
@given(hostile_text, source_text)
def test_render_plain_marks_only_earned_quotes(text: str, source: str) -> None:
    out = render_plain(text, source)
    checks = verify_quotes(text, source)
    verified = sum(c.verified for c in checks)
    assert out.count(PLAIN_OPEN) == len(checks) == out.count(PLAIN_CLOSE)
    assert out.count(PLAIN_VERIFIED) == verified
    assert out.count(PLAIN_UNVERIFIED) == len(checks) - verified
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out)
    # the debater's own words survive, minus the reserved marks
    for seg in parse_segments(text):
        assert clean_plain(seg.text) in out


# ---------------------------------------------------------------- truncation


def _words(text: str) -> list[tuple[str, str]]:
    return [(s.kind, w) for s in parse_segments(text) for w in s.text.split()]


@SETTINGS
@given(st.one_of(hostile_text, wordy_text), st.integers(1, 30))
def test_truncate_words_keeps_tags_whole_and_balanced(text: str, limit: int) -> None:
    out, cut = truncate_words(text, limit)
    if not cut:
        assert out == text and count_words(text) <= limit
        return
    assert count_words(text) > limit
    assert out.endswith(TRUNCATION_MARK)
    body = out[: -len(TRUNCATION_MARK)]
    segs = parse_segments(body)
    assert all(s.closed for s in segs)
    assert count_words(body) <= limit
    # the kept words are the first words of the original, each on its side of the tags
    kept = _words(body)
    assert kept == _words(text)[: len(kept)]
    assert len(kept) == limit


@given(st.text())
def test_fast_normalize_equals_mapped_normalize(text):
    assert normalize(text) == normalize_with_map(text)[0]
