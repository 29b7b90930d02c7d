"""English numbers in words, as the official front end spells them (through `inflect`).

The official `en_normalization` calls `inflect.engine().number_to_words` and `.ordinal`; the
released models were trained on its output, so these functions follow it word for word, commas
and hyphens included (``tests/gpt_sovits/test_en_numbers.py`` compares them with `inflect` on
every integer below 20,000, 5,000 drawn at every length up to 36 digits, the values around every
power of ten, every four-digit year and every ordinal form below 3,000). They exist because
importing `inflect` costs 1.1-4 s (`typeguard` instruments its functions at import), which the
first English request containing a digit used to pay. The platform's plain English front end
(`voiceseal_plugins.text_basic`) speaks numbers with them too, without the commas.

One departure: `inflect` refuses integers of more than 36 digits (it has no scale word past
decillion), which failed the whole request; `cardinal` reads them digit by digit instead.
"""

from __future__ import annotations

import re
from typing import Final

_UNITS: Final = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS: Final = (
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS: Final = (
    "",
    "",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
)
#: Scale words of the groups of three digits, least significant first.
_SCALES: Final = (
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
)
#: Word endings that change in the ordinal; any other word takes "th".
_ORDINAL_ENDINGS: Final = {
    "ty": "tieth",
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ORDINAL_ENDING_RE: Final = re.compile(rf"({'|'.join(_ORDINAL_ENDINGS)})\Z")
_SUFFIXES: Final = ("st", "nd", "rd", "th")


def _below_hundred(n: int) -> str:
    """1-99 as one word ("seven", "eleven", "forty-two")."""
    tens, units = divmod(n, 10)
    if tens == 1:
        return _TEENS[units]
    if tens and units:
        return f"{_TENS[tens]}-{_UNITS[units]}"
    return _TENS[tens] or _UNITS[units]


def _below_thousand(n: int, andword: str) -> str:
    """1-999 ("three hundred and five", or with andword "" "three hundred five")."""
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _below_hundred(rest)
    if not rest:
        return f"{_UNITS[hundreds]} hundred"
    return " ".join(w for w in (_UNITS[hundreds], "hundred", andword, _below_hundred(rest)) if w)


def cardinal(n: int, andword: str = "and") -> str:
    """A non-negative integer in words: groups of three digits separated by commas, except that
    a last group below one hundred is joined with ``andword`` ("one thousand and five", "one
    million, two hundred and three"). ``andword=""`` leaves the "and" out everywhere."""
    if n < 0:
        raise ValueError(f"cardinal() takes a non-negative integer, got {n}")
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_SCALES):
        return " ".join(_UNITS[int(d)] or "zero" for d in str(n))
    groups = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    parts = [
        " ".join(w for w in (_below_thousand(g, andword), _SCALES[i]) if w)
        for i, g in reversed(list(enumerate(groups)))
        if g
    ]
    if len(parts) > 1 and 0 < groups[0] < 100:
        last = parts.pop()
        parts[-1] = " ".join(w for w in (parts[-1], andword, last) if w)
    return ", ".join(parts)


def ordinal_of_words(words: str) -> str:
    """The ordinal of a number in words: its last word changes ("twenty-one" -> "twenty-first",
    "one hundred" -> "one hundredth")."""
    changed = _ORDINAL_ENDING_RE.sub(lambda m: _ORDINAL_ENDINGS[m.group(1)], words)
    return changed if changed != words else words + "th"


def ordinal_words(text: str) -> str:
    """Digits with an ordinal suffix ("21st", "3rd", also "3th") in words ("twenty-first"), the
    "and" kept as `inflect` keeps it ("one hundred and first")."""
    digits = text[:-2] if text[-2:] in _SUFFIXES else text
    return ordinal_of_words(cardinal(int(digits)))


def ordinal_suffix(digits: str) -> str:
    """Digits with their ordinal suffix, as written ("1" -> "1st", "12" -> "12th", "22" ->
    "22nd"); leading zeros stay."""
    n = int(digits)
    last_two = n % 100
    if 11 <= last_two <= 13:
        return digits + "th"
    return digits + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def year(n: int) -> str:
    """A year of four digits read in pairs, the second pair's leading zero as "oh" ("nineteen
    eighty-four", "nineteen oh five", "twenty ten"); the normaliser reads round hundreds and
    2000-2009 otherwise before it gets here."""
    if not 1000 <= n <= 9999:
        raise ValueError(f"year() takes four digits, got {n}")
    high, low = divmod(n, 100)
    if low == 0:
        second = "oh oh"
    elif low < 10:
        second = f"oh {_UNITS[low]}"
    else:
        second = _below_hundred(low)
    return f"{_below_hundred(high)} {second}"
