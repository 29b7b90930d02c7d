"""Keyed pseudo-random streams: every secret choice of the watermark comes from here.

BLAKE2b in keyed mode is a PRF; running it over ``label || counter`` gives an arbitrarily long
stream that nobody without the key can predict, and a different label gives an independent one.
No global random state is touched, so two keys never interfere and results are reproducible.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

_PERSON = b"voiceseal-wm-v1"
_BLOCK = 64  # bytes per BLAKE2b call


def derive_key(key: bytes) -> bytes:
    """Compress a key of any length to the 64 bytes BLAKE2b accepts as a MAC key."""
    if not key:
        raise ValueError("the watermark key is empty: set VOICESEAL_WATERMARK_KEY")
    return hashlib.blake2b(key, digest_size=64, person=_PERSON).digest()


def stream(key: bytes, label: str, n_bytes: int) -> bytes:
    """``n_bytes`` pseudo-random bytes for ``label`` (counter mode over keyed BLAKE2b)."""
    k = derive_key(key)
    out = bytearray()
    counter = 0
    tag = label.encode()
    while len(out) < n_bytes:
        h = hashlib.blake2b(key=k, digest_size=_BLOCK, person=_PERSON)
        h.update(tag + b"\x00" + counter.to_bytes(8, "little"))
        out += h.digest()
        counter += 1
    return bytes(out[:n_bytes])


def signs(key: bytes, label: str, n: int) -> npt.NDArray[np.float64]:
    """``n`` independent ±1 values."""
    bits = np.unpackbits(np.frombuffer(stream(key, label, (n + 7) // 8), dtype=np.uint8))[:n]
    return 1.0 - 2.0 * bits.astype(np.float64)


def permutation(key: bytes, label: str, n: int) -> npt.NDArray[np.int64]:
    """A keyed permutation of ``range(n)`` (argsort of 64-bit keyed values; ties have 2^-64 odds)."""
    values = np.frombuffer(stream(key, label, 8 * n), dtype="<u8")
    return np.argsort(values, kind="stable").astype(np.int64)


def mac(key: bytes, message: bytes, n_bytes: int) -> bytes:
    """A keyed tag of ``n_bytes`` over ``message`` (BLAKE2b MAC, truncated)."""
    h = hashlib.blake2b(
        message, key=derive_key(key), digest_size=max(n_bytes, 1), person=b"voiceseal-tag"
    )
    return h.digest()[:n_bytes]
