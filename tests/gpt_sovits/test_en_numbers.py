"""The English number speller against `inflect`, which the official front end calls.

`inflect` (7.6.0 made the official fixtures) is the reference here only: the front end no longer
imports it (its import takes 1-4 s). Every form the normaliser asks for is compared: cardinals
with and without "and", years in pairs, ordinals from digits and from words, suffixes.
"""

from __future__ import annotations

import random

import pytest

from voiceseal_models.gpt_sovits.text import en_numbers
from voiceseal_models.gpt_sovits.text.en_normalize import normalize_english

inflect = pytest.importorskip("inflect")


@pytest.fixture(scope="module")
def reference() -> object:
    return inflect.engine()


def _cardinals() -> list[int]:
    """Every integer below 20,000; 5,000 drawn at every length up to 36 digits; and the values
    around each power of ten, where groups and scale words change."""
    rng = random.Random(20261124)
    values = list(range(20_000))
    values += [rng.randrange(10 ** rng.randrange(5, 37)) for _ in range(5_000)]
    for k in range(3, 36):
        values += [10**k + d for d in (-101, -100, -1, 0, 1, 5, 20, 99, 100, 101)]
    return [*values, 10**36 - 101, 10**36 - 100, 10**36 - 1]  # the largest inflect spells


@pytest.mark.parametrize("andword", ["and", ""])
def test_cardinals_match_inflect(reference: object, andword: str) -> None:
    words = reference.number_to_words  # type: ignore[attr-defined]
    wrong = [
        (n, mine, theirs)
        for n in _cardinals()
        if (mine := en_numbers.cardinal(n, andword)) != (theirs := words(n, andword=andword))
    ]
    assert not wrong, wrong[:5]


def test_years_match_inflect_in_pairs(reference: object) -> None:
    words = reference.number_to_words  # type: ignore[attr-defined]
    for n in range(1000, 10_000):
        theirs = words(n, andword="", zero="oh", group=2).replace(", ", " ")
        assert en_numbers.year(n) == theirs, n


def test_ordinals_match_inflect(reference: object) -> None:
    words, ordinal = reference.number_to_words, reference.ordinal  # type: ignore[attr-defined]
    for n in [*range(3_000), 10**6 + 1, 10**9 + 12, 123_456_789_012]:
        for digits in (str(n), "0" + str(n)):
            assert en_numbers.ordinal_suffix(digits) == ordinal(digits), digits
            for suffix in ("st", "nd", "rd", "th"):
                assert en_numbers.ordinal_words(digits + suffix) == words(digits + suffix)
        spelt = words(n)
        assert en_numbers.ordinal_of_words(spelt) == ordinal(spelt), spelt


def test_integers_past_decillion_are_read_digit_by_digit(reference: object) -> None:
    """inflect has no scale word past decillion and raises, which failed the whole request."""
    big = 10**36 + 7
    with pytest.raises(inflect.NumOutOfRangeError):
        reference.number_to_words(big)  # type: ignore[attr-defined]
    assert en_numbers.cardinal(10**36 - 1).startswith("nine hundred and ninety-nine decillion")
    assert en_numbers.cardinal(big) == " ".join(["one", *["zero"] * 35, "seven"])
    assert normalize_english(f"id {big}.").startswith("id one zero zero")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        en_numbers.cardinal(-1)
    with pytest.raises(ValueError, match="four digits"):
        en_numbers.year(999)
