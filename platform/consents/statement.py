"""The consent statement a speaker reads aloud, its nonce, and matching it in a transcript.

The nonce is a run of random digits read one by one. Its SHA-256 is stored (unique: no nonce
is ever issued twice); the digits themselves live only in the statement given to the admin.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass

#: Digits, spoken one by one: the most robust vocabulary for a small recogniser (a four-word
#: nonce lost words to Whisper tiny.en on clean speech). 8 digits = 26.6 bits; with single use, a
#: 30-minute expiry and three attempts per statement, guessing is hopeless.
NONCE_DIGITS = 8


def new_nonce(n_digits: int = NONCE_DIGITS) -> str:
    """Digits in groups of four ("4 7 2 9, 1 5 0 3"): people and voices pause between groups."""
    # No digit repeats its neighbour: recognisers merge "8 8" into one "8" (25.5 bits for 8 digits).
    digits: list[str] = []
    while len(digits) < n_digits:
        d = str(secrets.randbelow(10))
        if not digits or d != digits[-1]:
            digits.append(d)
    groups = [" ".join(digits[i : i + 4]) for i in range(0, n_digits, 4)]
    return ", ".join(groups)


#: A digit may be misheard, dropped or added once; a random 8-digit string comes this close to a
#: given nonce with probability about 1.6e-6 (≈162 neighbours out of 10^8).
MAX_NONCE_EDITS = 1
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _approximate_occurrence(needle: list[str], haystack: list[str]) -> int:
    """Fewest edits turning ``needle`` into some contiguous run of ``haystack`` (semi-global)."""
    prev = list(range(len(needle) + 1))
    best = prev[-1]
    for h in haystack:
        cur = [0]
        for i, n in enumerate(needle, 1):
            cur.append(min(prev[i] + 1, cur[i - 1] + 1, prev[i - 1] + (n != h)))
        best = min(best, cur[-1])
        prev = cur
    return best


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(normalize_words(nonce).encode()).hexdigest()


def build_statement(speaker: str, tenants: list[str], purposes: list[str], nonce: str) -> str:
    who = ", ".join(tenants) if tenants else "VoiceSeal"
    why = ", ".join(purposes) if purposes else "any purpose"
    return (
        f"I am {speaker}. I agree that {who} may use a synthetic version of my voice "
        f"for {why}. My confirmation number is {nonce}."
    )


_NUM = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}


def normalize_words(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"\d", lambda m: f" {_NUM[m.group()]} ", t)
    t = re.sub(r"[^a-z' ]+", " ", t).replace("'", "")
    return " ".join(t.split())


@dataclass(frozen=True)
class StatementMatch:
    statement_ratio: float
    nonce_found: bool
    transcript: str

    def as_dict(self) -> dict[str, object]:
        return {
            "statement_ratio": round(self.statement_ratio, 4),
            "nonce_found": self.nonce_found,
            "transcript": self.transcript,
        }


def match(statement: str, nonce: str, transcript: str) -> StatementMatch:
    """How much of the statement was said (word-sequence ratio) and whether the nonce's digits
    were said in order (at most :data:`MAX_NONCE_EDITS` digit edits, for the recogniser's slips)."""
    said = normalize_words(transcript).split()
    expected = normalize_words(statement).split()
    sm = difflib.SequenceMatcher(a=expected, b=said, autojunk=False)
    ratio = sum(b.size for b in sm.get_matching_blocks()) / max(len(expected), 1)
    wanted = [w for w in normalize_words(nonce).split() if w in _DIGIT_WORDS]
    heard = [w for w in said if w in _DIGIT_WORDS]
    found = bool(wanted) and _approximate_occurrence(wanted, heard) <= MAX_NONCE_EDITS
    return StatementMatch(ratio, found, transcript)
