"""The detector's fast paths compute exactly what their plain numpy equivalents do (bit for bit):
the false-positive bound and every measured figure were taken with the plain versions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voiceseal_plugins.watermark import detect, features
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
