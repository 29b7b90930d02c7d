"""Sentence splitting for the engine, which speaks and streams one sentence at a time.

The core normally hands over one sentence per call; a whole paragraph is split here so the first
chunk still arrives after one sentence's worth of work.
"""

from __future__ import annotations

import re

#: Longer sentences are cut at clause boundaries (then spaces) so no single chunk stalls a stream.
MAX_SENTENCE_CHARS = 300

# Titles and Latin abbreviations end in a full stop without ending the sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "no",
        "fig",
        "approx",
        "inc",
        "ltd",
        "co",
    ]
)
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n\s*\n|\n(?=\s*[-*•])")
_CLAUSE = re.compile(r"(?<=[,;:—–])\s+")


def split_sentences(text: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split ``text`` into sentences of at most ``max_chars`` characters, in order, none empty."""
    sentences: list[str] = []
    pending = ""
    start = 0
    for match in _BOUNDARY.finditer(text):
        piece = text[start : match.end()]
        start = match.end()
        pending += piece
        last_word = (
            pending.rstrip().rsplit(maxsplit=1)[-1].rstrip(".").lower() if pending.strip() else ""
        )
        if last_word in _ABBREVIATIONS:
            continue
        sentences.append(pending.strip())
        pending = ""
    pending += text[start:]
    if pending.strip():
        sentences.append(pending.strip())
    out: list[str] = []
    for sentence in sentences:
        out.extend(_cut(sentence, max_chars))
    return [s for s in out if s]


def _cut(sentence: str, max_chars: int) -> list[str]:
    """Cut an over-long sentence at clause punctuation, else at the last space before the limit."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    current = ""
    for clause in _CLAUSE.split(sentence):
        candidate = f"{current} {clause}".strip()
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(clause) > max_chars:
            cut = clause.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        current = clause
    if current:
        pieces.append(current)
    return pieces
