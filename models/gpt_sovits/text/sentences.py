"""Cutting long input into synthesis segments, as GPT-SoVITS' TTS text preprocessor does.

`split_sentences` = the official `pre_seg_text`: an optional leading mark for a very short
first clause, one of the cut methods, merging of pieces shorter than 5 characters, dropping
of punctuation-only pieces, a closing mark on every piece, and splitting of pieces longer than
510 characters (the BERT limit). Nothing is ever cut off: every character of the input ends up
in exactly one segment (up to the added marks).

Cut methods: cut0 none; cut1 every 4 clauses; cut2 about 50 characters; cut3 at "。"; cut4 at
"."; cut5 at every punctuation mark (the api_v2 default). Unlike the older official cut5, a
"." between two digits (25.5) does not cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Literal

from .errors import TextFrontendError

SplitMethod = Literal["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]

MAX_SEGMENT_CHARS: Final = 510
MIN_SEGMENT_CHARS: Final = 5
CLAUSE_MARKS: Final = frozenset("，。？！,.?!~:：—…")
_CLAUSE_MARK_RE: Final = re.compile("([" + re.escape("".join(sorted(CLAUSE_MARKS))) + "])")
_CUT5_RE: Final = re.compile(r"((?<!\d)\.|\.(?!\d)|[,;?!、，。？！；：…])")
_WORD_CHAR_RE: Final = re.compile(r"\w")
_REPEATED_RE: Final = re.compile(r"([!?…,.\-])([!?…,.\-])+")


def _hard_wrap(text: str, max_chars: int) -> str:
    """Lines longer than `max_chars` are broken into `max_chars` pieces (official)."""
    out: list[str] = []
    for line in text.split("\n"):
        while len(line) > max_chars:
            out.append(line[:max_chars])
            line = line[max_chars:]
        if line:
            out.append(line)
    return "\n".join(out)


def split_clauses(text: str) -> list[str]:
    """Clauses ending with their mark; a final mark "。" is added when the text has none."""
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in CLAUSE_MARKS:
        text += "。"
    clauses: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch in CLAUSE_MARKS:
            clauses.append(text[start : i + 1])
            start = i + 1
    return clauses


def _cut0(text: str, wrap: int) -> str:
    return text


def _cut1(text: str, wrap: int) -> str:
    text = _hard_wrap(text, wrap).strip("\n")
    clauses = split_clauses(text)
    if len(clauses) <= 4:
        return text
    return "\n".join("".join(clauses[i : i + 4]) for i in range(0, len(clauses), 4))


def _cut2(text: str, wrap: int, max_chars: int = 50) -> str:
    text = _hard_wrap(text, wrap).strip("\n")
    clauses = split_clauses(text)
    if len(clauses) < 2:
        return text
    pieces: list[str] = []
    current = ""
    for clause in clauses:
        current += clause
        if len(current) > max_chars:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    if len(pieces) > 1 and len(pieces[-1]) < max_chars:
        pieces[-2] += pieces.pop()
    return "\n".join(pieces)


def _cut_at(mark: str) -> Callable[[str, int], str]:
    def cut(text: str, wrap: int) -> str:
        return "\n".join(_hard_wrap(text, wrap).strip("\n").strip(mark).split(mark))

    return cut


def _cut5(text: str, wrap: int) -> str:
    items = _CUT5_RE.split(_hard_wrap(text, wrap).strip("\n"))
    pieces = ["".join(pair) for pair in zip(items[::2], items[1::2], strict=False)]
    if len(items) % 2 == 1:
        pieces.append(items[-1])
    return "\n".join(pieces)


CUT_METHODS: Final[dict[str, Callable[[str, int], str]]] = {
    "cut0": _cut0,
    "cut1": _cut1,
    "cut2": _cut2,
    "cut3": _cut_at("。"),
    "cut4": _cut_at("."),
    "cut5": _cut5,
}


def merge_short(pieces: list[str], threshold: int = MIN_SEGMENT_CHARS) -> list[str]:
    """Join consecutive pieces until each has at least `threshold` characters."""
    if len(pieces) < 2:
        return pieces
    merged: list[str] = []
    current = ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            merged.append(current)
            current = ""
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return merged


def split_long(text: str, max_chars: int = MAX_SEGMENT_CHARS) -> list[str]:
    """Pieces of at most `max_chars`, cut at clause marks where possible, else hard."""
    pieces: list[str] = []
    current = ""
    for part in _CLAUSE_MARK_RE.split(text):
        if current and len(current + part) > max_chars:
            pieces.append(current)
            current = ""
        current += part
        while len(current) > max_chars:
            pieces.append(current[:max_chars])
            current = current[max_chars:]
    if current:
        pieces.append(current)
    return pieces


def split_sentences(
    text: str,
    language: str = "zh",
    method: SplitMethod = "cut5",
    max_chars: int = MAX_SEGMENT_CHARS,
) -> list[str]:
    """Synthesis segments of `text` (the official `pre_seg_text` pipeline)."""
    if method not in CUT_METHODS:
        raise TextFrontendError(
            f"unknown text split method {method!r}; use one of {sorted(CUT_METHODS)}"
        )
    if max_chars < MIN_SEGMENT_CHARS:
        raise TextFrontendError(f"max_chars must be at least {MIN_SEGMENT_CHARS}, got {max_chars}")
    end_mark = "." if language == "en" else "。"
    text = _REPEATED_RE.sub(r"\1", text).strip("\n")
    if not text.strip():
        return []
    first_clause = _CLAUSE_MARK_RE.split(text, maxsplit=1)[0].strip()
    if text[0] not in CLAUSE_MARKS and len(first_clause) < 4:
        # A very short opening clause is read badly without a preceding mark.
        text = end_mark + text
    cut = CUT_METHODS[method](text, max_chars - 1)
    pieces = [p for p in re.sub(r"\n+", "\n", cut).split("\n") if p not in ("", " ")]
    segments: list[str] = []
    for piece in merge_short(pieces):
        if not piece.strip() or not _WORD_CHAR_RE.search(piece):
            continue  # punctuation only
        # One character is kept free for the closing mark, so no segment exceeds max_chars
        # and no segment is a lone mark.
        for part in split_long(piece, max_chars - 1) if len(piece) >= max_chars else [piece]:
            segments.append(part if part[-1] in CLAUSE_MARKS else part + end_mark)
    return segments
