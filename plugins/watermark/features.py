"""Detector features: per-bin log power relative to the neighbouring mark frames, per band.

The clip (already at ``DETECT_RATE``) is analysed once with 20 ms Hann frames every 2.5 ms. A
replay-speed hypothesis then costs a gather: rows are picked at the scaled times and bins are read
at the scaled frequencies (linear interpolation of log power), with no new analysis.

For every bin, the feature at detection frame i is ``L[i] - (L[i - Q] + L[i + Q]) / 2``, with
``L`` the log power and Q detection frames per mark frame: comparing a bin with itself one mark
frame earlier and later cancels the host's stationary parts (steady harmonics, the envelope), as
audiowmark's detector does, while the mark, whose sign is independent from frame to frame,
survives. Per-bin features are normalised and averaged over each band: averaging logs of single
bins is far less disturbed by moving harmonics than the log of a band's energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from voiceseal_plugins.watermark import layout

Array = npt.NDArray[np.float64]

#: Percentile of a band's power over the clip taken as its noise floor.
NOISE_PERCENTILE = 3.0
#: Fine analysis hop: 2.5 ms, 1/8 of a mark frame.
FINE_PER_FRAME = 8


@cache
def _band_of_bin() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Array]:
    """Marked bin indices, their band, and each band's size in bins."""
    edges = layout.band_edges()
    bins = np.arange(edges[0], edges[-1])
    band = np.searchsorted(edges, bins, side="right") - 1
    return bins, band, np.diff(edges).astype(np.float64)


@dataclass(frozen=True)
class Spectrum:
    """Power and log power of a clip at the detector rate, shape (fine frames, bins), single
    precision, and the inverse robust scale of each bin's relative log power (0 for bins that
    carry nothing)."""

    log_power: npt.NDArray[np.float32]
    inv_scale: Array
    power: npt.NDArray[np.float32]

    @property
    def n_frames(self) -> int:
        return self.log_power.shape[0]

    @classmethod
    def analyse(cls, audio: Array) -> Spectrum:
        n = layout.frame_length(layout.DETECT_RATE)
        hop = n // FINE_PER_FRAME
        n_frames = max(0, (len(audio) - n) // hop + 1)
        # Single precision halves the cost; features are differences of logs of O(1) accuracy.
        window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
        n_bins = n // 2 + 1
        power = np.empty((n_frames, n_bins), dtype=np.float32)
        level = float(np.mean(audio.astype(np.float64) ** 2)) if len(audio) else 0.0
        audio = audio.astype(np.float32)
        # A floor 100 dB below the clip's level keeps log() finite on digital silence and makes
        # its features exactly zero.
        floor = 1e-10 * level * n + 1e-30
        frames = np.lib.stride_tricks.sliding_window_view(audio, n)[::hop][:n_frames]
        step = 1024  # frames per slice, so a long clip never holds all windowed frames at once
        for start in range(0, n_frames, step):
            spec = np.fft.rfft(frames[start : start + step] * window, axis=1)
            power[start : start + len(spec)] = spec.real**2 + spec.imag**2 + floor
        log_power = np.log(power)
        return cls(log_power, _inverse_scale(log_power), power)

    @property
    def carries_anything(self) -> bool:
        """False for digital silence and clips without any usable bin."""
        return bool(self.inv_scale.any())

    def band_features(
        self, speed: float, per_frame: int, max_seconds: float | None = None
    ) -> Array:
        """Band features for a clip replayed at ``speed`` (> 1: faster and higher), at
        ``per_frame`` detection frames per mark frame, over at most ``max_seconds`` of marked
        time from the start; shape (detection frames, n_bands)."""
        stride = FINE_PER_FRAME / per_frame
        fine_hop = layout.FRAME_SECONDS / FINE_PER_FRAME
        half = layout.FRAME_SECONDS / 2
        # Detection frame i is centred at i * stride fine hops + half a frame in the marked
        # timeline, which is at (that) / speed in the clip.
        duration = (self.n_frames - 1) * fine_hop + 2 * half
        n_detect = max(0, int((duration * speed - 2 * half) / (stride * fine_hop)) + 1)
        if max_seconds is not None:
            n_detect = min(n_detect, int(max_seconds / (stride * fine_hop)))
        centres = (np.arange(n_detect) * stride * fine_hop + half) / speed
        rows = np.clip(
            np.rint((centres - half) / fine_hop).astype(np.int64), 0, max(self.n_frames - 1, 0)
        )
        # The band value is linear in log power, so per-bin normalisation, frequency scaling and
        # averaging over the band are one matrix; the time difference commutes with it.
        log_matrix, power_matrix = self._band_matrices(speed)
        bands = (self.log_power[rows] @ log_matrix.astype(np.float32)).astype(np.float64)
        band_power = (self.power[rows] @ power_matrix.astype(np.float32)).astype(np.float64)
        return _relative(bands, per_frame) * _reliability(band_power)

    def _band_matrices(self, speed: float) -> tuple[Array, Array]:
        """Two (bins, n_bands) matrices reading band b at its frequencies times ``speed`` (linear
        interpolation; nothing beyond the clip's band): the mean of its normalised bins (applied to
        log power) and the sum of its bins (applied to power)."""
        bins, band, sizes = _band_of_bin()
        top = self.log_power.shape[1] - 1
        pos = bins * speed
        inside = pos <= top
        lo = np.minimum(np.floor(pos).astype(np.int64), top)
        hi = np.minimum(lo + 1, top)
        frac = pos - lo
        weight = inside / sizes[band]
        log_matrix = np.zeros((top + 1, len(sizes)))
        np.add.at(log_matrix, (lo, band), weight * (1.0 - frac) * self.inv_scale[lo])
        np.add.at(log_matrix, (hi, band), weight * frac * self.inv_scale[hi])
        power_matrix = np.zeros((top + 1, len(sizes)))
        np.add.at(power_matrix, (lo, band), inside * (1.0 - frac))
        np.add.at(power_matrix, (hi, band), inside * frac)
        return log_matrix, power_matrix


def _inverse_scale(log_power: npt.NDArray[np.float32]) -> Array:
    """1 / robust scale of each bin's log power relative to one mark frame before and after;
    zero for bins that carry nothing: without variation, or 80 dB below the loudest bin
    (silence, or removed by a filter: their log power is leakage that fluctuates like signal)."""
    # One row per mark frame is enough for a robust scale, at a fraction of the cost.
    sub = log_power[::FINE_PER_FRAME].astype(np.float64)
    if len(sub) < 3:
        return np.zeros(log_power.shape[1])
    inner = sub[1:-1] - 0.5 * (sub[:-2] + sub[2:])
    scale = np.median(np.abs(inner), axis=0) * 1.4826
    level = log_power.max(axis=0).astype(np.float64)
    live = (scale > 1e-6) & (level > level.max() - np.log(1e8))
    return np.divide(1.0, scale, out=np.zeros_like(scale), where=live)


def _reliability(band_power: Array) -> Array:
    """Weight of each (frame, band) in [0, 1]: the share of its power above the band's noise
    floor (its 10th percentile over the clip). Added noise drowns weak tiles first, and their
    features then carry only noise; on clean audio the floor is near zero and weights near one."""
    if not len(band_power):
        return band_power
    k = int(NOISE_PERCENTILE / 100 * (len(band_power) - 1))
    floor = np.partition(band_power, k, axis=0)[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(band_power > 0, 1.0 - floor / band_power, 0.0)
    return np.clip(share, 0.0, 1.0)


def _relative(bands: Array, q: int) -> Array:
    """Band value minus the mean one mark frame (q rows) before and after, normalised per band
    to unit scale (mean absolute value, one row per mark frame) and clipped at 3; rows without
    both neighbours are zero."""
    out = np.zeros_like(bands)
    if len(bands) <= 2 * q:
        return out
    inner = bands[q:-q] - 0.5 * (bands[: -2 * q] + bands[2 * q :])
    scale = np.abs(inner[::q]).mean(axis=0) * 1.2533
    np.divide(inner, scale, out=inner, where=scale > 1e-9)
    inner[:, scale <= 1e-9] = 0.0
    out[q:-q] = np.clip(inner, -3.0, 3.0)
    return out
