"""Bad input gets a specific error, or a clean 'not detected'; never a crash or a false payload."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal_plugins.watermark.audio import ClipTooShort, UnsupportedSampleRate
from voiceseal_plugins.watermark.scheme import PatchworkWatermarker

Array = npt.NDArray[np.float32]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(
    watermarker: PatchworkWatermarker, speech_10s: Array, bad: float, payload: bytes
) -> None:
    audio = speech_10s[:32000].copy()
    audio[100] = bad
    with pytest.raises(InvalidAudio, match="NaN or infinite"):
        watermarker.embed(audio, 16000, payload)
    with pytest.raises(InvalidAudio, match="NaN or infinite"):
        watermarker.detect(audio, 16000)


def test_multichannel(watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes) -> None:
    stereo = np.stack([speech_10s[:32000], speech_10s[:32000]], axis=1)
    with pytest.raises(InvalidAudio, match="mono"):
        watermarker.embed(stereo, 16000, payload)
    with pytest.raises(InvalidAudio, match="mono"):
        watermarker.detect(stereo, 16000)


@pytest.mark.parametrize("rate", [8000, 11025, 96000, 0, -16000])
def test_unsupported_rates(
    watermarker: PatchworkWatermarker, speech_10s: Array, rate: int, payload: bytes
) -> None:
    with pytest.raises(UnsupportedSampleRate, match="unsupported sample rate"):
        watermarker.embed(speech_10s[:32000], rate, payload)
    with pytest.raises(UnsupportedSampleRate):
        watermarker.detect(speech_10s[:32000], rate)
    with pytest.raises(UnsupportedSampleRate):
        watermarker.stream_embedder(rate, payload)


def test_float_rate_is_refused(watermarker: PatchworkWatermarker, speech_10s: Array) -> None:
    with pytest.raises(UnsupportedSampleRate):
        watermarker.detect(speech_10s[:32000], 16000.0)  # type: ignore[arg-type]


def test_too_short_to_detect(
    watermarker: PatchworkWatermarker, marked_10s: Array, payload: bytes
) -> None:
    # One block (1 s) is the shortest clip read, at every rate; one sample less is refused.
    with pytest.raises(ClipTooShort, match="too short"):
        watermarker.detect(marked_10s[:15999], 16000)
    with pytest.raises(ClipTooShort):
        watermarker.detect(marked_10s[:44099], 44100)
    with pytest.raises(ClipTooShort):
        watermarker.detect(np.zeros(0, dtype=np.float32), 16000)
    found = watermarker.detect(marked_10s[:16000], 16000)
    assert found is not None and found.payload == payload


def test_short_audio_can_be_embedded(
    watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes
) -> None:
    for n in (0, 1, 159, 1000):
        out = watermarker.embed(speech_10s[:n], 16000, payload)
        assert out.shape == (n,)


@pytest.mark.parametrize("payload", [b"", b"abc", b"abcde", "abcd", 1234])
def test_payload_must_be_four_bytes(
    watermarker: PatchworkWatermarker, speech_10s: Array, payload: object
) -> None:
    with pytest.raises(InvalidInput, match="exactly 4 bytes"):
        watermarker.embed(speech_10s[:32000], 16000, payload)  # type: ignore[arg-type]


def test_over_full_scale_is_refused_for_embedding(
    watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes
) -> None:
    with pytest.raises(InvalidAudio, match="full scale"):
        watermarker.embed(speech_10s[:32000] * 3.0, 16000, payload)


def test_integer_samples_are_refused(
    watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes
) -> None:
    pcm = (speech_10s[:32000] * 32767).astype(np.int16)
    with pytest.raises(InvalidAudio, match="float samples"):
        watermarker.embed(pcm, 16000, payload)  # type: ignore[arg-type]


def test_saturated_input_embeds_within_full_scale(
    watermarker: PatchworkWatermarker, speech_10s: Array, payload: bytes
) -> None:
    hot = np.clip(speech_10s[: 4 * 16000] * 4.0, -1.0, 1.0)
    marked = watermarker.embed(hot, 16000, payload)
    assert np.abs(marked).max() <= 1.0
    found = watermarker.detect(marked, 16000)
    assert found is not None and found.payload == payload


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key is empty"):
        PatchworkWatermarker(b"")
