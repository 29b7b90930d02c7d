"""The consent statement a speaker reads aloud, its nonce, and matching it in a transcript.

The nonce is four words drawn from a list of short, common, acoustically distinct English words
(easy for a small recogniser, hard to guess: 128^4 = 2^28 combinations, single use, expiring).
Only its SHA-256 is stored; the words exist in the statement given to the admin.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass

NONCE_WORDS = (
    "apple",
    "river",
    "orange",
    "castle",
    "pencil",
    "garden",
    "silver",
    "window",
    "rocket",
    "candle",
    "forest",
    "bridge",
    "yellow",
    "monkey",
    "guitar",
    "planet",
    "button",
    "marble",
    "tiger",
    "violet",
    "island",
    "hammer",
    "jacket",
    "lemon",
    "mirror",
    "needle",
    "ocean",
    "pepper",
    "rabbit",
    "saddle",
    "tunnel",
    "velvet",
    "walnut",
    "zebra",
    "anchor",
    "basket",
    "cactus",
    "dragon",
    "engine",
    "falcon",
    "ginger",
    "harbor",
    "igloo",
    "jungle",
    "kettle",
    "ladder",
    "magnet",
    "napkin",
    "oyster",
    "parrot",
    "puzzle",
    "quarter",
    "ribbon",
    "salmon",
    "turtle",
    "umbrella",
    "valley",
    "wagon",
    "blanket",
    "copper",
    "desert",
    "feather",
    "glacier",
    "helmet",
    "kitten",
    "lantern",
    "meadow",
    "nickel",
    "orchard",
    "pillow",
    "rainbow",
    "sailor",
    "thunder",
    "trumpet",
    "vessel",
    "whistle",
    "biscuit",
    "camera",
    "dolphin",
    "emerald",
    "fountain",
    "gravel",
    "horizon",
    "iron",
    "jelly",
    "koala",
    "lobster",
    "mango",
    "noodle",
    "olive",
    "panda",
    "radio",
    "shadow",
    "tomato",
    "unicorn",
    "violin",
    "winter",
    "bamboo",
    "cherry",
    "donkey",
    "eagle",
    "fabric",
    "goose",
    "honey",
    "ivory",
    "jigsaw",
    "kayak",
    "lizard",
    "muffin",
    "nutmeg",
    "octopus",
    "pirate",
    "raisin",
    "spider",
    "tractor",
    "waffle",
    "badger",
    "cobalt",
    "dinner",
    "elbow",
    "flannel",
    "gorilla",
    "hazel",
    "penguin",
    "rooster",
    "sunset",
    "timber",
    "beacon",
)
assert len(set(NONCE_WORDS)) == len(NONCE_WORDS) >= 128


def new_nonce(n_words: int = 4) -> str:
    return " ".join(secrets.choice(NONCE_WORDS) for _ in range(n_words))


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(normalize_words(nonce).encode()).hexdigest()


def build_statement(speaker: str, tenants: list[str], purposes: list[str], nonce: str) -> str:
    who = ", ".join(tenants) if tenants else "VoiceSeal"
    why = ", ".join(purposes) if purposes else "any purpose"
    return (
        f"I am {speaker}. I agree that {who} may use a synthetic version of my voice "
        f"for {why}. My confirmation words are {nonce}."
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
    """How much of the statement was said (word-sequence ratio) and whether the nonce words were
    said in order as a contiguous run (allowing nothing between them but the recogniser's noise)."""
    said = normalize_words(transcript).split()
    expected = normalize_words(statement).split()
    sm = difflib.SequenceMatcher(a=expected, b=said, autojunk=False)
    ratio = sum(b.size for b in sm.get_matching_blocks()) / max(len(expected), 1)
    words = normalize_words(nonce).split()
    found = any(said[i : i + len(words)] == words for i in range(len(said) - len(words) + 1))
    return StatementMatch(ratio, found, transcript)
