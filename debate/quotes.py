"""<quote> parsing, verification against the hidden source, and safe rendering.

Pure code: no I/O, no torch. Debater text is untrusted: rendering escapes everything it
did not produce itself, so a debater cannot forge the verified-quote markup.

Verification normalises case, punctuation (treated as spaces), whitespace and curly
quotes on both sides, then looks for an exact match; the span is mapped back to
character offsets in the original source. The fuzzy score is the share of the quote's
word 3-grams found in the source (for quotes under three words: 1.0 if all its words
occur consecutively, else 0.0).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

QUOTE_OPEN = "<quote>"
QUOTE_CLOSE = "</quote>"
_TAG_RE = re.compile(r"<\s*(/?)\s*quote\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    kind: str  # "text" | "quote"
    text: str
    closed: bool = True  # False for a <quote> left open at the end of the turn


@dataclass(frozen=True)
class QuoteCheck:
    text: str
    verified: bool
    start: int | None
    end: int | None
    fuzzy: float


def parse_segments(text: str) -> list[Segment]:
    """Split a turn into text and quote segments.

    A stray </quote> outside a quote is kept as text; a <quote> with no closing tag runs
    to the end of the turn and is marked closed=False (and so never verified). Quotes do
    not nest: a <quote> inside a quote is part of the quoted text.
    """
    segments: list[Segment] = []
    pos = 0
    in_quote = False
    buf_start = 0
    for m in _TAG_RE.finditer(text):
        closing = m.group(1) == "/"
        if not in_quote and not closing:
            if m.start() > buf_start:
                segments.append(Segment("text", text[buf_start : m.start()]))
            in_quote = True
            buf_start = m.end()
        elif in_quote and closing:
            segments.append(Segment("quote", text[buf_start : m.start()]))
            in_quote = False
            buf_start = m.end()
        pos = m.end()
    del pos
    rest = text[buf_start:]
    if in_quote:
        segments.append(Segment("quote", rest, closed=False))
    elif rest:
        segments.append(Segment("text", rest))
    return _merge_text(segments)


def _merge_text(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in segments:
        if out and seg.kind == "text" and out[-1].kind == "text":
            out[-1] = Segment("text", out[-1].text + seg.text)
        else:
            out.append(seg)
    return out


def _is_separator(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return ch.isspace() or cat[0] in ("P", "Z", "C") or cat in ("Sk", "Sm", "So")


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Normalised text and, for each of its characters, the index in `text` it came from."""
    out: list[str] = []
    index: list[int] = []
    pending_space = False
    for i, ch in enumerate(text):
        if _is_separator(ch):
            pending_space = bool(out)
            continue
        low = ch.lower()
        if len(low) != 1:
            low = ch
        if pending_space:
            out.append(" ")
            index.append(i)
            pending_space = False
        out.append(low)
        index.append(i)
    return "".join(out), index


def normalize(text: str) -> str:
    return normalize_with_map(text)[0]


@dataclass(frozen=True)
class SourceIndex:
    """A source text prepared once for many quote checks."""

    text: str
    normalized: str
    index: list[int]
    trigrams: frozenset[tuple[str, ...]]

    @staticmethod
    def build(text: str) -> "SourceIndex":
        norm, index = normalize_with_map(text)
        words = norm.split()
        grams = frozenset(zip(words, words[1:], words[2:]))
        return SourceIndex(text, norm, index, grams)


@lru_cache(maxsize=64)
def source_index(text: str) -> SourceIndex:
    return SourceIndex.build(text)


def fuzzy_score(quote_norm: str, src: SourceIndex) -> float:
    words = quote_norm.split()
    if not words:
        return 0.0
    if len(words) < 3:
        return 1.0 if _find_words(quote_norm, src.normalized) >= 0 else 0.0
    grams = list(zip(words, words[1:], words[2:]))
    return sum(g in src.trigrams for g in grams) / len(grams)


def _find_words(needle: str, hay: str) -> int:
    """Find `needle` in `hay` on word boundaries."""
    start = 0
    while True:
        pos = hay.find(needle, start)
        if pos < 0:
            return -1
        end = pos + len(needle)
        if (pos == 0 or hay[pos - 1] == " ") and (end == len(hay) or hay[end] == " "):
            return pos
        start = pos + 1


def verify_quote(quote: str, source: str | SourceIndex | None, closed: bool = True) -> QuoteCheck:
    if source is None:
        return QuoteCheck(quote, False, None, None, 0.0)
    src = source if isinstance(source, SourceIndex) else source_index(source)
    qn = normalize(quote)
    fuzzy = fuzzy_score(qn, src)
    if not closed or not qn:
        return QuoteCheck(quote, False, None, None, fuzzy if closed else 0.0)
    pos = _find_words(qn, src.normalized)
    if pos < 0:
        return QuoteCheck(quote, False, None, None, fuzzy)
    start = src.index[pos]
    end = src.index[pos + len(qn) - 1] + 1
    return QuoteCheck(quote, True, start, end, 1.0)


def verify_quotes(text: str, source: str | SourceIndex | None) -> list[QuoteCheck]:
    """One check per quote segment of `text`, in order."""
    return [
        verify_quote(seg.text, source, seg.closed)
        for seg in parse_segments(text)
        if seg.kind == "quote"
    ]


def count_words(text: str) -> int:
    return len(text.split())


def quoted_word_count(text: str) -> int:
    return sum(count_words(s.text) for s in parse_segments(text) if s.kind == "quote")


TRUNCATION_MARK = " [truncated]"


def truncate_words(text: str, max_words: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_words` words, keeping <quote> tags whole and balanced.

    Returns (text, truncated). Words inside quotes count too. A quote cut short is closed
    (and so checked as the shorter quote). The mark is appended when anything was cut.
    """
    if count_words(text) <= max_words:
        return text, False
    budget = max_words
    parts: list[str] = []
    for seg in parse_segments(text):
        if budget <= 0:
            break
        words = seg.text.split()
        take = words[:budget]
        budget -= len(take)
        if seg.kind == "quote":
            if take:
                parts.append(QUOTE_OPEN + " ".join(take) + QUOTE_CLOSE)
        else:
            # keep the segment's own leading/trailing spacing where nothing was cut
            if len(take) == len(words):
                parts.append(seg.text)
            else:
                lead = " " if seg.text[:1].isspace() else ""
                parts.append(lead + " ".join(take))
    return "".join(parts).rstrip() + TRUNCATION_MARK, True


# ---------------------------------------------------------------- rendering

VERIFIED_CLASS = "quote-verified"
UNVERIFIED_CLASS = "quote-unverified"


def render_html(text: str, source: str | SourceIndex | None) -> str:
    """HTML for a judge: every character of the debater's text is escaped; only this
    function emits the quote spans, so markup inside the text stays inert text."""
    checks = iter(verify_quotes(text, source))
    out: list[str] = []
    for seg in parse_segments(text):
        if seg.kind == "text":
            out.append(_escape_block(seg.text))
            continue
        check = next(checks)
        cls = VERIFIED_CLASS if check.verified else UNVERIFIED_CLASS
        label = "verified quote" if check.verified else "unverified quote"
        out.append(
            f'<span class="{cls}" title="{label}">'
            f"{'&#10003;' if check.verified else '&#10007;'}&nbsp;&ldquo;"
            f"{_escape_block(seg.text)}&rdquo;</span>"
        )
    return "".join(out)


def _escape_block(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", "<br>")


PLAIN_VERIFIED = "\u2713"  # ✓
PLAIN_UNVERIFIED = "\u2717"  # ✗
_PLAIN_MARKERS = re.compile("[\u2713\u2714\u2717\u2718\u27e6\u27e7]")


def render_plain(text: str, source: str | SourceIndex | None) -> str:
    """Terminal rendering: ⟦✓ "…"⟧ for verified, ⟦✗ "…"⟧ for unverified quotes.

    The marker characters are removed from the debater's own text first, so it cannot
    forge a verified quote."""
    checks = iter(verify_quotes(text, source))
    out: list[str] = []
    for seg in parse_segments(text):
        clean = _PLAIN_MARKERS.sub("", seg.text)
        if seg.kind == "text":
            out.append(clean)
            continue
        check = next(checks)
        mark = PLAIN_VERIFIED if check.verified else PLAIN_UNVERIFIED
        out.append(f"\u27e6{mark} \u201c{clean}\u201d\u27e7")
    return "".join(out)
