"""Built-in text front end for English: numbers, money, percentages, units, symbols, sentences.

Engines with their own front end (GPT-SoVITS) still receive text this plugin has normalised, which
only spells out what any English reader would say aloud.
"""

from __future__ import annotations

import re
from typing import Any

from voiceseal import hookimpl
from voiceseal.contracts import Capabilities, ComponentContext, Register
from voiceseal.text import split_plain
from voiceseal_models.gpt_sovits.text.en_numbers import cardinal, ordinal_of_words


def number_words(n: int) -> str:
    """An integer in words, in the plain style this front end speaks ("one thousand two hundred
    and five"): the GPT-SoVITS front end's speller without its commas between groups."""
    if n < 0:
        return "minus " + number_words(-n)
    return cardinal(n).replace(",", "")


def ordinal_words(n: int) -> str:
    return ordinal_of_words(number_words(n))


def _decimal(m: re.Match[str]) -> str:
    whole, frac = m.group(1).replace(",", ""), m.group(2)
    return number_words(int(whole)) + " point " + " ".join(number_words(int(d)) for d in frac)


def _money(m: re.Match[str]) -> str:
    symbol, whole, cents = m.group(1), m.group(2).replace(",", ""), m.group(3)
    unit = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny")}[symbol]
    n = int(whole)
    out = f"{number_words(n)} {unit[0]}{'' if n == 1 else 's'}"
    if cents and int(cents):
        c = int(cents.ljust(2, "0")[:2])
        sub = unit[1] if c == 1 else ("pence" if unit[1] == "penny" else unit[1] + "s")
        out += f" and {number_words(c)} {sub}"
    return out


_UNITS = {
    "km": "kilometres",
    "kg": "kilograms",
    "cm": "centimetres",
    "mm": "millimetres",
    "m": "metres",
    "g": "grams",
    "ms": "milliseconds",
    "s": "seconds",
    "h": "hours",
    "kHz": "kilohertz",
    "Hz": "hertz",
    "MB": "megabytes",
    "GB": "gigabytes",
    "%": "percent",
    "°C": "degrees Celsius",
    "°F": "degrees Fahrenheit",
}
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number "}


def normalize_english(text: str) -> str:
    t = text
    t = re.sub(r"([$€£])(\d[\d,]*)(?:\.(\d{1,2}))?", _money, t)
    t = re.sub(
        r"(\d[\d,]*)\s?(°C|°F|kHz|Hz|km|kg|cm|mm|ms|MB|GB|%)(?![A-Za-z])",
        lambda m: f"{m.group(1)} {_UNITS[m.group(2)]}",
        t,
    )
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), t)
    t = re.sub(r"\b(\d[\d,]*)\.(\d+)\b", _decimal, t)
    t = re.sub(
        r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b",
        lambda m: number_words(int(m.group().replace(",", ""))),
        t,
    )
    for sym, word in _SYMBOLS.items():
        t = t.replace(sym, word)
    return " ".join(t.split())


class BasicEnglishFrontend:
    name = "basic"
    version = "1"
    capabilities = Capabilities(languages=("en",))

    def normalize(self, text: str, language: str) -> str:
        return normalize_english(text) if language == "en" else text

    def split_sentences(self, text: str, language: str, max_chars: int) -> list[str]:
        return split_plain(text, max_chars)


def _factory(_ctx: ComponentContext) -> Any:
    return BasicEnglishFrontend()


@hookimpl
def register_text_frontends(register: Register) -> None:
    register(
        "basic",
        _factory,
        version="1",
        description="English numbers, money, units and symbols; sentence splitting",
    )
