"""Audio I/O: every bad upload is refused with a specific message; every format round-trips."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from voiceseal.errors import InvalidAudio, PayloadTooLarge
from voiceseal.kit import audio


def tone(seconds: float = 1.0, sr: int = 16000, f: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def wav_bytes(x: np.ndarray, sr: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class TestDecode:
    def test_wav_mono_kept(self) -> None:
        d = audio.decode(wav_bytes(tone(), 16000), max_seconds=10)
        assert d.sample_rate == 16000 and d.original_channels == 1
        assert abs(d.duration_s - 1.0) < 1e-3

    def test_stereo_downmixed(self) -> None:
        d = audio.decode(wav_bytes(tone(), 22050, channels=2), max_seconds=10)
        assert d.original_channels == 2 and d.audio.ndim == 1

    def test_odd_rate_resampled_to_nearest_accepted(self) -> None:
        d = audio.decode(wav_bytes(tone(sr=11025), 11025), max_seconds=10)
        assert d.original_sample_rate == 11025 and d.sample_rate == 8000
        assert abs(d.duration_s - 1.0) < 1e-2

    def test_not_audio(self) -> None:
        with pytest.raises(InvalidAudio, match="not an audio file"):
            audio.decode(b"%PDF-1.7 this is not audio at all" * 10, max_seconds=10)

    def test_empty(self) -> None:
        with pytest.raises(InvalidAudio, match="empty"):
            audio.decode(b"", max_seconds=10)

    def test_truncated_wav(self) -> None:
        data = wav_bytes(tone(2.0), 16000)
        with pytest.raises(InvalidAudio, match="truncated"):
            audio.decode(data[: len(data) // 2], max_seconds=10)

    def test_over_long(self) -> None:
        with pytest.raises(PayloadTooLarge, match="limit is 1 s"):
            audio.decode(wav_bytes(tone(2.0), 16000), max_seconds=1)

    def test_too_short(self) -> None:
        with pytest.raises(InvalidAudio, match=r"at least 3\.0 s"):
            audio.decode(wav_bytes(tone(1.0), 16000), max_seconds=10, min_seconds=3)

    def test_too_many_bytes(self) -> None:
        with pytest.raises(PayloadTooLarge, match="bytes"):
            audio.decode(wav_bytes(tone(1.0), 16000), max_seconds=10, max_bytes=100)

    def test_zero_samples(self) -> None:
        with pytest.raises(InvalidAudio, match="no samples"):
            audio.decode(wav_bytes(np.zeros(0, np.float32), 16000), max_seconds=10)

    def test_nan_refused(self) -> None:
        buf = io.BytesIO()
        x = tone()
        x[100] = np.nan
        sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
        with pytest.raises(InvalidAudio, match="NaN"):
            audio.decode(buf.getvalue(), max_seconds=10)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "aac", "pcm"])
def test_encode_formats_round_trip(fmt: str) -> None:
    x = tone(1.0, 24000)
    data = audio.encode(x, 24000, fmt)
    assert len(data) > 100
    if fmt == "pcm":
        back = np.frombuffer(data, "<i2").astype(np.float32) / 32767
        assert np.max(np.abs(back - x)) < 1e-3
        return
    d = audio.decode(data, max_seconds=10)
    # Lossy codecs add delay and padding; the tone's energy must survive.
    assert 0.9 < d.duration_s < 1.2
    assert 0.15 < float(np.sqrt(np.mean(d.audio**2))) < 0.3


def test_loudness_normalisation_hits_target_and_ceiling() -> None:
    x = tone(3.0, 24000) * 0.05
    y, measured = audio.normalize_loudness(x, 24000, -23.0, -1.0)
    assert measured < -30
    assert abs(audio.loudness_lufs(y, 24000) - (-23.0)) < 0.5
    loud, _ = audio.normalize_loudness(tone(3.0, 24000), 24000, -5.0, -1.0)
    assert audio.true_peak(loud) <= 10 ** (-1 / 20) + 1e-3


def test_silence_left_untouched() -> None:
    y, measured = audio.normalize_loudness(np.zeros(24000, np.float32), 24000, -23.0, -1.0)
    assert measured == float("-inf") and not np.any(y)


def test_write_file_is_atomic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a.wav"
    audio.write_file(out, tone(), 16000)
    assert out.exists() and not list(tmp_path.glob(".*.part"))
    with pytest.raises(InvalidAudio):
        audio.write_file(tmp_path / "b.xyz", tone(), 16000)
    assert not (tmp_path / "b.xyz").exists()
