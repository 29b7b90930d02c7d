"""Chunk-by-chunk embedding equals whole-file embedding, with less than one frame of latency."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from voiceseal.contracts import StreamEmbedder
from voiceseal_plugins.watermark import layout
from voiceseal_plugins.watermark.scheme import PatchworkWatermarker

Array = npt.NDArray[np.float32]


@pytest.mark.parametrize(("rate", "seed"), [(16000, 1), (22050, 2), (44100, 3), (48000, 4)])
def test_random_chunks_equal_whole_file(
    watermarker: PatchworkWatermarker, speech_10s: Array, rate: int, seed: int, payload: bytes
) -> None:
    audio = speech_10s[: 3 * 16000]
    if rate != 16000:
        audio = soxr.resample(audio, 16000, rate).astype(np.float32)
    whole = watermarker.embed(audio, rate, payload)
    stream = watermarker.stream_embedder(rate, payload)
    assert isinstance(stream, StreamEmbedder)
    rng = np.random.default_rng(seed)
    pieces, fed, latency = [], 0, 0
    emitted = 0
    while fed < len(audio):
        size = int(rng.choice([0, 1, 7, 160, 441, 1000, 4096]))
        out = stream.push(audio[fed : fed + size])
        fed += len(audio[fed : fed + size])
        emitted += len(out)
        pieces.append(out)
        latency = max(latency, fed - emitted)
    pieces.append(stream.flush())
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6)
    # A sample leaves once both STFT frames covering it are complete: always within one frame.
    assert latency < layout.frame_length(rate)


def test_streamed_output_detects_like_whole(
    watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes
) -> None:
    stream = watermarker.stream_embedder(24000, payload)
    audio = soxr.resample(speech_10s[: 3 * 16000], 16000, 24000).astype(np.float32)
    out = np.concatenate(
        [stream.push(audio[i : i + 480]) for i in range(0, len(audio), 480)] + [stream.flush()]
    )
    found = watermarker.detect(out, 24000)
    assert found is not None and found.payload == payload


def test_stream_is_closed_after_flush(watermarker: PatchworkWatermarker, payload: bytes) -> None:
    stream = watermarker.stream_embedder(16000, payload)
    stream.push(np.zeros(100, dtype=np.float32))
    assert len(stream.flush()) == 100
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(np.zeros(10, dtype=np.float32))


def test_empty_stream(watermarker: PatchworkWatermarker, payload: bytes) -> None:
    stream = watermarker.stream_embedder(16000, payload)
    assert len(stream.flush()) == 0
