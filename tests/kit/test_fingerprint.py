"""Landmark fingerprints match an excerpt of the same audio and nothing else."""

from __future__ import annotations

import numpy as np

from voiceseal.generations import fingerprint as fp

SR = 16000


def chirps(seed: int, seconds: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for _ in range(40):
        start, f0 = rng.uniform(0, seconds - 0.3), rng.uniform(200, 3000)
        m = (t >= start) & (t < start + 0.25)
        x[m] += np.sin(2 * np.pi * (f0 + 800 * (t[m] - start)) * t[m])
    return (0.2 * x + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


def test_excerpt_matches_its_source_only() -> None:
    a, b = chirps(1), chirps(2)
    stored = [("gen_a", h, t) for h, t in fp.landmarks(a, SR)] + [
        ("gen_b", h, t) for h, t in fp.landmarks(b, SR)
    ]
    excerpt = a[2 * SR : 5 * SR] * 0.5 + 0.002 * np.random.default_rng(3).standard_normal(
        3 * SR
    ).astype(np.float32)
    ranked = fp.best_offsets(fp.landmarks(excerpt, SR), stored)
    assert ranked[0][0] == "gen_a"
    assert ranked[0][1] >= 20
    # The offset found is where the excerpt starts in the source, in fingerprint frames.
    assert abs(ranked[0][2] * fp.HOP / fp.SR - 2.0) < 0.05
    assert all(votes < 5 for g, votes, _ in ranked if g == "gen_b")


def test_silence_has_no_landmarks() -> None:
    assert fp.landmarks(np.zeros(SR, np.float32), SR) == []
