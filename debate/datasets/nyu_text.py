"""Turn the NYU debate data's Penn-Treebank-style story tokens back into readable text.

The NYU 2023 debate rooms store each QuALITY story as a token list (`-LSB-` for `[`,
`'s` and `n't` split off, ``` `` ``` and `''` for double quotes, `"\\n"` as its own token),
and speeches quote the story by token spans. `detokenize` renders the tokens as readable
text and returns each token's character span in it, so a token span maps to a character
span with `char_span`.

The spacing rules follow the usual PTB conventions: no space before closing punctuation
and clitics, none after opening brackets and quotes, and quote tokens alternate between
opening and closing.
"""

from __future__ import annotations

# How a bracket or quote token is written in readable text.
_REWRITE = {
    "-LRB-": "(",
    "-RRB-": ")",
    "-LSB-": "[",
    "-RSB-": "]",
    "-LCB-": "{",
    "-RCB-": "}",
    "``": '"',
    "''": '"',
    "`": "'",
}

# Tokens written straight after the previous one (closing punctuation, clitics).
_NO_SPACE_BEFORE = frozenset(
    {
        ".", ",", "!", "?", ";", ":", "...", "%", "°",
        "'s", "'S", "n't", "N'T", "'re", "'ve", "'ll", "'m", "'d", "'em",
        "-RRB-", "-RSB-", "-RCB-", ")", "]", "}",
    }
)

# Tokens after which the next token follows without a space (opening brackets, currency).
_NO_SPACE_AFTER = frozenset({"-LRB-", "-LSB-", "-LCB-", "(", "[", "{", "$", "£", "#"})

# "gon na" / "wan na" are split like clitics.
_SPLIT_NA_HOSTS = frozenset({"gon", "wan", "Gon", "Wan", "GON", "WAN"})


def detokenize(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Readable text for `tokens` and each token's (start, end) character span in it.

    An empty token gets an empty span at its position; a newline token is its own
    newline character (no spaces around it).
    """
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    glue_next = True  # no space before the next token (start of text, after an opener)
    inside_double = False
    for token in tokens:
        if token == "":
            spans.append((length, length))
            continue
        if token == "\n":
            pieces.append("\n")
            spans.append((length, length + 1))
            length += 1
            glue_next = True
            continue

        glue_before = glue_next
        glue_after = token in _NO_SPACE_AFTER
        if token == "``":
            inside_double = True
            glue_after = True
        elif token == "''":
            glue_before = glue_before or inside_double
            inside_double = False
        elif token == "`":
            glue_after = True
        elif token == "'":
            # A closing single quote, or a possessive after a plural ("the boys'").
            glue_before = True
        elif token in _NO_SPACE_BEFORE or _is_split_na(token, pieces):
            glue_before = True

        if not glue_before:
            pieces.append(" ")
            length += 1
        word = _REWRITE.get(token, token)
        pieces.append(word)
        spans.append((length, length + len(word)))
        length += len(word)
        glue_next = glue_after
    return "".join(pieces), spans


def _is_split_na(token: str, pieces: list[str]) -> bool:
    return token in ("na", "NA") and bool(pieces) and pieces[-1] in _SPLIT_NA_HOSTS


def char_span(spans: list[tuple[int, int]], begin: int, end: int) -> tuple[int, int]:
    """Character span covering tokens [begin, end) given `detokenize`'s token spans.

    Raises ValueError for an empty or out-of-range token span.
    """
    if not 0 <= begin < end <= len(spans):
        raise ValueError(f"token span [{begin}, {end}) is outside the story's {len(spans)} tokens")
    return spans[begin][0], spans[end - 1][1]
