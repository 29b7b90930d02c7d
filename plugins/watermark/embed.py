"""Chunk-by-chunk embedding at the input rate; whole-file embedding is the same code path.

Each STFT frame (one mark frame long, 50 % overlap, square-root Hann analysis and synthesis) has
the magnitude of every marked band scaled by ``exp(±delta)``: mark frame m is the STFT frame that
covers it exactly, and the frame in between two mark frames takes the mean of their signs, so the
gain glides smoothly from frame to frame. Only the change ``X * (exp(g) - 1)`` is synthesised
and added, so bins outside the marked range and digital silence are left exactly as they were.

``delta`` follows the host, frame by frame and using that frame only (which keeps streaming and
whole-file output identical): weak bands, masked by the strong ones, get a larger relative change,
strong bands a smaller one, and the frame's total change is then scaled so that its energy stays
``MARK_SNR_DB`` below the frame's energy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft

from voiceseal.contracts import Audio
from voiceseal_plugins.watermark import layout

#: Relative log-magnitude change of a band at the frame's mean level.
BASE_DELTA = 0.07
#: How fast ``delta`` grows as a band gets weaker than the frame's mean: (mean / band) ** ADAPT.
ADAPT = 0.5
DELTA_FLOOR = 0.15
DELTA_CEILING = 13.0
#: Energy of the change relative to the frame's energy, per frame (a bound, not a mean).
MARK_SNR_DB = 25.0


class PatchworkStreamEmbedder:
    """Embeds one code word's tile pattern into audio fed in chunks.

    STFT frame j starts at ``floor((j - 1) * n / 2)`` (n = frame length, odd at 22.05 kHz), so
    mark frame m, STFT frame 2m + 1, starts exactly at ``m * n``. Only the change is synthesised,
    so the host passes through untouched whatever the window overlap sums to.

    Latency: a sample is returned once both STFT frames covering it are processed, i.e. less than
    one mark frame (20 ms) after it arrives; ``flush`` returns the rest.
    """

    def __init__(self, pattern: npt.NDArray[np.float64], sample_rate: int) -> None:
        n = layout.frame_length(sample_rate)
        self._n = n
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))
        bands = layout.bin_band_index(n // 2 + 1)
        self._bins = np.flatnonzero(bands >= 0)
        self._bin_band = bands[self._bins]
        self._band_sizes = np.bincount(self._bin_band, minlength=layout.n_bands()).astype(
            np.float64
        )
        self._to_bands = np.zeros((len(self._bins), layout.n_bands()))
        self._to_bands[np.arange(len(self._bins)), self._bin_band] = 1.0
        self._to_bands32 = self._to_bands.astype(np.float32)
        self._window32 = self._window.astype(np.float32)
        # Signs per STFT frame of one block: odd frames are mark frames, even ones sit between two.
        b = layout.BLOCK_FRAMES
        self._frame_signs = np.empty((2 * b, pattern.shape[1]))
        self._frame_signs[1::2] = pattern
        self._frame_signs[0::2] = 0.5 * (pattern + np.roll(pattern, 1, axis=0))
        self._max_ratio = 10.0 ** (-MARK_SNR_DB / 10.0)
        self._next_frame = 0
        # Input from absolute sample ``_buf_start`` on (the first frame starts before sample 0).
        self._buf_start = self._start(0)
        self._buf = np.zeros(-self._buf_start)
        # Change not yet emitted, from absolute sample ``_emitted`` on.
        self._acc = np.zeros(0)
        self._received = 0
        self._emitted = 0
        self._closed = False

    def _start(self, j: int) -> int:
        """First sample of STFT frame ``j`` (floor division: frame 0 starts before sample 0)."""
        return ((j - 1) * self._n) // 2

    def push(self, audio: Audio) -> Audio:
        if self._closed:
            raise RuntimeError("this stream embedder was flushed; start a new one")
        chunk = np.asarray(audio, dtype=np.float64).reshape(-1)
        self._received += len(chunk)
        self._buf = np.concatenate([self._buf, chunk])
        return self._process(final=False)

    def flush(self) -> Audio:
        if self._closed:
            raise RuntimeError("this stream embedder was already flushed")
        self._closed = True
        # Zeros after the end let the last frames complete; their output is cut off below.
        self._buf = np.concatenate([self._buf, np.zeros(2 * self._n)])
        return self._process(final=True)

    def _process(self, *, final: bool) -> Audio:
        n = self._n
        end = self._buf_start + len(self._buf)
        # Frames that fit in the buffer: start_j + n <= end.
        last = (2 * (end - n)) // n + 1  # largest j with floor((j-1) n / 2) + n <= end
        while last >= self._next_frame and self._start(last) + n > end:
            last -= 1
        if final:
            # Process until every received sample is covered by all its frames.
            while self._start(last + 1) < self._received and last + 1 >= self._next_frame:
                last += 1
        js = np.arange(self._next_frame, last + 1)
        if len(js):
            stop = self._start(last) + n
            if len(self._acc) < stop - self._emitted:
                self._acc = np.concatenate(
                    [self._acc, np.zeros(stop - self._emitted - len(self._acc))]
                )
            # Frames of one parity tile the time axis end to end (their starts are n apart), so
            # each parity is a reshape of one slice, and overlap-adds as one slice.
            for parity in (0, 1):
                sel = js[js % 2 == parity]
                if len(sel) == 0:
                    continue
                first = self._start(int(sel[0]))
                at = first - self._buf_start
                frames = self._buf[at : at + n * len(sel)].reshape(len(sel), n)
                flat = self._delta(frames, sel).reshape(-1)
                lo = max(first, self._emitted)
                self._acc[lo - self._emitted : first + len(flat) - self._emitted] += flat[
                    lo - first :
                ]
            self._next_frame = last + 1
        ready = self._start(self._next_frame)  # samples before it are final
        if final:
            ready = self._received
        ready = min(ready, self._received)
        count = max(0, ready - self._emitted)
        host = self._buf[self._emitted - self._buf_start : self._emitted - self._buf_start + count]
        out = host + self._acc[:count]
        self._acc = self._acc[count:]
        self._emitted += count
        keep = min(self._start(self._next_frame), self._emitted)
        self._buf = self._buf[keep - self._buf_start :]
        self._buf_start = keep
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def _delta(
        self, frames: npt.NDArray[np.float64], index: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """The change to add for each frame, windowed for overlap-add; shape (frames, n)."""
        # Single precision for the transforms: the change is 25 dB below the host, and float32
        # rounding (1e-7) is far below anything audible or measurable by the detector.
        windowed = frames.astype(np.float32) * self._window32
        spec = scipy.fft.rfft(windowed, axis=1)
        lo, hi = self._bins[0], self._bins[-1] + 1
        band_spec = spec[:, lo:hi]
        marked = band_spec.real**2 + band_spec.imag**2
        band_power = (marked @ self._to_bands32).astype(np.float64)
        # Parseval: the frame's energy over all bins, without squaring every bin.
        total = np.square(windowed).sum(axis=1, dtype=np.float64) * (self._n / 2.0)
        mean = marked.sum(axis=1, dtype=np.float64) / len(self._bins)
        per_bin = band_power / self._band_sizes
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(per_bin > 0, mean[:, None] / per_bin, DELTA_CEILING)
        delta = BASE_DELTA * np.clip(ratio**ADAPT, DELTA_FLOOR, DELTA_CEILING)
        gain = delta * self._frame_signs[index % len(self._frame_signs)]
        change = band_power * np.expm1(gain) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(total > 0, np.sqrt(self._max_ratio * total / change.sum(axis=1)), 1.0)
        gain *= np.minimum(scale, 1.0)[:, None]
        change_spec = np.zeros_like(spec)
        change_spec[:, lo:hi] = band_spec * np.expm1(gain[:, self._bin_band]).astype(np.float32)
        return scipy.fft.irfft(change_spec, n=self._n, axis=1) * self._window
