"""Japanese G2P with pitch-accent marks, as GPT-SoVITS `japanese.py` (with_prosody=True).

OpenJTalk's full-context labels give the phonemes; from the accent fields of each label we
insert "[" (pitch rises after this mora), "]" (pitch falls: accent nucleus) and "#" (accent
phrase boundary), the scheme of Kurihara et al. 2021 as used by ESPnet and GPT-SoVITS.
Devoiced vowels (A I U E O) are written as plain vowels, pauses inside a sentence as "_".
Text between punctuation marks is converted piece by piece; the marks are kept and mapped to
the phone table (、 -> ",", 。 -> "." ...).

The phone table has no "#", so the official cleaner turns every accent-phrase boundary into
"UNK"; we do the same because the released models were trained on exactly that sequence.

OpenJTalk comes from the PyPI package `pyopenjtalk-plus`, whose wheel carries the compiled
dictionary. (Plain `pyopenjtalk` downloads its dictionary on first use, which is not allowed
here.) Its readings can differ from the original pyopenjtalk on some words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from ._optional import require
from .en_normalize import collapse_repeated_punctuation

_JAPANESE_CHARS = (
    r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
)
_JAPANESE_RE: Final = re.compile(f"[{_JAPANESE_CHARS}]")
_MARK_RE: Final = re.compile(f"[^{_JAPANESE_CHARS}]")
_MARK_MAP: Final = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",",
    "、": ",", "...": "…",
}  # fmt: skip
_CURRENT_PHONE_RE: Final = re.compile(r"-(.*?)\+")
_ACCENT_DISTANCE_RE: Final = re.compile(r"/A:([0-9\-]+)\+")  # a1: mora position - accent nucleus
_MORA_FORWARD_RE: Final = re.compile(r"\+(\d+)\+")  # a2: mora index in the accent phrase
_MORA_BACKWARD_RE: Final = re.compile(r"\+(\d+)/")  # a3: moras to the end of the accent phrase
_PHRASE_MORAS_RE: Final = re.compile(r"/F:(\d+)_")  # f1: moras in the accent phrase
_MISSING: Final = -50


@cache
def _openjtalk() -> Any:
    return require("pyopenjtalk", "pyopenjtalk-plus", "Japanese readings (OpenJTalk)")


def _field(regex: re.Pattern[str], label: str) -> int:
    m = regex.search(label)
    return int(m.group(1)) if m else _MISSING


def prosody_phones(labels: Sequence[str]) -> list[str]:
    """Phonemes with "[", "]", "#" from OpenJTalk labels, without the leading/trailing silence."""
    phones: list[str] = []
    for n, label in enumerate(labels):
        m = _CURRENT_PHONE_RE.search(label)
        if m is None:
            raise ValueError(f"not an OpenJTalk full-context label: {label!r}")
        phone = m.group(1)
        if phone in "AEIOU":
            phone = phone.lower()
        if phone == "sil":
            continue
        if phone == "pau":
            phones.append("_")
            continue
        phones.append(phone)
        a1 = _field(_ACCENT_DISTANCE_RE, label)
        a2 = _field(_MORA_FORWARD_RE, label)
        a3 = _field(_MORA_BACKWARD_RE, label)
        f1 = _field(_PHRASE_MORAS_RE, label)
        a2_next = _field(_MORA_FORWARD_RE, labels[n + 1]) if n + 1 < len(labels) else _MISSING
        if a3 == 1 and a2_next == 1 and phone in "aeiouAEIOUNcl":
            phones.append("#")
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            phones.append("]")
        elif a2 == 1 and a2_next == 2:
            phones.append("[")
    return phones


def normalize_japanese(text: str) -> str:
    return collapse_repeated_punctuation(text)


def japanese_g2p(norm_text: str) -> list[str]:
    """Phones of Japanese text (before the table check: may contain "#")."""
    openjtalk = _openjtalk()
    text = norm_text.replace("％", "パーセント").lower()
    pieces = _MARK_RE.split(text)
    marks = _MARK_RE.findall(text)
    phones: list[str] = []
    for i, piece in enumerate(pieces):
        if _JAPANESE_RE.match(piece):
            phones += prosody_phones(openjtalk.make_label(openjtalk.run_frontend(piece)))
        if i < len(marks) and marks[i] != " ":
            mark = marks[i].replace(" ", "")
            phones.append(_MARK_MAP.get(mark, mark))
    return phones
