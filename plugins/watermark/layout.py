"""The time-frequency grid the mark lives on, and the keyed assignment of tiles to symbols.

Every rate uses 20 ms frames, a whole number of samples at 16, 22.05, 24, 32, 44.1 and 48 kHz,
so FFT bins are 50 Hz apart at all of them: the same bin index is the same frequency everywhere,
and embedding runs at the input rate without resampling. The mark occupies 100 Hz - 7 kHz, split
into 53 bands whose width grows with frequency (6 %, at least one bin), so that a replay-speed
change shifts every band by the same fraction of its width. A *tile* is one band in one 20 ms
mark frame; a *block* is 50 mark frames (1 s). Every block carries the whole code word, so a clip
of any alignment folds onto the block and every second of audio adds evidence.

Short frames matter: the detector compares a frame with its neighbours, and speech changes less
between frames 20 ms apart than 40 ms apart (measured: the usable signal-to-interference per
second is about three times higher).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from voiceseal_plugins.watermark import prf

SAMPLE_RATES: tuple[int, ...] = (16000, 22050, 24000, 32000, 44100, 48000)
#: Analysis rate of the detector (every clip is resampled to it).
DETECT_RATE = 16000
FRAME_SECONDS = 0.02
LOW_HZ = 100.0
HIGH_HZ = 7000.0
BAND_RELATIVE_WIDTH = 0.06
MIN_BAND_BINS = 1
BLOCK_FRAMES = 50
#: Share of the tiles that carry known (keyed) chips for synchronisation instead of code symbols.
SYNC_FRACTION = 0.2


def frame_length(sample_rate: int) -> int:
    """Samples in one mark frame at ``sample_rate`` (exact for every supported rate)."""
    return round(FRAME_SECONDS * sample_rate)


@cache
def band_edges() -> npt.NDArray[np.int64]:
    """Band edges in FFT bins, shape (n_bands + 1,): band b is bins [edges[b], edges[b+1])."""
    # FFT bins are 1 / FRAME_SECONDS Hz apart at every rate.
    low, high = round(LOW_HZ * FRAME_SECONDS), round(HIGH_HZ * FRAME_SECONDS)
    edges = [low]
    while edges[-1] < high:
        width = max(MIN_BAND_BINS, round(edges[-1] * BAND_RELATIVE_WIDTH))
        edges.append(min(edges[-1] + width, high))
    return np.asarray(edges, dtype=np.int64)


def n_bands() -> int:
    return len(band_edges()) - 1


def bin_band_index(n_bins: int) -> npt.NDArray[np.int64]:
    """For each of ``n_bins`` FFT bins, its band index, or -1 outside the marked range."""
    edges = band_edges()
    index = np.full(n_bins, -1, dtype=np.int64)
    for b in range(len(edges) - 1):
        index[edges[b] : edges[b + 1]] = b
    return index


@dataclass(frozen=True)
class Layout:
    """The keyed secrets of one key: which tiles sync, which code symbol each data tile carries,
    and the sign (chip) of every tile. Arrays have shape (BLOCK_FRAMES, n_bands)."""

    chips: npt.NDArray[np.float64]
    sync: npt.NDArray[np.bool_]
    #: Code-symbol index of each data tile; -1 on sync tiles.
    symbol: npt.NDArray[np.int64]
    n_symbols: int

    @classmethod
    def from_key(cls, key: bytes, n_symbols: int) -> Layout:
        nb = n_bands()
        n_tiles = BLOCK_FRAMES * nb
        n_sync = round(SYNC_FRACTION * n_tiles)
        if n_tiles - n_sync < n_symbols:
            raise ValueError(
                f"{n_symbols} code symbols do not fit in {n_tiles - n_sync} data tiles"
            )
        order = prf.permutation(key, "tiles", n_tiles)
        chips = prf.signs(key, "chips", n_tiles).reshape(BLOCK_FRAMES, nb)
        sync = np.zeros(n_tiles, dtype=bool)
        sync[order[:n_sync]] = True
        symbol = np.full(n_tiles, -1, dtype=np.int64)
        # Round-robin over a keyed order spreads each symbol over frames and bands alike.
        symbol[order[n_sync:]] = np.arange(n_tiles - n_sync) % n_symbols
        return cls(
            chips, sync.reshape(BLOCK_FRAMES, nb), symbol.reshape(BLOCK_FRAMES, nb), n_symbols
        )

    def pattern(self, code: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """±1 sign of every tile for a code word of ±1 symbols, shape (BLOCK_FRAMES, n_bands)."""
        values = np.where(self.sync, 1.0, code[np.maximum(self.symbol, 0)])
        return self.chips * values
