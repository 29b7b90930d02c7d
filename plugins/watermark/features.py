"""Detector features: per-bin log power relative to the neighbouring mark frames, per band.

The clip (already at ``DETECT_RATE``) is analysed once with 20 ms Hann frames every 5 ms. A
replay-speed hypothesis then costs a gather: rows are picked at the scaled times and bands are read
over their scaled frequency ranges, with no new analysis. Bands are read from running sums over
the bins (of normalised log power and of power), so a band at any speed is the difference of two
interpolated running sums: the cost per (row, band) is constant, and many speeds are read at once.

For every band, the feature at detection frame i is ``B[i] - (B[i - Q] + B[i + Q]) / 2``, with
``B`` the mean normalised log power of its bins and Q detection frames per mark frame: comparing a
band with itself one mark frame earlier and later cancels the host's stationary parts (steady
harmonics, the envelope), as audiowmark's detector does, while the mark, whose sign is
independent from frame to frame, survives.

Each (frame, band) feature is normalised by its band's scale and by its local RMS (the host's
own change varies a lot: onsets, pitch jumps), then weighted as a matched filter would: by the
strength the embedder gave that tile, recomputed from the received spectrum with the embedder's
own rule (:func:`_expected`), and by the share of the tile's power above the band's noise floor
(:func:`_reliability`). Weights and scales are functions of the audio alone, never of the key,
which keeps the false-positive bound of ``detect`` valid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy.ndimage import uniform_filter1d

from voiceseal_plugins.watermark import embed, layout

Array = npt.NDArray[np.float64]
#: Features are single precision where computed, double where trivially zero.
Floats = npt.NDArray[np.floating[Any]]

#: Percentile of a band's power over the clip taken as its noise floor.
NOISE_PERCENTILE = 3.0
#: Analysis hop: 5 ms, 1/4 of a mark frame (a 2.5 ms hop found nothing more on speech).
FINE_PER_FRAME = 4
#: Bins whose loudest frame is more than this power ratio below the loudest bin carry nothing
#: (removed by a filter: what is left is window leakage from the pass band).
LIVE_RANGE = 1e5
#: A bin whose loudest frame is more than LEAK_RANGE (power) below the loudest of its LEAK_SPAN
#: neighbours on either side sits just past a steep filter edge: the analysis window's leakage
#: from the pass band outweighs what the filter left of the bin's own content, so it carries the
#: neighbours' marks, not its own, and being weak it got the largest expected-strength weight
#: (after a 500 Hz low-pass, 550-650 Hz read 15-47 dB below 500 Hz). Clean speech drops at most
#: 19 dB within 3 bins (40 clips of 3 s).
LEAK_SPAN = 3
LEAK_RANGE = 1e3
#: A frame counts as active within this power ratio of the clip's loudest frame.
ACTIVE_RANGE = 1e3
#: Local normalisation: span in mark frames, and the floor (in units of the band's scale
#: squared) that keeps quiet stretches from being blown up.
LOCAL_SPAN = 3
LOCAL_EPS = 0.1
#: Features are clipped at this many (robust) standard deviations.
CLIP = 3.0
#: The smoothed reading (``band_features(..., smooth=True)``) averages each band's log power and
#: power over neighbouring analysis frames with a triangular kernel, the convolution of two
#: moving averages of this many frames (weights 1, 2, 3, 4, 5, 4, 3, 2, 1: ±20 ms).
SMOOTH_SPAN = 5
#: Noise floors over at most this many rows are found by sorting, longer ones by partitioning.
SORT_MAX_ROWS = 384
#: Rows (speeds times detection frames) read at once: about 570 kB per float32 temporary (the
#: gather of the four tables side by side: 2.3 MB).
CHUNK_ROWS = 2700
#: Clips up to this many analysis frames (about 20 s) copy all of their tables side by side for
#: the speed search (``Spectrum._side_by_side``); longer ones copy only the stretch a reading
#: touches (the search reads about 3 s): a whole 600 s copy is about 300 MB.
WHOLE_COPY_FRAMES = 20 * 4 * 50


@cache
def _edges() -> npt.NDArray[np.float64]:
    """Band edges as positions on the running-sum axis: bin k covers [k, k + 1)."""
    return layout.band_edges().astype(np.float64)


@cache
def _window(n: int) -> npt.NDArray[np.float32]:
    """Hann analysis window of ``n`` samples."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    window.flags.writeable = False
    return window


@cache
def _sizes() -> Array:
    return np.diff(layout.band_edges()).astype(np.float64)


@dataclass(frozen=True)
class Spectrum:
    """A clip analysed at the detector rate: per fine frame and bin k, the running sum of the
    normalised log power over the bins below k, that bin's value, the running sum of the power
    over bins from k up, and that bin's power; shape (4, fine frames * (bins + 1)), flat so that
    one index array reads every table. And whether any bin carries something."""

    sums: npt.NDArray[np.float32]
    n_frames: int
    carries_anything: bool
    #: The last band reading (log power and power per band before weighting), by its arguments:
    #: the plain and the smoothed reading at the clip's own speed share it.
    _read: dict[tuple[bytes, int, int, int], tuple[Array, Array]] = field(
        default_factory=dict, compare=False, repr=False
    )
    #: The tables side by side (``_side_by_side``), once made, with the first analysis frame
    #: they start at.
    _copies: list[tuple[npt.NDArray[np.float32], int, int]] = field(
        default_factory=list, compare=False, repr=False
    )

    @classmethod
    def analyse(cls, audio: Array) -> Spectrum:
        n = layout.frame_length(layout.DETECT_RATE)
        hop = n // FINE_PER_FRAME
        n_frames = max(0, (len(audio) - n) // hop + 1)
        # Single precision halves the cost of the transform; features are differences of logs
        # of O(1) accuracy.
        window = _window(n)
        n_bins = n // 2 + 1
        power = np.empty((n_frames, n_bins), dtype=np.float32)
        level = float(np.mean(np.square(audio, dtype=np.float64))) if len(audio) else 0.0
        samples = audio.astype(np.float32)
        # A floor 100 dB below the clip's level keeps log() finite on digital silence and makes
        # its features exactly zero.
        floor = 1e-10 * level * n + 1e-30
        frames = np.lib.stride_tricks.sliding_window_view(samples, n)[::hop][:n_frames]
        step = 1024  # frames per slice, so a long clip never holds all windowed frames at once
        for start in range(0, n_frames, step):
            spec = scipy.fft.rfft(frames[start : start + step] * window, axis=1)
            block = power[start : start + len(spec)]
            np.square(spec.real, out=block)
            block += np.square(spec.imag)
            block += floor
        log_power = np.log(power)
        inv = _inverse_scale(log_power)
        # Running sums over the bins: normalised log power below bin k, and power from bin k up
        # (summed from the top down, so weak bands, mostly high, are small differences of small
        # sums, exact enough in single precision). Each has the bin's own value beside it, for
        # linear interpolation between bins.
        n_sums = n_bins + 1
        tables = np.empty((4, n_frames, n_sums), dtype=np.float32)
        tables[:, :, -1] = 0.0
        np.multiply(log_power, inv.astype(np.float32), out=tables[1, :, :-1])
        tables[0, :, 0] = 0.0
        tables[0, :, 1:] = _running_sum(tables[1, :, :-1])
        tables[3, :, :-1] = power
        tables[2, :, -2::-1] = _running_sum(power[:, ::-1])
        return cls(tables.reshape(4, -1), n_frames, bool(inv.any()))

    def busiest(self, seconds: float) -> int:
        """First analysis frame of the ``seconds`` of the clip with the most frames within
        ACTIVE_RANGE of its loudest frame: where the mark is, pauses and silence aside."""
        window = round(seconds / (layout.FRAME_SECONDS / FINE_PER_FRAME))
        if self.n_frames <= window:
            return 0
        n_sums = self.sums.shape[1] // self.n_frames
        energy = self.sums[2, ::n_sums]  # power summed over all bins, per frame
        active = (energy > energy.max() / ACTIVE_RANGE).astype(np.int64)
        counts = np.convolve(active, np.ones(window, dtype=np.int64), mode="valid")
        return int(np.argmax(counts))

    def band_features(
        self,
        speeds: Array,
        per_frame: int,
        max_seconds: float | None = None,
        *,
        start: int = 0,
        reliability: bool = True,
        smooth: bool = False,
        rows_multiple: int = 1,
    ) -> Floats:
        """Weighted band features for the clip replayed at each of ``speeds`` (> 1: faster and
        higher), at ``per_frame`` detection frames per mark frame, over at most ``max_seconds``
        of marked time from analysis frame ``start`` on; shape (speeds, detection frames,
        n_bands), zero where a speed runs past the clip. ``reliability=False`` skips the
        noise-floor weight and the local RMS (the coarse speed search, which only ranks speeds,
        saves a partial sort and a filter that way).

        ``smooth=True`` is the smoothed reading: each band's log power and power are first
        averaged over neighbouring detection frames with the triangular kernel of SMOOTH_SPAN
        (``per_frame`` must be FINE_PER_FRAME, so detection frames are analysis frames; at the
        clip's own speed this equals smoothing the analysis itself, since bands are linear in
        its tables), and it skips the local RMS. Averaging the log power of overlapping frames
        tames the heavy-tailed fluctuation of noisy bins, which is what added noise leaves where
        the mark is weak; on clean audio it blurs neighbouring mark frames into each other, so
        the detector reads it only when the plain reading does not decode.

        ``rows_multiple > 1`` pads the rows with zeros to a multiple of it (at least one), for
        folding onto whole blocks without copying the features into a padded array."""
        if smooth and per_frame != FINE_PER_FRAME:
            raise ValueError("the smoothed reading needs one detection frame per analysis frame")
        speeds = np.asarray(speeds, dtype=np.float64).reshape(-1)
        stride = FINE_PER_FRAME / per_frame
        fine_hop = layout.FRAME_SECONDS / FINE_PER_FRAME
        half = layout.FRAME_SECONDS / 2
        # Detection frame i is centred at i * stride fine hops + half a frame in the marked
        # timeline, which is at (that) / speed after the start in the clip.
        start = min(max(start, 0), max(self.n_frames - 1, 0))
        duration = (self.n_frames - 1 - start) * fine_hop + 2 * half
        counts = np.maximum(
            0, ((duration * speeds - 2 * half) / (stride * fine_hop)).astype(int) + 1
        )
        if max_seconds is not None:
            counts = np.minimum(counts, int(max_seconds / (stride * fine_hop)))
        n_rows = int(counts.max()) if len(counts) else 0
        nb = len(_sizes())
        padded = max(n_rows, 0)
        if rows_multiple > 1:
            padded = max(1, -(-padded // rows_multiple)) * rows_multiple
        if n_rows <= 2 * per_frame or self.n_frames == 0:
            return np.zeros((len(speeds), padded, nb))
        # Speeds are read in groups of about CHUNK_ROWS rows: every step below is per speed, so
        # this only keeps the temporaries small (in cache, and reused by the allocator instead of
        # fresh pages for every stage).
        feats = np.empty((len(speeds), padded, nb), dtype=np.float32)
        feats[:, n_rows:] = 0.0
        step = max(1, CHUNK_ROWS // n_rows)
        for first in range(0, len(speeds), step):
            part = slice(first, first + step)
            self._weighted(
                speeds[part],
                counts[part],
                n_rows,
                per_frame,
                start,
                reliability,
                smooth,
                out=feats[part, :n_rows],
            )
        return feats

    def _weighted(
        self,
        speeds: Array,
        counts: npt.NDArray[np.int64],
        n_rows: int,
        per_frame: int,
        start: int,
        reliability: bool,
        smooth: bool,
        *,
        out: Floats,
    ) -> None:
        """``band_features`` for a group of speeds into ``out``, ``counts`` rows of each valid,
        read over ``n_rows`` rows (those of the longest speed of the whole call: the local RMS
        near the end depends on it)."""
        key = (speeds.tobytes(), per_frame, n_rows, start)
        if key in self._read:
            log_band, power = self._read[key]
        else:
            log_band, power = self._bands(speeds, n_rows, FINE_PER_FRAME / per_frame, start)
            self._read.clear()
            self._read[key] = (log_band, power)
        if smooth:
            both = uniform_filter1d(
                np.stack([log_band, power]), SMOOTH_SPAN, axis=2, mode="nearest"
            )
            uniform_filter1d(both, SMOOTH_SPAN, axis=2, mode="nearest", output=both)
            log_band, power = both[0], both[1]
        # The local RMS is for the host's own change (onsets, codecs); under added noise it costs
        # (smoothed reading, 400 clips of 3 s, white noise at 20 dB SNR: 0.95 decoded without
        # it, 0.925 with it), so the smoothed reading does without.
        _relative(log_band, per_frame, counts, local=reliability and not smooth, out=out)
        out *= _expected(power)
        if reliability:
            valid = np.arange(n_rows)[None, :] < counts[:, None]
            out *= _reliability(power, valid, counts)

    def _side_by_side(self, first: int, last: int) -> tuple[npt.NDArray[np.float32], int]:
        """The four tables side by side over analysis frames ``first``..``last`` at least, shape
        (frames * (bins + 1), 4), and the frame the copy starts at; made on the first reading
        of several speeds (the speed search): one gather then reads all four at once (one cache
        line, one pass over the index) instead of four, which more than pays for the copy.
        Readings of one speed (the clip's own) read the tables as they are, so a clip that
        decodes at its own speed never makes it. Clips up to WHOLE_COPY_FRAMES copy every frame
        once (10 s: 5 MB); longer ones copy the stretch asked for, kept until a reading needs
        another."""
        if self._copies:
            both, base, end = self._copies[0]
            if base <= first and last <= end:
                return both, base
        if self.n_frames <= WHOLE_COPY_FRAMES:
            first, last = 0, self.n_frames - 1
        n_sums = self.sums.shape[1] // self.n_frames
        part = self.sums[:, first * n_sums : (last + 1) * n_sums]
        both = np.empty(part.shape[::-1], dtype=self.sums.dtype)
        for k, table in enumerate(part):  # three times faster than one transposed copy
            both[:, k] = table
        self._copies[:] = [(both, first, last)]
        return both, first

    def _bands(self, speeds: Array, n_rows: int, stride: float, start: int) -> tuple[Array, Array]:
        """Mean normalised log power and power of every band, shape (speeds, n_rows, n_bands),
        for detection frames ``stride`` analysis frames apart from ``start`` on."""
        n_sums = self.sums.shape[1] // self.n_frames
        key = speeds.tobytes()
        several = len(speeds) > 1
        lo, frac, width = _columns(key, n_sums)
        # The grids of the speed search are fixed, so their rows and index are kept between
        # clips; a reading of one speed (the clip's own) has rows as many as the clip is long,
        # which would keep megabytes per clip length, so it makes them each time.
        rows, first, last = (_rows if several else _rows.__wrapped__)(key, n_rows, stride)
        base = 0  # analysis frame the index counts from
        if start + first >= 0 and start + last < self.n_frames:
            # Every row inside the clip (the coarse grid, the clip's own speed): the same index,
            # relative to the stretch's start, serves every clip.
            index = _index(key, n_rows, stride, n_sums) if several else _index_of(rows, lo, n_sums)
            base = start
        else:
            rows = rows + start
            np.clip(rows, 0, self.n_frames - 1, out=rows)
            index = _index_of(rows, lo, n_sums)
        # Every index is in range (rows within the clip, lo below the last bin), so the bounds
        # check of the default mode="raise" is skipped. Interpolated at each edge: sum + frac *
        # bin (log) and sum - frac * bin (power).
        if several:
            reach = (max(0, min(start + first, start)), min(self.n_frames - 1, start + last))
            both, copied_from = self._side_by_side(*reach)
            table = both[(base - copied_from) * n_sums :]
            if base < copied_from:  # rows clipped to the clip, counted from its start
                index = index - (copied_from - base) * n_sums
                table = both
            both = np.take(table, index, axis=0, mode="clip")
            log_sum = np.multiply(both[..., 1], frac)
            log_sum += both[..., 0]
            power_sum = np.multiply(both[..., 3], frac)
            np.subtract(both[..., 2], power_sum, out=power_sum)
        else:
            tables = self.sums[:, base * n_sums :]
            log_sum, log_bin, power_sum, power_bin = (
                np.take(t, index, mode="clip") for t in tables
            )
            log_bin *= frac
            log_sum += log_bin
            power_bin *= frac
            power_sum -= power_bin
        log_band = np.subtract(log_sum[..., 1:], log_sum[..., :-1])
        log_band /= width
        # Power sums run from the top down: a band is its lower edge's sum minus its upper's.
        # (Clipping to [0, inf] is maximum(., 0), in a faster loop.)
        power = np.subtract(power_sum[..., :-1], power_sum[..., 1:])
        np.clip(power, 0.0, np.inf, out=power)
        return log_band, power


@lru_cache(maxsize=64)
def _rows(speeds: bytes, n_rows: int, stride: float) -> tuple[npt.NDArray[np.int64], int, int]:
    """Analysis frame (from the stretch's start) of each detection frame at each speed, shape
    (speeds, n_rows), and the first and last of them: detection frame i is centred at i * stride
    fine hops + half a frame in the marked timeline, which is at (that) / speed in the clip. The
    same for every clip (the grids are fixed), so computed once."""
    scale = np.frombuffer(speeds, dtype=np.float64)
    fine_hop = layout.FRAME_SECONDS / FINE_PER_FRAME
    half = layout.FRAME_SECONDS / 2
    centres = (np.arange(n_rows) * stride * fine_hop + half)[None, :] / scale[:, None]
    rows = np.rint((centres - half) / fine_hop).astype(np.int64)
    rows.flags.writeable = False
    return rows, int(rows.min()), int(rows.max())


@lru_cache(maxsize=64)
def _columns(
    speeds: bytes, n_sums: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Where each band edge falls on the running-sum axis at each speed: the bin below it, shape
    (speeds, edges), and the fraction of the next bin it reaches, shape (speeds, 1, edges); and
    each band's width, shape (speeds, 1, bands). Band b at speed s spans [edge_b * s,
    edge_b+1 * s). The same for every clip, so computed once."""
    scale = np.frombuffer(speeds, dtype=np.float64)
    top = float(n_sums - 1)
    pos = np.clip(_edges()[None, :] * scale[:, None], 0.0, top)
    lo = np.minimum(np.floor(pos).astype(np.int64), int(top) - 1)
    frac = (pos - lo).astype(np.float32)[:, None, :]
    width = (_sizes()[None, None, :] * scale[:, None, None]).astype(np.float32)
    for table in (lo, frac, width):
        table.flags.writeable = False
    return lo, frac, width


def _index_of(
    rows: npt.NDArray[np.int64], lo: npt.NDArray[np.int64], n_sums: int
) -> npt.NDArray[np.int64]:
    """Position in the tables of the bin below each band edge (``lo``, per speed) on each
    detection frame (``rows``, per speed), shape (speeds, n_rows, edges)."""
    return (rows * n_sums)[:, :, None] + lo[:, None, :]


@lru_cache(maxsize=4)
def _index(speeds: bytes, n_rows: int, stride: float, n_sums: int) -> npt.NDArray[np.int64]:
    """``_index_of`` for a grid of the speed search, from the stretch's first analysis frame. A
    few are kept (at most 4 of up to about 2 MB): the coarse grid's is the same for every
    clip."""
    index = _index_of(_rows(speeds, n_rows, stride)[0], _columns(speeds, n_sums)[0], n_sums)
    index.flags.writeable = False
    return index


def _running_sum(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``np.cumsum(x, axis=-1)``, the same additions in the same order, about three times
    faster for the analysis's short rows: one vectorised addition per column (over every other
    index at once)."""
    columns = np.ascontiguousarray(np.moveaxis(x, -1, 0))
    _accumulate(columns)
    return np.moveaxis(columns, 0, -1)


def _accumulate(columns: npt.NDArray[np.float32]) -> None:
    """Running sum along the first axis, in place: each entry plus the sum of those before it,
    in that order."""
    # One view per column, made once: indexing inside the loop costs as much as the additions.
    views = list(columns)
    for previous, column in itertools.pairwise(views):
        np.add(column, previous, out=column)


def _inverse_scale(log_power: npt.NDArray[np.float32]) -> Array:
    """1 / robust scale of each bin's log power relative to one mark frame before and after;
    zero for bins that carry nothing: without variation, LIVE_RANGE below the loudest bin
    (silence, or removed by a filter: their log power is leakage that fluctuates like signal),
    or LEAK_RANGE below a bin at most LEAK_SPAN away (just past a filter's edge)."""
    # One row per mark frame is enough for a robust scale, at a fraction of the cost.
    sub = log_power[::FINE_PER_FRAME].astype(np.float64)
    if len(sub) < 3:
        return np.zeros(log_power.shape[1])
    inner = sub[1:-1] - 0.5 * (sub[:-2] + sub[2:])
    scale = _median(np.abs(inner)) * 1.4826
    level = log_power.max(axis=0).astype(np.float64)
    live = (scale > 1e-6) & (level > level.max() - np.log(LIVE_RANGE))
    live &= level > _neighbour_max(level, LEAK_SPAN) - np.log(LEAK_RANGE)
    return np.divide(1.0, scale, out=np.zeros_like(scale), where=live)


def _neighbour_max(level: Array, span: int) -> Array:
    """Largest value among the ``span`` neighbours on either side of each entry (not itself)."""
    out = np.full_like(level, -np.inf)
    for j in range(1, span + 1):
        np.maximum(out[j:], level[:-j], out=out[j:])
        np.maximum(out[:-j], level[j:], out=out[:-j])
    return out


def _median(x: Array) -> Array:
    """``np.median(x, axis=0)`` for finite ``x``, the same values (the middle order statistics,
    averaged by ``np.mean`` when there are two), without the NaN bookkeeping."""
    if not np.isfinite(x).all():
        return np.asarray(np.median(x, axis=0))
    half = len(x) // 2
    first = half - 1 if len(x) % 2 == 0 else half
    # Sorted rather than partitioned: the same order statistics, found faster by numpy's
    # vectorised sort on these columns (about 0.7 against 1.0 ms on a 10 s clip).
    ranked = np.sort(x, axis=0)
    return np.mean(ranked[first : half + 1], axis=0)


def _reliability(
    power: Array, valid: npt.NDArray[np.bool_], counts: npt.NDArray[np.int64]
) -> Array:
    """Weight of each (frame, band) in [0, 1]: the share of its power above the band's noise
    floor (its NOISE_PERCENTILE-th percentile over the clip). Added noise
    drowns weak tiles first, and their features then carry only noise; on clean audio the floor
    is near zero and weights near one."""
    ks = np.maximum(0, (NOISE_PERCENTILE / 100 * (counts - 1)).astype(np.int64))
    # Frames last: partitioning along the contiguous axis is about twice as fast.
    frames_last = power.transpose(0, 2, 1)
    if valid.all():
        ranked = np.ascontiguousarray(frames_last)
    else:
        ranked = np.where(valid[:, None, :], frames_last, np.inf)
    # The value at a rank is the same whichever way it is found: numpy's sort (vectorised) is
    # faster than its partition on lines up to a few hundred rows (1.5-3 s clips), slower on
    # longer ones.
    if ranked.shape[2] <= SORT_MAX_ROWS:
        ranked.sort(axis=2)
    else:
        ranked.partition(np.unique(ks), axis=2)
    floor = np.take_along_axis(ranked, ks[:, None, None], axis=2).transpose(0, 2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.divide(floor, power)
    np.subtract(1.0, share, out=share)
    # Tiles without power weigh nothing (the division gave them -inf or NaN).
    np.copyto(share, 0.0, where=~(power > 0))
    return np.clip(share, 0.0, 1.0, out=share)


@cache
def _sizes32() -> npt.NDArray[np.float32]:
    return _sizes().astype(np.float32)


def _expected(power: Array) -> Array:
    """Relative strength of the mark the embedder gave each (frame, band), recomputed from the
    received band powers with the embedder's rule (band level against the frame's mean): the
    matched-filter weight. Absolute scale does not matter."""
    sizes = _sizes32()
    mean = power.sum(axis=-1, keepdims=True) / sizes.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.multiply(mean, sizes)
        ratio /= power  # inf for an empty band, like the embedder's ceiling
    # clip(ratio ** ADAPT, floor, ceiling) as the embedder computes it, NaN (0 / 0) to floor.
    lo, hi = embed.DELTA_FLOOR ** (1 / embed.ADAPT), embed.DELTA_CEILING ** (1 / embed.ADAPT)
    np.clip(ratio, lo, hi, out=ratio)
    # (A minimum is NaN if any entry is, and costs less than a boolean mask of the whole.)
    if ratio.size and np.isnan(np.minimum.reduce(ratio, axis=None)):
        ratio[np.isnan(ratio)] = lo
    return np.sqrt(ratio, out=ratio) if embed.ADAPT == 0.5 else ratio**embed.ADAPT


def _relative(
    bands: Array,
    q: int,
    counts: npt.NDArray[np.int64],
    *,
    local: bool = True,
    out: Floats | None = None,
) -> Floats:
    """Band value minus the mean one mark frame (q rows) before and after, normalised per speed
    and band to unit scale (mean absolute value, one row per mark frame), then, if ``local``, by
    its local RMS, and clipped at CLIP; rows without both neighbours in the clip are zero.
    ``bands``: (speeds, rows, bands); written to ``out`` if given."""
    if out is None:
        out = np.empty_like(bands)
    n_rows = bands.shape[1]
    if n_rows <= 2 * q:
        out[...] = 0.0
        return out
    out[:, :q] = 0.0
    out[:, -q:] = 0.0
    # Computed in place, in the order of bands[q:-q] - 0.5 * (bands[:-2q] + bands[2q:]).
    inner = out[:, q:-q]
    np.add(bands[:, : -2 * q], bands[:, 2 * q :], out=inner)
    inner *= 0.5
    np.subtract(bands[:, q:-q], inner, out=inner)
    if (counts < n_rows).any():
        # Rows from the first that some speed runs past: those before are kept by every speed.
        first = max(int(counts.min()) - 2 * q, 0)
        row = np.arange(q + first, n_rows - q)
        inner[:, first:] *= (row[None, :] < (counts[:, None] - q))[:, :, None]
    sub = inner[:, ::q]
    used = np.maximum(((counts - 2 * q) + q - 1) // q, 1)
    scale = np.abs(sub).sum(axis=1) / used[:, None] * 1.2533
    # A band without variation (removed, or beyond the clip's band) gets an infinite scale: 0.
    scale[scale <= 1e-9] = np.inf
    inner /= scale[:, None, :]
    if local:
        # Then by the local RMS over LOCAL_SPAN mark frames around each row, same band: onsets
        # and pitch jumps make the host's own change locally large, and a tile there says little.
        energy = np.square(inner)
        uniform_filter1d(energy, LOCAL_SPAN * q, axis=1, output=energy)
        energy += LOCAL_EPS
        inner /= np.sqrt(energy, out=energy)
    np.clip(inner, -CLIP, CLIP, out=inner)
    return out
