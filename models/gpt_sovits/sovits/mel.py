"""Spectrogram front ends of GPT-SoVITS, written with ``torch.stft`` (no torchaudio).

* :func:`linear_spectrogram` / :func:`reference_spectrogram`: the 1025-bin magnitude
  spectrogram SoVITS v1/v2/v2Pro reads its reference voice from (32 kHz, hop 640).
* :func:`mel_spectrogram` with :data:`V3_MEL` / :data:`V4_MEL`: the log-mel features of the
  v3/v4 CFM models and vocoders.

All of them frame like the official code: reflect-pad ``(n_fft - hop) / 2`` samples on each side,
then an un-centred STFT with a periodic Hann window, so ``frames = (N + pad*2 - n_fft) // hop + 1``
(= ``N // hop`` when ``n_fft - hop`` is even).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

# Added to the squared magnitude before the square root: keeps the gradient finite at 0 and
# sets the floor of silent bins (1e-4), as in the official code.
_POWER_FLOOR = 1e-8
_LOG_CLAMP = 1e-5


@dataclass(frozen=True, slots=True)
class STFTParams:
    """Framing of a spectrogram. ``win_length <= n_fft``."""

    n_fft: int
    hop_length: int
    win_length: int

    def __post_init__(self) -> None:
        if not 0 < self.hop_length <= self.n_fft or not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"invalid STFT parameters {self}")

    @property
    def side_padding(self) -> int:
        return (self.n_fft - self.hop_length) // 2


@dataclass(frozen=True, slots=True)
class MelParams:
    """A log-mel feature set: framing plus the mel filterbank (librosa/Slaney defaults)."""

    stft: STFTParams
    sampling_rate: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None


REFERENCE_STFT = STFTParams(n_fft=2048, hop_length=640, win_length=2048)
V3_MEL = MelParams(STFTParams(1024, 256, 1024), sampling_rate=24000, n_mels=100)
V4_MEL = MelParams(STFTParams(1280, 320, 1280), sampling_rate=32000, n_mels=100)


def linear_spectrogram(audio: Tensor, params: STFTParams = REFERENCE_STFT) -> Tensor:
    """Magnitude spectrogram ``sqrt(re^2 + im^2 + 1e-8)``.

    ``audio [N]`` or ``[B, N]`` (float) -> ``[B, n_fft // 2 + 1, frames]`` in ``audio``'s dtype.
    """
    batch = _as_batch(audio, params)
    padded = F.pad(batch.unsqueeze(1), (params.side_padding,) * 2, mode="reflect").squeeze(1)
    window = torch.hann_window(params.win_length, dtype=batch.dtype, device=batch.device)
    spec = torch.stft(
        padded,
        params.n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return (spec.abs().square() + _POWER_FLOOR).sqrt()


def reference_spectrogram(audio_32k: Tensor) -> Tensor:
    """The SoVITS reference input for one mono 32 kHz waveform ``[N]`` -> ``[1, 1025, N // 640]``.

    Loud input (peak above 1) is first divided by ``min(2, peak)``: the official rule, which
    tames clipping-level files without normalising everything.
    """
    if audio_32k.dim() != 1:
        raise ValueError(f"reference audio must be mono [N], got shape {tuple(audio_32k.shape)}")
    peak = audio_32k.abs().max()
    if peak > 1:
        audio_32k = audio_32k / torch.clamp(peak, max=2.0)
    return linear_spectrogram(audio_32k, REFERENCE_STFT)


def mel_spectrogram(audio: Tensor, params: MelParams) -> Tensor:
    """Natural-log mel spectrogram ``log(clamp(mel, 1e-5))``.

    ``audio [N]`` or ``[B, N]`` -> ``[B, n_mels, frames]``.
    """
    magnitude = linear_spectrogram(audio, params.stft)
    basis = _cached_filterbank(
        params.sampling_rate, params.stft.n_fft, params.n_mels, params.fmin, params.fmax
    ).to(device=magnitude.device, dtype=magnitude.dtype)
    return torch.log(torch.clamp(basis @ magnitude, min=_LOG_CLAMP))


def mel_filterbank(
    sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> Tensor:
    """Slaney-scale, Slaney-normalised triangular filters ``[n_mels, n_fft // 2 + 1]`` (float32).

    The same matrix as ``librosa.filters.mel`` with its defaults (``htk=False``,
    ``norm="slaney"``), computed in float64.
    """
    return _cached_filterbank(sampling_rate, n_fft, n_mels, fmin, fmax).clone()


@lru_cache(maxsize=8)
def _cached_filterbank(
    sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> Tensor:
    # Shared between calls: never hand this tensor out un-copied.
    top = sampling_rate / 2 if fmax is None else fmax
    fft_freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (sampling_rate / n_fft)
    mel_points = torch.linspace(_hz_to_mel(fmin), _hz_to_mel(top), n_mels + 2, dtype=torch.float64)
    edges = _mel_to_hz(mel_points)
    widths = edges.diff()  # [n_mels + 1]
    ramps = edges.unsqueeze(1) - fft_freqs.unsqueeze(0)  # [n_mels + 2, bins]
    lower = -ramps[:-2] / widths[:-1].unsqueeze(1)
    upper = ramps[2:] / widths[1:].unsqueeze(1)
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    # Slaney normalisation: every filter has unit area in Hz.
    weights = weights * (2.0 / (edges[2:] - edges[:-2])).unsqueeze(1)
    return weights.to(torch.float32)


# Slaney mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = float(torch.log(torch.tensor(6.4, dtype=torch.float64))) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz < _MIN_LOG_HZ:
        return hz / _F_SP
    return _MIN_LOG_MEL + float(torch.log(torch.tensor(hz / _MIN_LOG_HZ, dtype=torch.float64))) / (
        _LOG_STEP
    )


def _mel_to_hz(mels: Tensor) -> Tensor:
    linear = _F_SP * mels
    log_part = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mels - _MIN_LOG_MEL))
    return torch.where(mels >= _MIN_LOG_MEL, log_part, linear)


def _as_batch(audio: Tensor, params: STFTParams) -> Tensor:
    if not audio.is_floating_point():
        raise ValueError(f"audio must be a float tensor, got {audio.dtype}")
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"audio must be [N] or [B, N], got shape {tuple(audio.shape)}")
    if audio.size(1) <= params.side_padding:
        raise ValueError(
            f"audio of {audio.size(1)} samples is too short for n_fft {params.n_fft} / hop "
            f"{params.hop_length} (needs more than {params.side_padding})"
        )
    return audio
