"""The NYU story detokeniser: readable text and exact token character spans."""

from __future__ import annotations

import json

import pytest

from debate.datasets.nyu_text import char_span, detokenize

_WRITTEN = {"-LSB-": "[", "-RSB-": "]", "-LRB-": "(", "-RRB-": ")", "``": '"', "''": '"', "`": "'"}


def test_detokenize_joins_clitics_punctuation_brackets_and_quotes() -> None:
    tokens = ["-LSB-", "Note", "-RSB-", "He", "said", ",", "``", "I", "do", "n't", "know", "!", "''",
              "\n", "\n", "It", "'s", "Pa", "'s", "gon", "na", "cost", "$", "5", "."]
    text, spans = detokenize(tokens)
    assert text == '[Note] He said, "I don\'t know!"\n\nIt\'s Pa\'s gonna cost $5.'
    assert len(spans) == len(tokens)
    for token, (start, end) in zip(tokens, spans):
        assert text[start:end] == _WRITTEN.get(token, token)


def test_empty_token_gets_an_empty_span_and_char_span_checks_range() -> None:
    text, spans = detokenize(["a", "", "b"])
    assert text == "a b"
    assert spans[1][0] == spans[1][1]
    assert char_span(spans, 0, 3) == (0, 3)
    with pytest.raises(ValueError, match="outside"):
        char_span(spans, 2, 4)
    with pytest.raises(ValueError):
        char_span(spans, 1, 1)


def test_every_sample_story_token_maps_to_its_text(nyu_sample) -> None:
    for path in sorted((nyu_sample / "debates").glob("*.json"))[:10]:
        tokens = json.loads(path.read_text())["setup"]["sourceMaterial"]["QuALITYSourceMaterial"]["contents"]
        text, spans = detokenize(tokens)
        for token, (start, end) in zip(tokens, spans):
            assert text[start:end] == _WRITTEN.get(token, token), path.name
        assert "-LSB-" not in text and " n't" not in text and " 's " not in text
