"""Pinyin syllable -> the two GPT-SoVITS phones (initial, toned final).

This is the "opencpop-strict" convention of the official `opencpop-strict.txt`, derived here
as rules from pypinyin's strict initials/finals instead of a lookup file:

* every syllable is exactly two phones; syllables without an initial get a pseudo-initial:
  "AA"/"EE"/"OO" for a-/e-/o- syllables, "y" for i-/ü- syllables, "w" for u- syllables;
* y-syllables drop the "i" glide (ya -> y a, yao -> y ao) except when it is the whole vowel
  (yi, yin, ying); yan -> y En, ye -> y E; ü-syllables keep "v" (yu -> y v, yuan -> y van);
* w-syllables drop the "u" glide (wa -> w a, wei -> w ei), except wu -> w u;
* zhi/chi/shi/ri -> "ir", zi/ci/si -> "i0"; j/q/x + u is ü ("v");
* the contracted spellings ui, iu, un are used after an initial (pypinyin's strict uei, iou,
  uen).
"""

from __future__ import annotations

from typing import Final

from .errors import TextFrontendError
from .symbols import PINYIN_FINALS, TONES

_RETROFLEX: Final = frozenset({"zh", "ch", "sh", "r"})
_DENTAL_SIBILANTS: Final = frozenset({"z", "c", "s"})
_PALATALS: Final = frozenset({"j", "q", "x"})
_CONTRACTED: Final = {"uei": "ui", "iou": "iu", "uen": "un"}
_Y_REST: Final = {"an": "En", "e": "E"}
_VALID_FINALS: Final = frozenset(PINYIN_FINALS)


def _without_initial(final: str) -> tuple[str, str]:
    head = final[0]
    if head in "aeo":
        return {"a": "AA", "e": "EE", "o": "OO"}[head], final
    if head == "v":
        return "y", final
    if head == "i":
        if final in {"i", "in", "ing"}:
            return "y", final
        rest = final[1:]
        return "y", _Y_REST.get(rest, rest)
    if head == "u":
        return "w", "u" if final == "u" else final[1:]
    return "", final


def syllable_phones(initial: str, toned_final: str) -> tuple[str, str]:
    """(strict pypinyin initial, final + tone digit) -> (initial phone, final phone)."""
    final, tone = toned_final[:-1], toned_final[-1:]
    if tone not in TONES or not final:
        raise TextFrontendError(f"pinyin {initial + toned_final!r} has no tone 1-5")
    if not initial:
        phone_initial, phone_final = _without_initial(final)
    else:
        phone_initial, phone_final = initial, _CONTRACTED.get(final, final)
        if final == "i" and initial in _RETROFLEX:
            phone_final = "ir"
        elif final == "i" and initial in _DENTAL_SIBILANTS:
            phone_final = "i0"
        elif initial in _PALATALS and final.startswith("u"):
            phone_final = "v" + final[1:]
    if not phone_initial or phone_final not in _VALID_FINALS:
        raise TextFrontendError(
            f"pinyin {initial + toned_final!r} is not a Mandarin syllable of the phone table"
        )
    return phone_initial, phone_final + tone
