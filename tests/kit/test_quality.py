"""The reference-clip quality gate names the check that failed."""

from __future__ import annotations

import numpy as np
import pytest

from voiceseal.errors import InvalidAudio
from voiceseal.kit import quality

SR = 16000


def speechlike(seconds: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Syllable-rate amplitude-modulated harmonics with pauses: loud frames and a quiet floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    return (0.3 * voice * env + noise * rng.standard_normal(t.size)).astype(np.float32)


def test_clean_clip_passes() -> None:
    r = quality.measure(speechlike(5, noise=0.001), SR)
    assert r.ok, r.failures
    assert r.snr_db > 30


def test_noisy_clip_refused_for_snr() -> None:
    with pytest.raises(InvalidAudio, match="SNR"):
        quality.require(speechlike(5, noise=0.2), SR, quality.REFERENCE_RULES, "reference")


def test_duration_bounds() -> None:
    assert any("below 3.0 s" in f for f in quality.measure(speechlike(2), SR).failures)
    assert any("above 10.0 s" in f for f in quality.measure(speechlike(12), SR).failures)


def test_silence_refused() -> None:
    r = quality.measure(np.zeros(5 * SR, np.float32), SR)
    assert any("silence" in f for f in r.failures)
    assert any("speech presence" in f for f in r.failures)


def test_clipping_refused() -> None:
    x = np.clip(speechlike(5) * 20, -1, 1)
    r = quality.measure(x, SR)
    assert any("clipping" in f for f in r.failures)
    assert r.clipping_ratio > 0.01
