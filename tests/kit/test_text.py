"""English normalisation and sentence splitting (the built-in `basic` text front end)."""

from __future__ import annotations

import pytest

from voiceseal.text import split_plain
from voiceseal_plugins.text_basic import normalize_english, number_words, ordinal_words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (45, "forty-five"),
        (100, "one hundred"),
        (2024, "two thousand and twenty-four"),
        (1_000_001, "one million and one"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_ordinals() -> None:
    assert [ordinal_words(n) for n in (1, 2, 3, 12, 20, 21)] == [
        "first",
        "second",
        "third",
        "twelfth",
        "twentieth",
        "twenty-first",
    ]


def test_normalize_money_units_symbols() -> None:
    assert normalize_english("It costs $3.50 & weighs 2kg.") == (
        "It costs three dollars and fifty cents and weighs two kilograms."
    )
    assert normalize_english("Up 12% on the 3rd day, 1,250 users.") == (
        "Up twelve percent on the third day, one thousand two hundred and fifty users."
    )
    assert normalize_english("pi is 3.14") == "pi is three point one four"


def test_split_long_text_never_truncates() -> None:
    text = " ".join(["word"] * 400) + ". Short one! And a question?"
    parts = split_plain(text, 100)
    assert all(len(p) <= 100 for p in parts)
    # Every word survives the split, in order.
    assert " ".join(parts).replace(".", "").split() == text.replace(".", "").split()
    assert parts[-2:] == ["Short one!", "And a question?"]
