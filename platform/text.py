"""Step 3 of the pipeline: normalise, split into sentences within engine limits.

The work is done by a text-frontend component that covers the language (the built-in ``basic``
plugin covers English); with none available, text is only whitespace-normalised and split at
sentence punctuation, which every engine accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voiceseal.errors import InvalidInput
from voiceseal.runtime import Runtime

#: Engines get at most this many characters at once; longer sentences are split at commas/spaces.
MAX_SENTENCE_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?。！？;；])\s+|(?<=[。！？])")


@dataclass(frozen=True)
class TextPlan:
    normalized: str
    sentences: tuple[str, ...]
    frontend: str


def split_plain(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            cut = max(sentence.rfind(", ", 0, max_chars), sentence.rfind(" ", 0, max_chars))
            cut = cut if cut > max_chars // 3 else max_chars
            out.append(sentence[:cut].strip(" ,"))
            sentence = sentence[cut:].strip(" ,")
        if sentence:
            out.append(sentence)
    return out


def prepare_text(runtime: Runtime, text: str, language: str) -> TextPlan:
    frontend = None
    for spec in runtime.components.specs("text_frontends"):
        if spec.unavailable is None:
            candidate = runtime.components.get("text_frontends", spec.name)
            langs = candidate.capabilities.languages
            if not langs or language in langs:
                frontend = candidate
                break
    collapsed = " ".join(text.split())
    if frontend is not None:
        normalized = frontend.normalize(collapsed, language)
        sentences = frontend.split_sentences(normalized, language, MAX_SENTENCE_CHARS)
        name = frontend.name
    else:
        normalized, sentences, name = collapsed, split_plain(collapsed), "plain"
    # Pieces with nothing pronounceable (only punctuation or symbols) are dropped, not spoken.
    sentences = [s for s in sentences if any(ch.isalnum() for ch in s)]
    if not sentences:
        raise InvalidInput("the input has nothing to speak (only punctuation or symbols)")
    return TextPlan(normalized, tuple(sentences), name)
