"""The GPT-SoVITS phoneme tables: v1 (322 symbols) and v2+ (732 symbols).

A phone id is an index into one of these lists, and it is baked into every checkpoint's
`text_embedding` / `ar_text_embedding` rows, so the order must be exactly the official one.
The tables are rebuilt here from their parts, by the official construction rule:

* v1 = `sorted(set(pad + pinyin initials + toned pinyin finals + Japanese + punctuation/specials
  + ARPAbet))`. Python sorts by code point, so upper-case ARPAbet and the "AA"/"EE"/"OO"
  zero-initial markers come before the lower-case pinyin/Japanese symbols.
* v2 = v1 + `["[", "]"]` (Japanese pitch rise/fall) + the sorted Korean jamo (+ 空, 停)
  + the sorted Cantonese symbols.

The Cantonese tail (ids 353..731) is NOT reconstructed: the official list is a data-driven set
of 379 "Y"-prefixed Jyutping parts (including irregular toneless and split entries) that no
phonological rule reproduces. Those slots are filled with named reserved entries so that the
table still has 732 rows and every id below 353 is exact; this front end never emits them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Literal

from .errors import TextFrontendError

SymbolVersion = Literal["v1", "v2"]

PAD: Final = "_"
PUNCTUATION: Final = ("!", "?", "…", ",", ".", "-")
# SP/SP2/SP3 are pauses (SP2/SP3 are produced for "￥" / "^" in Chinese), UNK marks a phone
# outside the table.
SPECIALS: Final = ("SP", "SP2", "SP3", "UNK")

# Pinyin initials; "AA", "EE", "OO" stand in for the missing initial of a-/e-/o- syllables.
PINYIN_INITIALS: Final = (
    "AA", "EE", "OO",
    "b", "c", "ch", "d", "f", "g", "h", "j", "k", "l", "m", "n",
    "p", "q", "r", "s", "sh", "t", "w", "x", "y", "z", "zh",
)  # fmt: skip
# Opencpop-style finals: "ir" after zh/ch/sh/r, "i0" after z/c/s, "E" for ye, "En" for yan,
# "v*" for ü.
PINYIN_FINALS: Final = (
    "E", "En", "a", "ai", "an", "ang", "ao", "e", "ei", "en", "eng", "er",
    "i", "i0", "ia", "ian", "iang", "iao", "ie", "in", "ing", "iong", "ir", "iu",
    "o", "ong", "ou", "u", "ua", "uai", "uan", "uang", "ui", "un", "uo",
    "v", "van", "ve", "vn",
)  # fmt: skip
TONES: Final = ("1", "2", "3", "4", "5")

# pyopenjtalk phonemes the models were trained with ("cl" = sokuon, "N" = moraic nasal,
# upper-case vowels = devoiced).
JAPANESE: Final = (
    "I", "N", "U", "a", "b", "by", "ch", "cl", "d", "dy", "e", "f", "g", "gy", "h", "hy",
    "i", "j", "k", "ky", "m", "my", "n", "ny", "o", "p", "py", "r", "ry", "s", "sh", "t",
    "ts", "u", "v", "w", "y", "z",
)  # fmt: skip
JAPANESE_PITCH: Final = ("[", "]")

ARPABET_CONSONANTS: Final = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S",
    "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
ARPABET_VOWELS: Final = (
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
)  # fmt: skip
# The official set also carries two stress-less vowels (CMUdict never produces them).
ARPABET_UNSTRESSED_EXTRAS: Final = ("ER", "IH")

KOREAN_CONSONANTS: Final = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
KOREAN_VOWELS: Final = "ㅏㅐㅓㅔㅗㅜㅡㅣ"
# 空 = word gap, 停 = pause, as the official Korean cleaner emits them.
KOREAN_PAUSES: Final = "空停"

CANTONESE_SLOTS: Final = 379
CANTONESE_RESERVED_PREFIX: Final = "<yue-reserved-"


def arpabet_symbols() -> tuple[str, ...]:
    """The 71 ARPAbet symbols: consonants, vowels with stress 0/1/2, and the two extras."""
    stressed = tuple(vowel + stress for vowel in ARPABET_VOWELS for stress in "012")
    return ARPABET_CONSONANTS + stressed + ARPABET_UNSTRESSED_EXTRAS


def toned_pinyin_finals() -> tuple[str, ...]:
    return tuple(final + tone for tone in TONES for final in PINYIN_FINALS)


def _build_v1() -> tuple[str, ...]:
    parts: Iterable[str] = (
        PAD,
        *PINYIN_INITIALS,
        *toned_pinyin_finals(),
        *JAPANESE,
        *PUNCTUATION,
        *SPECIALS,
        *arpabet_symbols(),
    )
    return tuple(sorted(set(parts)))


def _build_v2(v1: Sequence[str]) -> tuple[str, ...]:
    korean = sorted(set(KOREAN_CONSONANTS + KOREAN_VOWELS + KOREAN_PAUSES))
    first_cantonese = len(v1) + len(JAPANESE_PITCH) + len(korean)
    cantonese = [
        f"{CANTONESE_RESERVED_PREFIX}{first_cantonese + i}>" for i in range(CANTONESE_SLOTS)
    ]
    return (*v1, *JAPANESE_PITCH, *korean, *cantonese)


SYMBOLS_V1: Final[tuple[str, ...]] = _build_v1()
SYMBOLS_V2: Final[tuple[str, ...]] = _build_v2(SYMBOLS_V1)
_TABLES: Final = {"v1": SYMBOLS_V1, "v2": SYMBOLS_V2}
_INDEX: Final = {name: {s: i for i, s in enumerate(table)} for name, table in _TABLES.items()}


def symbol_table(version: SymbolVersion = "v2") -> tuple[str, ...]:
    """The full symbol list of a table version (v2 is used by v2, v2Pro(Plus), v3 and v4)."""
    try:
        return _TABLES[version]
    except KeyError:
        raise TextFrontendError(
            f"unknown symbol table version {version!r}; use 'v1' or 'v2'"
        ) from None


def is_symbol(phone: str, version: SymbolVersion = "v2") -> bool:
    symbol_table(version)
    return phone in _INDEX[version] and not phone.startswith(CANTONESE_RESERVED_PREFIX)


def phones_to_ids(phones: Sequence[str], version: SymbolVersion = "v2") -> list[int]:
    """Map phones to ids (the official `cleaned_text_to_sequence`); unknown phones are an error.

    Callers replace out-of-table phones by "UNK" first, as the official cleaner does.
    """
    symbol_table(version)  # validates the version name
    index = _INDEX[version]
    ids: list[int] = []
    for phone in phones:
        if phone.startswith(CANTONESE_RESERVED_PREFIX) or phone not in index:
            raise TextFrontendError(f"phone {phone!r} is not in the {version} symbol table")
        ids.append(index[phone])
    return ids


def ids_to_phones(ids: Sequence[int], version: SymbolVersion = "v2") -> list[str]:
    table = symbol_table(version)
    out: list[str] = []
    for i in ids:
        if not 0 <= i < len(table):
            raise TextFrontendError(
                f"phone id {i} is outside the {version} table (0..{len(table) - 1})"
            )
        out.append(table[i])
    return out
