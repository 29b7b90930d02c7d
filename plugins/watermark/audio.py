"""Input checks shared by embedding and detection: one clear error per kind of bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal_plugins.watermark import code, layout


class UnsupportedSampleRate(InvalidAudio):
    code = "unsupported_sample_rate"


class ClipTooShort(InvalidAudio):
    code = "clip_too_short"


def check_rate(sample_rate: Any) -> int:
    if not isinstance(sample_rate, int | np.integer) or int(sample_rate) not in layout.SAMPLE_RATES:
        rates = ", ".join(str(r) for r in layout.SAMPLE_RATES)
        raise UnsupportedSampleRate(
            f"unsupported sample rate {sample_rate!r} Hz: the watermark works at {rates} Hz; resample first"
        )
    return int(sample_rate)


def check_payload(payload: Any) -> bytes:
    if not isinstance(payload, bytes | bytearray) or len(payload) != code.PAYLOAD_BYTES:
        size = len(payload) if isinstance(payload, bytes | bytearray) else type(payload).__name__
        raise InvalidInput(
            f"the watermark payload must be exactly {code.PAYLOAD_BYTES} bytes ({code.PAYLOAD_BITS} bits), got {size}"
        )
    return bytes(payload)


def check_samples(audio: Any, *, for_embedding: bool) -> npt.NDArray[np.float64]:
    """Mono float samples as float64; refuses what would silently give a wrong result."""
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise InvalidAudio(
            f"expected mono audio as a 1-D array, got shape {arr.shape}: mix down to one channel first"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidAudio(f"expected float samples in [-1, 1], got dtype {arr.dtype}")
    samples = arr.astype(np.float64)
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise InvalidAudio(f"audio contains {bad} NaN or infinite samples")
    if for_embedding and samples.size and float(np.abs(samples).max()) > 1.0:
        raise InvalidAudio(
            f"audio exceeds full scale (peak {float(np.abs(samples).max()):.3f} > 1.0): "
            "normalise or limit it before embedding"
        )
    return samples
