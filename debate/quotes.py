"""<quote> parsing, verification against the hidden source, and safe rendering.

Pure code: no I/O, no torch. Debater text is untrusted: the renderers escape or strip
everything they did not produce themselves, so a debater cannot forge the verified-quote
markup (HTML spans, check marks, the ⟦…⟧ brackets of the terminal view).

Parsing. `<quote>` and `</quote>` (any case, spaces inside the brackets allowed) delimit
quotes. Quotes do not nest: a `<quote>` inside a quote is quoted text. A stray
`</quote>` outside a quote is plain text. A `<quote>` never closed runs to the end of the
turn and is never verified.

Verification. Both the quote and the source are normalised character by character:
each character is decomposed to its compatibility form (NFKD: ligatures, full-width and
circled or squared letters, composed accents) and case-folded; then every whitespace,
punctuation or separator character becomes a word boundary, invisible format characters
(zero-width spaces and joiners, direction marks and overrides, soft hyphens) are dropped,
and everything else (letters, digits, combining marks, symbols such as the logical-not
sign or a cross mark) is kept and must match. So no letter or digit, after compatibility
folding, is ever ignored, and no sign that can change a sentence's meaning is either.
The quote is verified iff its normalised form occurs in the normalised source on word
boundaries; the matched span is mapped back to character offsets in the original source.
The fuzzy score is the share of the quote's word 3-grams found in the source (quotes under
three words: 1.0 if their words occur consecutively, else 0.0); it is stored for analysis,
and never makes a quote verified.

Display. A verified quote is always shown from its span of the source (`source[start:end]`,
the stored span for stored turns), never from the debater's characters: `quote_segments`
turns a turn's text and its quote checks into `ShownSegment`s, and the renderers below
(HTML, terminal, model prompt) render those. The debater's raw quote text stays stored for
audit and is shown only inside unverified quotes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

QUOTE_OPEN = "<quote>"
QUOTE_CLOSE = "</quote>"
_TAG_RE = re.compile(r"<\s*(/?)\s*quote\s*>", re.IGNORECASE)
QUOTE_TAG_RE = _TAG_RE  # an opening or closing quote tag, in any of its spellings


@dataclass(frozen=True)
class Segment:
    kind: str  # "text" | "quote"
    text: str
    closed: bool = True  # False for a <quote> left open at the end of the turn


@dataclass(frozen=True)
class QuoteCheck:
    text: str
    verified: bool
    start: int | None  # span in the original source, end exclusive; None if unverified
    end: int | None
    fuzzy: float


def parse_segments(text: str) -> list[Segment]:
    """Split a turn into text and quote segments (see the module docstring for the rules).

    Adjacent text segments are merged; empty text segments are dropped; an empty quote
    (`<quote></quote>`) is kept as an empty quote segment.
    """
    segments: list[Segment] = []
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
        # else: a <quote> inside a quote, or a stray </quote>: stays in the buffer as text
    rest = text[buf_start:]
    if in_quote:
        segments.append(Segment("quote", rest, closed=False))
    elif rest:
        segments.append(Segment("text", rest))
    return _merge_text(segments)


def join_segments(segments: list[Segment]) -> str:
    """The inverse of parse_segments for text written with canonical tags."""
    out: list[str] = []
    for seg in segments:
        if seg.kind == "text":
            out.append(seg.text)
        else:
            out.append(QUOTE_OPEN + seg.text + (QUOTE_CLOSE if seg.closed else ""))
    return "".join(out)


def _merge_text(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in segments:
        if out and seg.kind == "text" and out[-1].kind == "text":
            out[-1] = Segment("text", out[-1].text + seg.text)
        else:
            out.append(seg)
    return out


# ---------------------------------------------------------------- normalisation


_BOUNDARY = " "


@lru_cache(maxsize=8192)
def _fold(ch: str) -> str:
    """One character as normalised characters: '' when it is dropped (an invisible format
    character), ' ' when it is a word boundary (whitespace, punctuation, separators), else
    its compatibility decomposition, case-folded, with the boundaries inside the
    decomposition dropped (so word boundaries always fall between source characters)."""
    if ch.isascii():
        if ch.isalnum():
            return ch.lower()
        return _BOUNDARY if _is_boundary(ch) else ch  # ASCII symbols: $ + < = > ^ ` | ~
    cat = unicodedata.category(ch)
    if cat == "Cf":
        return ""
    if ch.isspace() or cat[0] in ("P", "Z") or cat == "Cc":
        return _BOUNDARY
    out = []
    for c in unicodedata.normalize("NFKD", ch):
        if c.isspace() or _is_boundary(c) or unicodedata.category(c) == "Cf":
            continue
        out.append(c.casefold())
    return "".join(out) or _BOUNDARY


def _is_boundary(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return ch.isspace() or cat[0] in ("P", "Z") or cat == "Cc"


def content_chars(text: str) -> str:
    """The letters and digits of `text` after compatibility folding and case folding: what
    verification never ignores (used by the tests of that guarantee)."""
    return "".join(
        c for ch in text for c in unicodedata.normalize("NFKD", ch).casefold()
        if unicodedata.category(c)[0] in ("L", "N")
    )


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Normalised text and, for each of its characters, the index in `text` it came from.

    The result has no leading, trailing or double spaces.
    """
    out: list[str] = []
    index: list[int] = []
    pending_space = False
    for i, ch in enumerate(text):
        folded = _fold(ch)
        if not folded:
            continue
        if folded == _BOUNDARY:
            pending_space = True
            continue
        if pending_space and out:
            out.append(" ")
            index.append(i)
        pending_space = False
        out.extend(folded)
        index.extend([i] * len(folded))
    return "".join(out), index


def normalize(text: str) -> str:
    """normalize_with_map(text)[0], without building the map (the hot path for quotes)."""
    return _squeeze("".join([_fold(ch) for ch in text]))


def _squeeze(folded: str) -> str:
    return _BOUNDARY.join(w for w in folded.split(_BOUNDARY) if w)


@dataclass(frozen=True)
class SourceIndex:
    """A source text prepared once for many quote checks."""

    text: str
    normalized: str
    index: list[int]
    trigrams: frozenset[tuple[str, ...]]

    @staticmethod
    def build(text: str) -> SourceIndex:
        norm, index = normalize_with_map(text)
        words = norm.split()
        grams = frozenset(zip(words, words[1:], words[2:]))
        return SourceIndex(text, norm, index, grams)


@lru_cache(maxsize=64)
def source_index(text: str) -> SourceIndex:
    return SourceIndex.build(text)


def fuzzy_score(quote_norm: str, src: SourceIndex) -> float:
    """Share of the (normalised) quote's word 3-grams that occur in the source."""
    words = quote_norm.split()
    if not words:
        return 0.0
    if len(words) < 3:
        return 1.0 if _find_words(" ".join(words), src.normalized) >= 0 else 0.0
    grams = list(zip(words, words[1:], words[2:]))
    return sum(g in src.trigrams for g in grams) / len(grams)


def _find_words(needle: str, hay: str) -> int:
    """Position of `needle` in `hay` on word boundaries (both normalised), or -1."""
    if not needle:
        return -1
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
    """Check one quote against the source. Unclosed or empty quotes are never verified."""
    if source is None:
        return QuoteCheck(quote, False, None, None, 0.0)
    src = source if isinstance(source, SourceIndex) else source_index(source)
    qn = normalize(quote)
    if not closed:
        return QuoteCheck(quote, False, None, None, 0.0)
    fuzzy = fuzzy_score(qn, src)
    pos = _find_words(qn, src.normalized)
    if pos < 0:
        return QuoteCheck(quote, False, None, None, fuzzy)
    start = src.index[pos]
    end = src.index[pos + len(qn) - 1] + 1
    start, end = _widen_to_punctuation(quote.strip(), src.text, start, end)
    return QuoteCheck(quote, True, start, end, 1.0)


def _edge_separators(text: str, at_end: bool) -> str:
    """The run of separator characters (punctuation...) at one end of `text`."""
    chars = reversed(text) if at_end else iter(text)
    run = []
    for ch in chars:
        if _fold(ch).strip():
            break
        run.append(ch)
    return "".join(reversed(run) if at_end else run)


def _widen_to_punctuation(quote: str, source: str, start: int, end: int) -> tuple[int, int]:
    """Let the span take in the punctuation the quote starts or ends with (a final full
    stop, an opening quotation mark) when the source has it in the same place."""
    lead, trail = _edge_separators(quote, False), _edge_separators(quote, True)
    if lead and len(lead) < len(quote) and source[max(start - len(lead), 0) : start] == lead:
        start -= len(lead)
    if trail and len(trail) < len(quote) and source[end : end + len(trail)] == trail:
        end += len(trail)
    return start, end


def verify_quotes(text: str, source: str | SourceIndex | None) -> list[QuoteCheck]:
    """One check per quote segment of `text`, in order."""
    if source is not None and not isinstance(source, SourceIndex):
        source = source_index(source)
    return [
        verify_quote(seg.text, source, seg.closed)
        for seg in parse_segments(text)
        if seg.kind == "quote"
    ]


# ---------------------------------------------------------------- word limits


def count_words(text: str) -> int:
    """Words in a turn; quote tags separate words and are not words themselves."""
    return sum(len(seg.text.split()) for seg in parse_segments(text))


def quoted_word_count(text: str) -> int:
    return sum(len(s.text.split()) for s in parse_segments(text) if s.kind == "quote")


TRUNCATION_MARK = " [truncated]"


def truncate_words(text: str, max_words: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_words` words (as count_words counts them), keeping
    <quote> tags whole and balanced.

    Returns (text, truncated). Words inside quotes count too. A quote cut short is closed
    (and so checked as the shorter quote); a quote cut away entirely is dropped with its
    tags. The mark is appended when anything was cut.
    """
    if count_words(text) <= max_words:
        return text, False
    budget = max(max_words, 0)
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
        elif len(take) == len(words):
            # nothing cut here: keep the segment's own spacing
            parts.append(seg.text)
        else:
            lead = " " if seg.text[:1].isspace() else ""
            parts.append(lead + " ".join(take))
    return "".join(parts).rstrip() + TRUNCATION_MARK, True


# ---------------------------------------------------------------- rendering

VERIFIED_CLASS = "quote-verified"
UNVERIFIED_CLASS = "quote-unverified"

# HTML's special characters, and those that mean something to Markdown (links, images,
# emphasis, autolinks) or to Gradio's LaTeX delimiters, as entities: HTML shown through a
# Markdown component stays inert text too.
_HTML_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#39;",
        "\n": "<br>",
        **{c: f"&#{ord(c)};" for c in "[]()!*_`#~|\\$:{}+-=^.@"},
    }
)


def escape_html(text: str) -> str:
    """Untrusted text as inert HTML: every special character an entity, controls
    removed, newlines as <br>."""
    return strip_controls(text).translate(_HTML_ESCAPES)


@dataclass(frozen=True)
class QuoteMark:
    """What the store says about one quote of a turn (its row in the quotes table)."""

    verified: bool
    start: int | None
    end: int | None


@dataclass(frozen=True)
class ShownSegment:
    """A piece of a turn as a reader sees it. For a verified quote, `text` is the source's
    own characters (its span), never the debater's; an unverified quote keeps the
    debater's text (shown as unverified)."""

    kind: str  # "text" | "quote"
    text: str
    verified: bool = False


def quote_segments(text: str, marks: Sequence[QuoteMark | QuoteCheck],
                   source: str | None) -> tuple[ShownSegment, ...]:
    """The turn's segments with each quote paired with its mark (by position).

    A quote is shown as verified only when its mark says so, the span lies inside the
    source, and the span is not empty; then its text is `source[start:end]`. A quote
    without a mark (fewer marks than quotes), or with a span that does not fit the
    source, is shown as unverified with the debater's text.
    """
    out: list[ShownSegment] = []
    k = 0
    for seg in parse_segments(text):
        if seg.kind == "text":
            out.append(ShownSegment("text", seg.text))
            continue
        mark = marks[k] if k < len(marks) else None
        k += 1
        if (
            mark is not None and mark.verified and source is not None and seg.closed
            and mark.start is not None and mark.end is not None
            and 0 <= mark.start < mark.end <= len(source)
        ):
            out.append(ShownSegment("quote", source[mark.start : mark.end], True))
        else:
            out.append(ShownSegment("quote", seg.text, False))
    return tuple(out)


def checked_segments(text: str, source: str | SourceIndex | None) -> tuple[ShownSegment, ...]:
    """quote_segments with the quotes verified now (for text not yet stored)."""
    src = source.text if isinstance(source, SourceIndex) else source
    return quote_segments(text, verify_quotes(text, source), src)


def escape_source_html(text: str) -> str:
    """The source's own characters as inert HTML, none removed (a verified quote shows
    exactly its span; the quote's span isolates any direction marks in it)."""
    return text.translate(_HTML_ESCAPES)


def segments_html(segments: Sequence[ShownSegment]) -> str:
    """HTML for a reader: every character escaped; only this function emits the quote
    spans, so markup inside any text stays inert text. The debater's text loses its
    controls and invisible direction/zero-width characters; a verified quote is the
    source's span, every character kept."""
    out: list[str] = []
    for seg in segments:
        if seg.kind == "text":
            out.append(escape_html(seg.text))
            continue
        cls = VERIFIED_CLASS if seg.verified else UNVERIFIED_CLASS
        label = "verified quote" if seg.verified else "unverified quote"
        out.append(
            f'<span class="{cls}" title="{label}">'
            f"{'&#10003;' if seg.verified else '&#10007;'}&nbsp;&ldquo;"
            f"{escape_source_html(seg.text) if seg.verified else escape_html(seg.text)}"
            "&rdquo;</span>"
        )
    return "".join(out)


def render_html(text: str, source: str | SourceIndex | None) -> str:
    """segments_html of the text with its quotes verified now (verified quotes shown
    from the source's characters)."""
    return segments_html(checked_segments(text, source))


PLAIN_VERIFIED = "\u2713"  # ✓
PLAIN_UNVERIFIED = "\u2717"  # ✗
PLAIN_OPEN = "\u27e6"  # ⟦
PLAIN_CLOSE = "\u27e7"  # ⟧
# Marks the terminal view reserves for itself: check and cross marks, ballot boxes, and
# white square brackets of every kind. Removed from debater text before rendering.
_PLAIN_MARKERS = re.compile(
    "[\u2610-\u2612\u2705\u2713-\u2718\u274c\u274e\u2a2f\U0001f5f4-\U0001f5f8"
    "\u27e6\u27e7\u301a\u301b\u29da\u29db\u27ec\u27ed]"
)
# C0/C1 controls except tab and newline (terminal escapes), and the invisible direction
# and zero-width formatting characters that can make text read other than it is stored.
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def strip_controls(text: str) -> str:
    """Text without terminal escapes, direction overrides or zero-width characters."""
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def clean_plain(text: str) -> str:
    """Untrusted text safe for a terminal: controls and the verification marks removed."""
    return _PLAIN_MARKERS.sub("", strip_controls(text))


def segments_plain(segments: Sequence[ShownSegment], *, terminal: bool = True) -> str:
    """Plain rendering: ⟦✓ “…”⟧ for verified, ⟦✗ “…”⟧ for unverified quotes.

    The marker characters and control sequences are removed from the debater's own text
    (plain text and unverified quotes), so it can neither forge a verified quote nor drive
    the terminal. A verified quote's text is the source's: with terminal=True only its
    control and marker characters are removed; with terminal=False (a model's prompt) it is shown
    exactly, character for character.
    """
    out: list[str] = []
    for seg in segments:
        if seg.kind == "text":
            out.append(clean_plain(seg.text))
            continue
        if seg.verified:
            body = clean_plain(seg.text) if terminal else seg.text
            out.append(f"{PLAIN_OPEN}{PLAIN_VERIFIED} \u201c{body}\u201d{PLAIN_CLOSE}")
        else:
            out.append(f"{PLAIN_OPEN}{PLAIN_UNVERIFIED} \u201c{clean_plain(seg.text)}"
                       f"\u201d{PLAIN_CLOSE}")
    return "".join(out)


def render_plain(text: str, source: str | SourceIndex | None) -> str:
    """segments_plain of the text with its quotes verified now."""
    return segments_plain(checked_segments(text, source))
