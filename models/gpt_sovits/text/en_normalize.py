"""English text normalisation with the behaviour of GPT-SoVITS `en_normalization/expend.py`.

Digits, money, times, units, fractions and ordinals are spelt out in words; everything that is
not a letter, an apostrophe or one of `.,?!-` is then removed. The official quirks are kept on
purpose because the released models were trained on text normalised this way:

* "3:30 pm" becomes "three thirty a.m. pm": the time rule adds a.m./p.m. from the 24-hour
  value and ignores an am/pm written after it.
* Years between 1001 and 2999 are read in pairs ("twenty twenty-four"), 2001..2009 as
  "two thousand N".
* Only "。", "！", "？" are mapped to ASCII (the official table also lists ";:" and quotes, but
  as regex-escaped strings that never match); other punctuation is simply dropped.
* Capital letters inside a word are split off ("GPT-SoVITS" -> "G P T- So V I T S"), so that
  acronyms are spelt letter by letter.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final

from .en_numbers import cardinal, ordinal_of_words, ordinal_suffix, ordinal_words, year
from .symbols import PUNCTUATION

_UNITS: Final = {
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"),
    "L": ("liter", "liters"),
    "tbsp": ("tablespoon", "tablespoons"),
    "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
}
_ARITHMETIC_WORDS: Final = {
    "+": " plus ",
    "-": " minus ",
    "×": " times ",
    "÷": " divided by ",
    "=": " Equals ",
}
_FULL_WIDTH_ENDINGS: Final = {"。": ".", "！": "!", "？": "?"}

_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = (
    rf"(?:-?\d+(?:\.\d+)?[{_SUPERSCRIPTS}]*|\.\d+[{_SUPERSCRIPTS}]*|[A-Za-z][{_SUPERSCRIPTS}]*)"
)
_ARITHMETIC_RE: Final = re.compile(rf"({_OPERAND})\s+([-+×÷=])\s+({_OPERAND})")
_NUMBERED_ITEM_RE: Final = re.compile(r"\b([0-9]+)\. ")
_NEGATIVE_RE: Final = re.compile(r"(^|\s+)-(\d+)")
_THOUSANDS_RE: Final = re.compile(r"([0-9][0-9,]+[0-9])")
_TIME_RE: Final = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_UNIT_RE: Final = re.compile(r"\b([0-9]+(\.[0-9]+)?(m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F))\b")
_CURRENCY_BEFORE_RE: Final = {
    "£": re.compile(r"£([0-9.,]*[0-9]+)"),
    "$": re.compile(r"\$([0-9.,]*[0-9]+)"),
}
_CURRENCY_AFTER_RE: Final = {
    "£": re.compile(r"([0-9.,]*[0-9]+)£"),
    "$": re.compile(r"([(0-9.,]*[0-9]+)\$"),
}
_CURRENCY_NAMES: Final = {
    "£": ("pound", "pounds", "penny", "pence"),
    "$": ("dollar", "dollars", "cent", "cents"),
}
_DECIMAL_RE: Final = re.compile(r"([0-9]+\.\s*[0-9]+)")
_FRACTION_RE: Final = re.compile(r"([0-9]+/[0-9]+)")
_ORDINAL_RE: Final = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER_RE: Final = re.compile(r"[0-9]+")
_NOT_SPEAKABLE_RE: Final = re.compile(r"[^ A-Za-z'.,?!\-]")
_INNER_CAPITAL_RE: Final = re.compile(r"(?<!^)(?<!\s)([A-Z])")
_PUNCT_CLASS: Final = "".join(re.escape(p) for p in PUNCTUATION)
# A punctuation run (or a punctuation mark after a space) keeps only its first character, so that
# "..." or "?!" cannot leak a different rhythm from the reference text.
_REPEATED_PUNCT_RE: Final = re.compile(rf"([{_PUNCT_CLASS}\s])([{_PUNCT_CLASS}])+")


def _numbered_item(m: re.Match[str]) -> str:
    return ordinal_suffix(m.group(1)) + ", "


def _arithmetic(m: re.Match[str]) -> str:
    return m.group(1) + _ARITHMETIC_WORDS[m.group(2)] + m.group(3)


def _negative(m: re.Match[str]) -> str:
    # The official rule also swallows the space before the sign ("is -5" -> "isnegative 5");
    # we keep it, since a merged word can only be mispronounced.
    return f"{m.group(1)}negative {m.group(2)}"


def _time(m: re.Match[str]) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    if minutes == 0:
        return f"{cardinal(hours)} o'clock {period}"
    return f"{cardinal(hours)} {cardinal(minutes)} {period}"


def _unit(m: re.Match[str]) -> str:
    unit = m.group(3)
    # "1.5 h" is plural; only an exact integer 1 takes the singular.
    value = int(m.group(1).replace(unit, "").replace(".", ""))
    singular = m.group(2) is None and value == 1
    return m.group(1).replace(unit, " " + _UNITS[unit][0 if singular else 1])


def _currency(symbol: str) -> Any:
    one_major, many_major, one_minor, many_minor = _CURRENCY_NAMES[symbol]

    def expand(m: re.Match[str]) -> str:
        amount = m.group(1)
        parts = amount.split(".")
        if len(parts) > 2:
            return f"{amount} {many_major}"
        major = int(parts[0]) if parts[0] else 0
        minor = int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
        major_text = f"{major} {one_major if major == 1 else many_major}"
        minor_text = f"{minor} {one_minor if minor == 1 else many_minor}"
        if major and minor:
            return f"{major_text} and {minor_text}"
        if major:
            return major_text
        if minor:
            return minor_text
        return f"zero {many_major}"

    return expand


def _decimal(m: re.Match[str]) -> str:
    whole, fraction = m.group(1).split(".")
    return whole + " point " + " ".join(fraction)


def _fraction(m: re.Match[str]) -> str:
    numerator, denominator = (int(x) for x in m.group(0).split("/"))
    spoken = cardinal(numerator)
    if denominator == 1:
        return spoken
    if denominator == 2:
        return f"{spoken} {'half' if numerator == 1 else 'halves'}"
    ordinal = ordinal_of_words(cardinal(denominator))
    return f"{spoken} {ordinal}{'s' if numerator > 1 else ''}"


def _ordinal(m: re.Match[str]) -> str:
    return ordinal_words(m.group(0))


def _integer(m: re.Match[str]) -> str:
    value = int(m.group(0))
    if 1000 < value < 3000:
        if value == 2000:
            return "two thousand"
        if 2000 < value < 2010:
            return "two thousand " + cardinal(value % 100)
        if value % 100 == 0:
            return cardinal(value // 100) + " hundred"
        return year(value)
    return cardinal(value, andword="")


def collapse_repeated_punctuation(text: str) -> str:
    return _REPEATED_PUNCT_RE.sub(r"\1", text)


def normalize_english(text: str) -> str:
    """Spell out an English sentence the way GPT-SoVITS does before G2P."""
    for full, ascii_mark in _FULL_WIDTH_ENDINGS.items():
        text = text.replace(full, ascii_mark)
    text = _NUMBERED_ITEM_RE.sub(_numbered_item, text)
    while _ARITHMETIC_RE.search(text):
        text = _ARITHMETIC_RE.sub(_arithmetic, text)
    text = _NEGATIVE_RE.sub(_negative, text)
    text = _THOUSANDS_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME_RE.sub(_time, text)
    text = _UNIT_RE.sub(_unit, text)
    for symbol in ("£", "$"):
        text = _CURRENCY_BEFORE_RE[symbol].sub(_currency(symbol), text)
        text = _CURRENCY_AFTER_RE[symbol].sub(_currency(symbol), text)
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _FRACTION_RE.sub(_fraction, text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    text = _INTEGER_RE.sub(_integer, text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = _NOT_SPEAKABLE_RE.sub("", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    text = _INNER_CAPITAL_RE.sub(r" \1", text)
    return collapse_repeated_punctuation(text)
