"""Reading Arabic numbers aloud in Mandarin (the verbalisation rules of PaddleSpeech's
`zh_normalization`, which GPT-SoVITS uses): cardinals with 十/百/千/万/亿, digit strings, and
decimals read digit by digit after 点."""

from __future__ import annotations

from typing import Final

DIGITS: Final = "零一二三四五六七八九"
# Place names by number of trailing digits they stand for.
_PLACES: Final = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))


def read_digits(digits: str, yao_for_one: bool = False) -> str:
    """ "2024" -> "二零二四"; with `yao_for_one`, 1 is read 幺 as in phone numbers."""
    text = "".join(DIGITS[int(d)] for d in digits)
    return text.replace("一", "幺") if yao_for_one else text


def _cardinal_parts(digits: str, mark_gap: bool = True) -> list[str]:
    stripped = digits.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        # A skipped place inside a larger number is read as one 零 ("1005" -> 一千零五).
        gap = mark_gap and len(stripped) < len(digits)
        return [DIGITS[0], DIGITS[int(stripped)]] if gap else [DIGITS[int(stripped)]]
    width, name = next((w, n) for w, n in _PLACES if w < len(stripped))
    return [*_cardinal_parts(digits[:-width]), name, *_cardinal_parts(digits[-width:])]


def read_cardinal(digits: str) -> str:
    """ "25" -> "二十五", "10" -> "十", "0" -> "零", "10086" -> "一万零八十六"."""
    if not digits:
        return ""
    digits = digits.lstrip("0")
    if not digits:
        return DIGITS[0]
    parts = _cardinal_parts(digits)
    if len(parts) >= 2 and parts[0] == DIGITS[1] and parts[1] == "十":
        parts = parts[1:]  # 一十五 is said 十五
    return "".join(parts)


def read_number(value: str) -> str:
    """An unsigned integer or decimal: "25.5" -> "二十五点五", ".5" -> "零点五".

    Trailing zeros of the fraction are dropped except one ("3.20" -> 三点二零, as officially).
    """
    whole, _, fraction = value.partition(".")
    if value.count(".") > 1:
        raise ValueError(f"number {value!r} has more than one decimal point")
    text = read_cardinal(whole)
    fraction = fraction.rstrip("0") + "0" if fraction.endswith("0") else fraction
    if fraction:
        text = (text or DIGITS[0]) + "点" + read_digits(fraction)
    return text
