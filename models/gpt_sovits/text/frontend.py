"""Public entry points of the GPT-SoVITS text front end.

* `clean_text(text, language)`: one language, exactly the official `clean_text(text, lang,
  version)`: normalised text, phones, word2ph (Chinese only) and phone ids.
* `text_to_phones(text, language)`: what the TTS pipeline does for one synthesis segment:
  split mixed-language text into runs (see `language.py`), clean each run, concatenate, and
  retry once with a "." in front when fewer than 6 phones come out (the official rule: very
  short prompts are read badly otherwise).
* `split_sentences` (re-exported from `sentences.py`) cuts long input into segments first.

Bad input: empty or whitespace-only text, text with nothing speakable (only punctuation, or only
characters of unsupported scripts such as Cyrillic or emoji), or an unknown language raise
`TextFrontendError` with a message naming the problem. Unsupported characters inside otherwise
speakable text are removed, as the official normalisers do, and listed in `dropped` (and
logged) instead of failing the whole request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from .en_g2p import english_g2p
from .en_normalize import normalize_english
from .errors import TextFrontendError
from .ja_g2p import japanese_g2p, normalize_japanese
from .language import Language, RequestLanguage, split_by_language
from .symbols import PUNCTUATION, SymbolVersion, is_symbol, phones_to_ids
from .zh_g2p import chinese_g2p
from .zh_normalize import normalize_chinese

logger = logging.getLogger(__name__)

MIN_PHONES: Final = 6
_MIN_ENGLISH_PHONES: Final = 4
# Chinese pause symbols: "￥" -> SP2, "^" -> SP3 (the official "special" rule).
_ZH_SPECIAL_PAUSES: Final = (("￥", "SP2"), ("^", "SP3"))
_LANGUAGES: Final = ("en", "zh", "ja")


@dataclass(frozen=True)
class CleanedText:
    """One language run after cleaning.

    `word2ph[i]` is the number of phones of `norm_text[i]` (Chinese only; None otherwise),
    so `sum(word2ph) == len(phones)`.
    """

    norm_text: str
    phones: tuple[str, ...]
    word2ph: tuple[int, ...] | None
    phone_ids: tuple[int, ...]
    language: Language


@dataclass(frozen=True)
class PhoneSequence:
    """A synthesis segment: its cleaned runs and their concatenation."""

    runs: tuple[CleanedText, ...]
    dropped: tuple[str, ...]

    @property
    def phones(self) -> tuple[str, ...]:
        return tuple(p for run in self.runs for p in run.phones)

    @property
    def phone_ids(self) -> tuple[int, ...]:
        return tuple(i for run in self.runs for i in run.phone_ids)

    @property
    def norm_text(self) -> str:
        return "".join(run.norm_text for run in self.runs)


def _only_punctuation(phones: list[str]) -> bool:
    return all(p in PUNCTUATION for p in phones)


def _clean(text: str, language: Language, version: SymbolVersion) -> CleanedText | None:
    """Official per-language cleaning; None when nothing speakable is left."""
    word2ph: list[int] | None = None
    if language == "zh":
        special = next(((mark, sp) for mark, sp in _ZH_SPECIAL_PAUSES if mark in text), None)
        norm_text = normalize_chinese(text.replace(special[0], ",") if special else text)
        phones, word2ph = chinese_g2p(norm_text)
        if special:
            # Officially every comma phone of such a text becomes the pause symbol.
            phones = [special[1] if p == "," else p for p in phones]
    elif language == "en":
        norm_text = normalize_english(text)
        phones = english_g2p(norm_text)
        if phones and not _only_punctuation(phones) and len(phones) < _MIN_ENGLISH_PHONES:
            phones = [",", *phones]
    elif language == "ja":
        norm_text = normalize_japanese(text)
        phones = japanese_g2p(norm_text)
    else:
        raise TextFrontendError(
            f"unsupported language {language!r}; use one of {', '.join(_LANGUAGES)}"
        )
    if not phones or _only_punctuation(phones):
        return None
    phones = [p if is_symbol(p, version) else "UNK" for p in phones]
    return CleanedText(
        language=language,
        norm_text=norm_text,
        phones=tuple(phones),
        word2ph=tuple(word2ph) if word2ph is not None else None,
        phone_ids=tuple(phones_to_ids(phones, version)),
    )


def clean_text(text: str, language: Language, version: SymbolVersion = "v2") -> CleanedText:
    """Normalise and phonemise text of ONE language ("en", "zh" or "ja").

    Characters the language cannot read are removed by its normaliser (official behaviour).
    """
    if not text or not text.strip():
        raise TextFrontendError("text is empty")
    cleaned = _clean(text, language, version)
    if cleaned is None:
        raise TextFrontendError(
            f"nothing speakable in {language} text {text!r} "
            "(only punctuation or characters this language cannot read)"
        )
    return cleaned


def _phonemise(text: str, language: RequestLanguage, version: SymbolVersion) -> PhoneSequence:
    split = split_by_language(text, language)
    runs = [c for run in split.runs if (c := _clean(run.text, run.language, version)) is not None]
    return PhoneSequence(runs=tuple(runs), dropped=split.dropped)


def text_to_phones(
    text: str, language: RequestLanguage = "auto", version: SymbolVersion = "v2"
) -> PhoneSequence:
    """Phones of one synthesis segment in "en", "zh", "ja" or "auto" (mixed) mode."""
    if not text or not text.strip():
        raise TextFrontendError("text is empty")
    result = _phonemise(text, language, version)
    if result.dropped:
        logger.warning(
            "dropped characters the %r front end cannot read: %s",
            language,
            ", ".join(map(repr, result.dropped)),
        )
    if len(result.phones) < MIN_PHONES:
        result = _phonemise("." + text, language, version)
    if not result.runs:
        detail = (
            f"; unsupported characters: {', '.join(map(repr, result.dropped))}"
            if result.dropped
            else ""
        )
        raise TextFrontendError(
            f"nothing speakable in text {text!r} for language {language!r}{detail}"
        )
    return result
