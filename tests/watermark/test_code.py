"""Keyed streams, tag and convolutional code, and the false-positive bound the detector enforces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voiceseal_plugins.watermark import code, detect, layout, prf


def test_prf_is_deterministic_and_keyed() -> None:
    assert prf.stream(b"k", "x", 100) == prf.stream(b"k", "x", 100)
    assert prf.stream(b"k", "x", 100) != prf.stream(b"k2", "x", 100)
    assert prf.stream(b"k", "x", 100) != prf.stream(b"k", "y", 100)
    assert prf.stream(b"k", "x", 200)[:100] == prf.stream(b"k", "x", 100)
    perm = prf.permutation(b"k", "p", 1000)
    assert sorted(perm.tolist()) == list(range(1000))
    s = prf.signs(b"k", "s", 10000)
    assert set(np.unique(s).tolist()) == {-1.0, 1.0}
    assert abs(float(s.mean())) < 0.05


def test_layout_depends_on_key() -> None:
    a = layout.Layout.from_key(b"a", code.N_SYMBOLS)
    b = layout.Layout.from_key(b"b", code.N_SYMBOLS)
    assert not np.array_equal(a.chips, b.chips)
    assert not np.array_equal(a.sync, b.sync)
    counts = np.bincount(a.symbol[a.symbol >= 0], minlength=code.N_SYMBOLS)
    assert counts.min() >= counts.max() - 1  # every code symbol gets the same share of tiles


def test_code_corrects_errors_and_tag_rejects_noise() -> None:
    rng = np.random.default_rng(0)
    bits = code.frame_payload(b"key", b"\x01\x02\x03\x04")
    symbols = code.encode(bits)
    assert len(symbols) == code.N_SYMBOLS
    noisy = symbols + rng.normal(0, 0.7, len(symbols))
    decoded, _ = code.viterbi(noisy)
    assert code.check_payload(b"key", decoded) == b"\x01\x02\x03\x04"
    assert code.check_payload(b"other key", decoded) is None
    accepted = sum(
        code.check_payload(b"key", code.viterbi(rng.normal(0, 1, code.N_SYMBOLS))[0]) is not None
        for _ in range(300)
    )
    assert accepted == 0  # 2^-16 per try


def test_payload_size_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly 4 bytes"):
        code.frame_payload(b"k", b"12345")


def test_thresholds_meet_the_false_positive_bound() -> None:
    own, search = detect.thresholds()
    tag = 2.0**-code.TAG_BITS
    total = detect.hypotheses_per_speed() * math.exp(-own * own / 2) * tag
    total += detect.speed_search_hypotheses() * math.exp(-search * search / 2) * tag
    assert total <= detect.FALSE_POSITIVE_BOUND * (1 + 1e-9)
    assert detect.chance(own, at_own_speed=True) <= detect.FALSE_POSITIVE_BOUND
