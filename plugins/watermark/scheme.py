"""The ``patchwork`` watermarker: keyed, blind, streaming, 32-bit payload (see README.md)."""

from __future__ import annotations

import numpy as np
import soxr

from voiceseal.contracts import Audio, Capabilities, Detection, StreamEmbedder
from voiceseal_plugins.watermark import code, detect, layout
from voiceseal_plugins.watermark.audio import (
    ClipTooShort,
    check_payload,
    check_rate,
    check_samples,
)
from voiceseal_plugins.watermark.embed import PatchworkStreamEmbedder
from voiceseal_plugins.watermark.features import Spectrum

NAME = "patchwork"
VERSION = "2.0"


class _CheckedStream:
    """A stream embedder that checks every chunk like whole-file embedding does."""

    def __init__(self, inner: PatchworkStreamEmbedder) -> None:
        self._inner = inner

    def push(self, audio: Audio) -> Audio:
        return self._inner.push(check_samples(audio, for_embedding=True).astype(np.float32))

    def flush(self) -> Audio:
        return self._inner.flush()


class PatchworkWatermarker:
    """Spectral patchwork mark: see ``voiceseal_plugins.watermark`` for the design."""

    name = NAME
    version = VERSION
    payload_bits = code.PAYLOAD_BITS
    capabilities = Capabilities(
        sample_rates=layout.SAMPLE_RATES,
        streaming=True,
        device="cpu",
        extra={
            "min_detect_seconds": detect.MIN_SECONDS,
            # What the platform pads a short output to before verifying it (longer than the
            # minimum: see detect.VERIFY_SECONDS).
            "verify_seconds": detect.VERIFY_SECONDS,
            "speed_search": detect.SPEED_RANGE,
            "speed_search_min_seconds": detect.SPEED_SEARCH_MIN_SECONDS,
            "false_positive_bound": detect.false_positive_bound(),
            "max_latency_seconds": layout.FRAME_SECONDS,
        },
    )

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the watermark key is empty: set VOICESEAL_WATERMARK_KEY")
        self._key = bytes(key)
        self._layout = layout.Layout.from_key(self._key, code.N_SYMBOLS)
        self._detector = detect.Detector(self._key, self._layout)

    def __repr__(self) -> str:  # never show the key
        return f"PatchworkWatermarker(version={self.version!r})"

    def stream_embedder(self, sample_rate: int, payload: bytes) -> StreamEmbedder:
        rate = check_rate(sample_rate)
        word = code.encode(code.frame_payload(self._key, check_payload(payload)))
        return _CheckedStream(PatchworkStreamEmbedder(self._layout.pattern(word), rate))

    def embed(self, audio: Audio, sample_rate: int, payload: bytes) -> Audio:
        samples = check_samples(audio, for_embedding=True)
        stream = self.stream_embedder(sample_rate, payload)
        return np.concatenate([stream.push(samples.astype(np.float32)), stream.flush()])

    def detect(self, audio: Audio, sample_rate: int) -> Detection | None:
        rate = check_rate(sample_rate)
        samples = check_samples(audio, for_embedding=False)
        seconds = len(samples) / rate
        if seconds < detect.MIN_SECONDS:
            raise ClipTooShort(
                f"clip too short for watermark detection: {seconds:.2f} s < {detect.MIN_SECONDS} s"
            )
        if rate != layout.DETECT_RATE:
            samples = soxr.resample(samples, rate, layout.DETECT_RATE, quality="HQ")
        found = self._detector.detect(
            Spectrum.analyse(samples), speed_search=seconds >= detect.SPEED_SEARCH_MIN_SECONDS
        )
        if found is None:
            return None
        c = found.candidate
        return Detection(
            payload=found.payload,
            confidence=1.0 - detect.chance(c.z),
            offset_seconds=c.start_seconds,
            scheme=NAME,
            extra={
                "sync_z": round(c.z, 3),
                "speed": round(c.speed, 4),
                "agreement": round(found.agreement, 3),
            },
        )
