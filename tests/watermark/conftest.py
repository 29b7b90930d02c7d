"""Shared fixtures: a key, the watermarker, and deterministic speech-like test signals.

The signals are synthesised here (no files, no downloads): a glottal pulse train with a gliding
pitch through moving formant resonances, with noise consonants and pauses, so that the mark meets
harmonics, transients and silence as it does in speech.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from voiceseal_plugins.watermark.scheme import PatchworkWatermarker

_KEY = b"test-watermark-key-0001"

Array = npt.NDArray[np.float32]


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> Array:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    pos = 0
    formants = [
        (730, 1090, 2440),
        (270, 2290, 3010),
        (300, 870, 2240),
        (530, 1840, 2480),
        (660, 1720, 2410),
    ]
    while pos < n:
        length = int(rng.uniform(0.12, 0.35) * rate)
        seg = np.zeros(length)
        kind = rng.random()
        if kind < 0.7:  # voiced syllable
            f0 = rng.uniform(95, 210) * np.linspace(1.0, rng.uniform(0.85, 1.15), length)
            phase = np.cumsum(f0 / rate)
            pulses = np.diff(np.floor(phase), prepend=0.0)
            source = signal.lfilter([1.0], [1.0, -0.95], pulses)
            for f in formants[int(rng.integers(len(formants)))]:
                b, a = signal.iirpeak(f, 8.0, fs=rate)
                seg += signal.lfilter(b, a, source)
            seg *= np.hanning(length)
        elif kind < 0.85:  # fricative
            b, a = signal.butter(2, [2500, 7000], btype="band", fs=rate)
            seg = signal.lfilter(b, a, rng.standard_normal(length)) * 0.3 * np.hanning(length)
        # else: a pause
        end = min(n, pos + length)
        out[pos:end] += seg[: end - pos]
        pos = end
    out += 1e-4 * rng.standard_normal(n)  # room noise: real recordings are never digital zero
    return (out / np.abs(out).max() * 0.8).astype(np.float32)


@pytest.fixture(scope="session")
def key() -> bytes:
    return _KEY


@pytest.fixture(scope="session")
def payload() -> bytes:
    return bytes.fromhex("c0ffee42")


@pytest.fixture(scope="session")
def make_speech() -> Callable[..., Array]:
    return speech_like


@pytest.fixture(scope="session")
def watermarker(key: bytes) -> PatchworkWatermarker:
    return PatchworkWatermarker(key)


@pytest.fixture(scope="session")
def speech_10s() -> Array:
    return speech_like(10.0, seed=1)


@pytest.fixture(scope="session")
def marked_10s(watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes) -> Array:
    return watermarker.embed(speech_10s, 16000, payload)
