"""Keyed streams, tag and convolutional code, and the false-positive bound the detector enforces."""

from __future__ import annotations

import itertools
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
    assert accepted == 0  # 2^-24 per try


def test_payload_size_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly 4 bytes"):
        code.frame_payload(b"k", b"12345")


def test_settings_meet_the_false_positive_bound() -> None:
    tag = 2.0**-code.TAG_BITS
    own, search = detect.thresholds()
    # Per stage: at most DECODE_CANDIDATES decodes, and on average at most H exp(-tau^2/2)
    # hypotheses reach the threshold; each decode passes the tag with 2^-TAG_BITS.
    # The clip's own speed is read twice (plainly, then time-smoothed): two stages.
    assert detect.OWN_SPEED_READINGS == 2
    per_stage = [
        min(detect.DECODE_CANDIDATES, h * math.exp(-tau * tau / 2)) * tag
        for h, tau in (
            (detect.hypotheses_per_speed(), own),
            (detect.hypotheses_per_speed(), own),
            (detect.speed_search_hypotheses(), search),
        )
    ]
    assert detect.false_positive_bound() == pytest.approx(sum(per_stage))
    assert detect.false_positive_bound() <= detect.FALSE_POSITIVE_BOUND
    # Confidence: a stronger sync statistic never means a larger chance, and a strong one is
    # far below the per-clip bound.
    zs = np.linspace(0.0, 12.0, 49)
    chances = [detect.chance(float(z)) for z in zs]
    assert all(a >= b for a, b in itertools.pairwise(chances))
    assert chances[0] <= detect.FALSE_POSITIVE_BOUND
    assert detect.chance(10.0) < 1e-12


def test_hypothesis_counts_follow_the_search_grid() -> None:
    assert detect.hypotheses_per_speed() == 4 * layout.BLOCK_FRAMES
    coarse = detect._coarse_speeds()
    assert coarse.min() == pytest.approx(detect.SPEED_RANGE[0])
    assert coarse.max() == pytest.approx(detect.SPEED_RANGE[1])
    assert np.all(np.diff(np.log(coarse)) <= detect.COARSE_SPEED_STEP + 1e-12)
    # The fine grid around each coarse speed reaches half-way to its neighbours.
    reach = detect.FINE_SPEED_SPAN * detect.FINE_SPEED_STEP
    assert reach >= np.diff(np.log(coarse)).max() / 2 - 1e-12
    assert detect.speed_search_hypotheses() == (
        len(coarse)
        * len(detect._fine_factors())
        * detect.hypotheses_per_speed(detect.FINE_PER_FRAME)
    )
