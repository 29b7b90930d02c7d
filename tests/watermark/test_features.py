"""The detector's fast paths compute exactly what their plain numpy equivalents do (bit for bit):
the false-positive bound and every measured figure were taken with the plain versions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voiceseal_plugins.watermark import detect, embed, features, layout
from voiceseal_plugins.watermark.features import Spectrum

Array = npt.NDArray[np.float32]


def _bits(x: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(x).view(np.uint8)


def test_running_sum_is_cumsum_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    x = np.exp(rng.normal(0, 4, (37, 161))).astype(np.float32)
    x[:, 5] = -0.0  # the first column is copied, not added to zero
    x[:, 0] = -0.0
    for view in (x, x[:, ::-1]):
        np.testing.assert_array_equal(
            _bits(features._running_sum(view)), _bits(np.cumsum(view, axis=1))
        )


@pytest.mark.parametrize("rows", [148, 149, 3])
def test_median_is_numpy_median(rows: int) -> None:
    x = np.abs(np.random.default_rng(rows).normal(size=(rows, 161)))
    x[:, 7] = 0.0
    np.testing.assert_array_equal(features._median(x), np.median(x, axis=0))
    x[1, 3] = np.nan
    np.testing.assert_array_equal(features._median(x), np.median(x, axis=0))


def test_chunked_reading_equals_one_reading(
    speech_10s: Array, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Speeds are read in groups; every step is per speed, and the rows read are those of the
    # longest speed of the whole call (the local RMS near the end depends on them), so the
    # grouping must not change a bit of the features.
    clip = speech_10s[16000 : 4 * 16000].astype(np.float64)
    fine = 0.97 * detect._fine_factors()
    cases = [
        (detect._coarse_speeds(), 2, 1.0, False),
        (fine, 4, 3.0, True),
        (np.array([0.8, 1.0, 1.25]), 4, None, True),
    ]
    results = []
    for rows in (features.CHUNK_ROWS, 10**9):
        monkeypatch.setattr(features, "CHUNK_ROWS", rows)
        spectrum = Spectrum.analyse(clip)
        start = spectrum.busiest(1.25)
        results.append(
            [spectrum.band_features(s, q, m, start=start, reliability=r) for s, q, m, r in cases]
        )
    for grouped, whole in zip(*results, strict=True):
        assert grouped.dtype == whole.dtype == np.float32
        np.testing.assert_array_equal(_bits(grouped), _bits(whole))


def test_running_sum_of_a_stack_is_cumsum_bit_for_bit() -> None:
    # The analysis sums both of its tables in one loop.
    rng = np.random.default_rng(4)
    stack = np.exp(rng.normal(0, 4, (2, 37, 161))).astype(np.float32)
    stack[1, :, 0] = -0.0
    np.testing.assert_array_equal(
        _bits(features._running_sum(stack)), _bits(np.cumsum(stack, axis=-1))
    )


def _bands_as_before(
    spectrum: Spectrum, speeds: npt.NDArray[np.float64], n_rows: int, stride: float, start: int
) -> tuple[Array, Array]:
    """The band reading as it was measured with: four separate tables, each read by its own
    gather, rows and edge positions computed on every call, rows clipped to the clip."""
    planes = spectrum.sums  # (4, frames * (bins + 1))
    fine_hop = layout.FRAME_SECONDS / features.FINE_PER_FRAME
    half = layout.FRAME_SECONDS / 2
    centres = (np.arange(n_rows) * stride * fine_hop + half)[None, :] / speeds[:, None]
    rows = np.rint((centres - half) / fine_hop).astype(np.int64) + start
    np.clip(rows, 0, spectrum.n_frames - 1, out=rows)
    n_sums = planes.shape[1] // spectrum.n_frames
    top = float(n_sums - 1)
    pos = np.clip(features._edges()[None, :] * speeds[:, None], 0.0, top)
    lo = np.minimum(np.floor(pos).astype(np.int64), int(top) - 1)
    frac = (pos - lo).astype(np.float32)[:, None, :]
    index = (rows * n_sums)[:, :, None] + lo[:, None, :]
    log_sum, log_bin, power_sum, power_bin = (np.take(t, index) for t in planes)
    log_bin *= frac
    log_sum += log_bin
    power_bin *= frac
    power_sum -= power_bin
    width = (features._sizes()[None, None, :] * speeds[:, None, None]).astype(np.float32)
    log_band = np.subtract(log_sum[..., 1:], log_sum[..., :-1])
    log_band /= width
    power = np.subtract(power_sum[..., :-1], power_sum[..., 1:])
    np.clip(power, 0.0, np.inf, out=power)
    return log_band, power


@pytest.mark.parametrize("whole_copy_frames", [features.WHOLE_COPY_FRAMES, 0])
def test_band_reading_equals_separate_tables(
    speech_10s: Array, monkeypatch: pytest.MonkeyPatch, whole_copy_frames: int
) -> None:
    # Readings of several speeds gather from a copy of the four tables side by side (one gather
    # for all four: of the whole clip, or, for long clips (whole_copy_frames 0 here), of the
    # stretch a reading touches), and the gather's index is kept between clips when every row
    # falls inside the clip; none of it may change a bit.
    monkeypatch.setattr(features, "WHOLE_COPY_FRAMES", whole_copy_frames)
    clip = speech_10s[16000 : 16000 + 24000].astype(np.float64)  # 1.5 s: the slowest case
    spectrum = Spectrum.analyse(clip)
    last = spectrum.n_frames - 1
    fine = 0.93 * detect._fine_factors()
    cases = [
        (detect._coarse_speeds()[:27], 100, 2.0, spectrum.busiest(1.25)),  # index kept
        (detect._coarse_speeds()[27:], 100, 2.0, 0),
        (fine, 300, 1.0, 0),  # the slower speeds run past the clip: rows clipped
        (np.ones(1), spectrum.n_frames, 1.0, 0),  # the clip's own speed, every row inside
        (np.array([0.8, 1.0, 1.25]), 120, 1.0, last - 20),  # from near the end
        (np.array([1.25]), 40, 4.0, 3),
    ]
    kept = []
    for speeds, n_rows, stride, start in cases:
        _, first, final = features._rows(speeds.tobytes(), n_rows, stride)
        kept.append(start + first >= 0 and start + final < spectrum.n_frames)
        got = spectrum._bands(speeds, n_rows, stride, start)
        again = spectrum._bands(speeds, n_rows, stride, start)  # the kept index
        want = _bands_as_before(spectrum, speeds, n_rows, stride, start)
        for g, a, w in zip(got, again, want, strict=True):
            assert g.dtype == w.dtype == np.float32
            np.testing.assert_array_equal(_bits(g), _bits(w))
            np.testing.assert_array_equal(_bits(a), _bits(w))
    assert kept == [True, True, False, True, False, True]  # both ways of reading are checked
    both, copied_from = spectrum._side_by_side(0, last)
    assert copied_from == 0
    np.testing.assert_array_equal(_bits(both), _bits(spectrum.sums.T))
    if whole_copy_frames == 0:  # a stretch: its frames only, from its first
        spectrum = Spectrum.analyse(clip)  # no copy yet (a copy that holds it is reused)
        n_sums = spectrum.sums.shape[1] // spectrum.n_frames
        both, copied_from = spectrum._side_by_side(10, 30)
        assert copied_from == 10 and both.shape == (21 * n_sums, 4)
        np.testing.assert_array_equal(
            _bits(both), _bits(spectrum.sums[:, 10 * n_sums : 31 * n_sums].T)
        )


def _relative_as_before(bands: Array, q: int, counts: npt.NDArray[np.int64]) -> Array:
    """``_relative`` without the local RMS as it was measured with: the rows a speed runs past
    zeroed by a mask over every row."""
    out = np.empty_like(bands)
    n_rows = bands.shape[1]
    out[:, :q] = 0.0
    out[:, -q:] = 0.0
    inner = out[:, q:-q]
    np.add(bands[:, : -2 * q], bands[:, 2 * q :], out=inner)
    inner *= 0.5
    np.subtract(bands[:, q:-q], inner, out=inner)
    row = np.arange(q, n_rows - q)
    inner *= (row[None, :] < (counts[:, None] - q))[:, :, None]
    used = np.maximum(((counts - 2 * q) + q - 1) // q, 1)
    scale = np.abs(inner[:, ::q]).sum(axis=1) / used[:, None] * 1.2533
    scale[scale <= 1e-9] = np.inf
    inner /= scale[:, None, :]
    np.clip(inner, -features.CLIP, features.CLIP, out=inner)
    return out


@pytest.mark.parametrize("counts", [[300, 297, 291, 288], [300, 300, 300, 300], [300, 5, 9, 300]])
def test_relative_masks_only_the_rows_a_speed_runs_past(counts: list[int]) -> None:
    rng = np.random.default_rng(len(counts) + counts[1])
    bands = rng.normal(size=(4, 300, 53)).astype(np.float32)
    bands[1, 100] = -0.0
    valid = np.array(counts)
    got = features._relative(bands, 4, valid, local=False)
    np.testing.assert_array_equal(_bits(got), _bits(_relative_as_before(bands, 4, valid)))


def test_expected_maps_empty_tiles_like_the_embedder() -> None:
    # 0 / 0 (a silent row) is the floor, an empty band in a live row the ceiling; the check for
    # NaN is a minimum over the whole array instead of a mask.
    rng = np.random.default_rng(5)
    power = np.exp(rng.normal(0, 3, (3, 20, 53))).astype(np.float32)
    power[0, 4] = 0.0
    power[1, 7, 9] = 0.0
    got = features._expected(power)
    lo = embed.DELTA_FLOOR ** (1 / embed.ADAPT)
    hi = embed.DELTA_CEILING ** (1 / embed.ADAPT)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = power.sum(axis=-1, keepdims=True) / features._sizes32().sum()
        ratio = ratio * features._sizes32() / power
    ratio = np.clip(ratio, lo, hi)
    ratio[np.isnan(ratio)] = lo
    np.testing.assert_array_equal(_bits(got), _bits(np.sqrt(ratio)))
    assert np.all(got[0, 4] == np.float32(np.sqrt(np.float32(lo))))
    assert got[1, 7, 9] == np.float32(np.sqrt(np.float32(hi)))


@pytest.mark.parametrize("seconds", [1.5, 1.0, 0.02])
def test_rows_padded_to_whole_blocks_are_zeros(speech_10s: Array, seconds: float) -> None:
    # The search folds features onto whole blocks; band_features pads them itself.
    spectrum = Spectrum.analyse(speech_10s[: int(seconds * 16000)].astype(np.float64))
    fine = 1.1 * detect._fine_factors()
    for speeds, q in ((np.ones(1), 4), (fine, 4), (detect._coarse_speeds(), 2)):
        plain = spectrum.band_features(speeds, q)
        padded = spectrum.band_features(speeds, q, rows_multiple=50 * q)
        assert padded.shape[1] % (50 * q) == 0 and padded.shape[1] >= max(plain.shape[1], 1)
        assert padded.dtype == plain.dtype
        np.testing.assert_array_equal(_bits(padded[:, : plain.shape[1]]), _bits(plain))
        assert not padded[:, plain.shape[1] :].any()


@pytest.mark.parametrize("rows", [100, 297, 600])
def test_noise_floor_is_the_same_sorted_or_partitioned(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short lines are sorted, long ones partitioned: the same order statistic either way, ties,
    # zeros of either sign and rows past a speed's end (infinite) included.
    rng = np.random.default_rng(rows)
    power = np.exp(rng.normal(0, 3, (5, rows, 53))).astype(np.float32)
    power[:, ::7] = np.round(power[:, ::7])  # ties, and zeros
    power[1, :40, 3] = -0.0
    counts = np.array([rows, rows - 9, rows - 1, rows // 2, rows])
    valid = np.arange(rows)[None, :] < counts[:, None]
    results = []
    for limit in (0, 10**6):
        monkeypatch.setattr(features, "SORT_MAX_ROWS", limit)
        results.append(features._reliability(power, valid, counts))
    np.testing.assert_array_equal(_bits(results[0]), _bits(results[1]))
