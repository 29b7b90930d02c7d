"""The API-key format and its hashing.

A key reads ``vs_<role letter>_<lookup prefix>_<secret>``, e.g. ``vs_t_3f9a0c1d2b4e_Qm…``. The part
up to the lookup prefix is stored in clear (``api_keys.prefix``) so a request finds its row with
one indexed read; the whole key is stored only as HMAC-SHA256 under the server's pepper, so a
leaked table (or backup) does not yield usable keys and cannot be brute-forced offline without
the pepper. The role letter is informational: the row's role is the authority.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ROLE_LETTERS = {"admin": "a", "tenant": "t", "auditor": "r"}
_PREFIX_HEX = 12
_SECRET_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: ``secret`` is the full key, to be shown once and never stored."""

    prefix: str
    secret: str


def generate(role: str) -> NewKey:
    try:
        letter = ROLE_LETTERS[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; expected one of {sorted(ROLE_LETTERS)}") from None
    prefix = f"vs_{letter}_{secrets.token_hex(_PREFIX_HEX // 2)}"
    return NewKey(prefix=prefix, secret=f"{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}")


def prefix_of(key: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one of ours."""
    parts = key.split("_", 3)
    if len(parts) != 4 or parts[0] != "vs" or parts[1] not in ROLE_LETTERS.values():
        return None
    if len(parts[2]) != _PREFIX_HEX or not parts[3]:
        return None
    return "_".join(parts[:3])


def digest(pepper: bytes, key: str) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def matches(pepper: bytes, key: str, stored_digest: str) -> bool:
    # Constant time: the comparison must not reveal how many leading characters matched.
    return hmac.compare_digest(digest(pepper, key), stored_digest)
