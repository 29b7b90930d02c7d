"""Input checks shared by the built-in components that take raw audio (encoder, transcriber)."""

from __future__ import annotations

from typing import Any

import numpy as np

from voiceseal.errors import InvalidAudio


def validated_mono(audio: Any, sample_rate: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Mono float32 samples, or a specific :class:`InvalidAudio` for anything else."""
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise InvalidAudio(f"expected mono audio of shape (N,), got shape {samples.shape}")
    if sample_rate <= 0:
        raise InvalidAudio(f"sample rate must be positive, got {sample_rate}")
    if samples.size == 0:
        raise InvalidAudio("the audio is empty")
    samples = samples.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise InvalidAudio("the audio contains NaN or infinite samples")
    return samples
