"""Audio I/O for the platform: decode uploads safely, post-process, encode every delivery format.

Decoding refuses what is not audio, truncated files, empty and over-long clips with a specific
message; stereo is downmixed and odd sample rates resampled (both recorded in ``DecodedAudio``).
Encoding uses libsndfile for wav/flac/pcm and the ffmpeg binary shipped in the ``imageio-ffmpeg``
wheel for mp3/aac/opus, so no system codec is needed.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voiceseal.errors import InvalidAudio, PayloadTooLarge, Unavailable

Audio = npt.NDArray[np.float32]

#: Delivery formats and their media types.
MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}
#: Rates the platform accepts as-is; anything else (within bounds) is resampled to the nearest.
ACCEPTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MIN_RATE, MAX_RATE = 8000, 192000


@dataclass(frozen=True)
class DecodedAudio:
    audio: Audio
    sample_rate: int
    original_sample_rate: int
    original_channels: int
    container: str

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - core dependency
        raise Unavailable("imageio-ffmpeg is not installed; mp3/aac/opus are unavailable") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _run_ffmpeg(args: list[str], data: bytes, what: str, timeout: float = 120.0) -> bytes:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InvalidAudio(f"{what}: {msg[-1] if msg else 'ffmpeg failed'}")
    return proc.stdout


def _looks_truncated_wav(data: bytes) -> str | None:
    """RIFF/WAVE whose declared data chunk runs past the end of the file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            # 0 and 0xFFFFFFFF are "unknown length" markers written by streaming encoders.
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
                return f"WAV data chunk declares {size} bytes but only {len(data) - pos - 8} are present"
            return None
        pos += 8 + size + (size & 1)
    return "WAV file has no data chunk"


def decode(
    data: bytes,
    *,
    max_seconds: float,
    min_seconds: float = 0.0,
    target_rate: int | None = None,
    max_bytes: int | None = None,
) -> DecodedAudio:
    """Decode an uploaded clip to mono float32.

    :param target_rate: resample to this rate; default keeps accepted rates and maps others to the
        nearest accepted rate.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLarge(f"upload is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise InvalidAudio("the upload is empty")
    problem = _looks_truncated_wav(data)
    if problem:
        raise InvalidAudio(f"truncated or corrupt WAV: {problem}")
    import soundfile as sf

    container = "unknown"
    try:
        info = sf.info(io.BytesIO(data))
        container = info.format.lower()
        if info.frames / max(info.samplerate, 1) > max_seconds:
            raise PayloadTooLarge(
                f"clip is {info.frames / info.samplerate:.1f} s long; the limit is {max_seconds:.0f} s"
            )
        raw, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        raw, sr, container = _decode_with_ffmpeg(data, max_seconds)
    channels = raw.shape[1]
    if raw.shape[0] == 0:
        raise InvalidAudio("the clip contains no samples")
    if not (MIN_RATE <= sr <= MAX_RATE):
        raise InvalidAudio(f"sample rate {sr} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    mono = raw.mean(axis=1).astype(np.float32) if channels > 1 else raw[:, 0].astype(np.float32)
    if not np.all(np.isfinite(mono)):
        raise InvalidAudio("the clip contains NaN or infinite samples")
    duration = len(mono) / sr
    if duration > max_seconds:
        raise PayloadTooLarge(f"clip is {duration:.1f} s long; the limit is {max_seconds:.0f} s")
    if duration < min_seconds:
        raise InvalidAudio(f"clip is {duration:.2f} s long; at least {min_seconds:.1f} s is needed")
    rate = target_rate or (
        sr if sr in ACCEPTED_RATES else min(ACCEPTED_RATES, key=lambda r: abs(r - sr))
    )
    out = resample(mono, sr, rate)
    return DecodedAudio(out, rate, sr, channels, container)


def _decode_with_ffmpeg(
    data: bytes, max_seconds: float
) -> tuple[npt.NDArray[np.float32], int, str]:
    """Containers libsndfile cannot read (aac/m4a, some mp3). Output: float32 at 48 kHz, channels kept."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            probe = subprocess.run(
                [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", tmp.name],
                capture_output=True,
                timeout=30,
                check=False,
            ).stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as exc:
            raise InvalidAudio("could not probe the upload in time") from exc
        if "Audio:" not in probe:
            raise InvalidAudio("the upload is not an audio file in a supported format")
        channels = 2 if ("stereo" in probe or "2 channels" in probe) else 1
        try:
            pcm = _run_ffmpeg(
                [
                    "-i",
                    tmp.name,
                    "-t",
                    f"{max_seconds + 1:.0f}",
                    "-f",
                    "f32le",
                    "-ac",
                    str(channels),
                    "-ar",
                    "48000",
                    "pipe:1",
                ],
                b"",
                "could not decode the audio",
            )
        except subprocess.TimeoutExpired as exc:
            raise InvalidAudio("decoding the upload took too long") from exc
    samples = np.frombuffer(pcm, dtype="<f4").astype(np.float32)
    if samples.size == 0:
        raise InvalidAudio("the upload decodes to no audio (truncated or empty stream)")
    samples = samples[: samples.size - samples.size % channels].reshape(-1, channels)
    fmt = (
        "mp3"
        if "mp3" in probe
        else "aac"
        if "aac" in probe
        else "opus"
        if "opus" in probe
        else "ffmpeg"
    )
    return samples, 48000, fmt


def resample(audio: Audio, sr_in: int, sr_out: int) -> Audio:
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    import soxr

    return np.asarray(soxr.resample(audio, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def loudness_lufs(audio: Audio, sr: int) -> float:
    import pyloudnorm

    meter = pyloudnorm.Meter(sr, block_size=min(0.4, max(len(audio) / sr - 1e-3, 0.05)))
    return float(meter.integrated_loudness(audio.astype(np.float64)))


def true_peak(audio: Audio) -> float:
    """Peak after 4x oversampling (ITU-R BS.1770 true-peak approximation)."""
    from scipy.signal import resample_poly

    if audio.size == 0:
        return 0.0
    return float(np.max(np.abs(resample_poly(audio.astype(np.float64), 4, 1))))


def normalize_loudness(
    audio: Audio, sr: int, target_lufs: float, peak_dbfs: float
) -> tuple[Audio, float]:
    """EBU R128-style: gain to the programme-loudness target, then a gain-only true-peak ceiling.

    Returns the audio and the measured input loudness (-inf for silence, which is left untouched).
    A single gain (no compression) keeps the watermark, embedded afterwards, undistorted.
    """
    if audio.size == 0:
        return audio, float("-inf")
    measured = loudness_lufs(audio, sr) if len(audio) >= int(0.1 * sr) else float("-inf")
    out = audio.astype(np.float32, copy=True)
    if np.isfinite(measured):
        out *= np.float32(10 ** ((target_lufs - measured) / 20))
    ceiling = 10 ** (peak_dbfs / 20)
    tp = true_peak(out)
    if tp > ceiling:
        out *= np.float32(ceiling / tp)
    return out, measured


def encode(audio: Audio, sr: int, fmt: str) -> bytes:
    """Encode mono float32 audio; ``pcm`` is raw signed 16-bit little-endian."""
    clipped = np.clip(audio, -1.0, 1.0)
    if fmt == "pcm":
        return (clipped * 32767.0).round().astype("<i2").tobytes()
    if fmt in ("wav", "flac"):
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, clipped, sr, format=fmt.upper(), subtype="PCM_16")
        return buf.getvalue()
    args = {
        "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
        "aac": ["-c:a", "aac", "-b:a", "128k", "-f", "adts"],
        "opus": ["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"],
    }.get(fmt)
    if args is None:
        raise InvalidAudio(f"unknown response_format {fmt!r}; use one of {', '.join(MEDIA_TYPES)}")
    rate = sr
    if fmt == "opus" and sr not in (8000, 12000, 16000, 24000, 48000):
        rate = 48000  # Opus only runs at these rates
    pcm = (clipped * 32767.0).round().astype("<i2").tobytes()
    return _run_ffmpeg(
        [
            "-f",
            "s16le",
            "-ar",
            str(sr),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-ar",
            str(rate),
            *args,
            "pipe:1",
        ],
        pcm,
        f"could not encode {fmt}",
    )


def wav_header(sr: int, channels: int = 1, bits: int = 16) -> bytes:
    """A WAV header with 'unknown length' sizes, for streamed WAV (players accept 0xFFFFFFFF)."""
    byte_rate = sr * channels * bits // 8
    return (
        b"RIFF"
        + (0xFFFFFFFF).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + sr.to_bytes(4, "little")
        + byte_rate.to_bytes(4, "little")
        + (channels * bits // 8).to_bytes(2, "little")
        + bits.to_bytes(2, "little")
        + b"data"
        + (0xFFFFFFFF).to_bytes(4, "little")
    )


def read_file(path: Path, *, max_seconds: float = 3600.0) -> DecodedAudio:
    return decode(path.read_bytes(), max_seconds=max_seconds)


def write_file(path: Path, audio: Audio, sr: int) -> None:
    """Write by extension, atomically: a temporary file renamed into place, never a partial file."""
    fmt = path.suffix.lstrip(".").lower() or "wav"
    data = encode(audio, sr, fmt)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.replace(path)
