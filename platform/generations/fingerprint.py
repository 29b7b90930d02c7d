"""Content fingerprints of generated audio: spectral-peak landmark hashes (Wang-style).

Each generation stores its hashes; a clip whose watermark did not survive can still be matched
to the generation it came from when enough hashes agree on one time offset. Peaks survive codecs,
noise and gain changes; they do not survive speed or pitch changes (the watermark's speed search
covers those).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
from scipy.ndimage import maximum_filter

from voiceseal.kit.audio import Audio, resample

SR = 8000
N_FFT = 512
HOP = 128  # 16 ms
PEAK_NEIGHBOURHOOD = (15, 11)  # frames x bins
FAN_OUT = 5
MAX_DT = 63
MAX_DF = 63
MIN_PEAK_DB = -55.0


def _peaks(audio: Audio, sr: int) -> list[tuple[int, int]]:
    x = resample(audio, sr, SR).astype(np.float64)
    if len(x) < N_FFT:
        return []
    peak = np.max(np.abs(x))
    if peak <= 0:
        return []
    x = x / peak  # gain-invariant
    n = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(N_FFT), axis=1))
    db = 20 * np.log10(spec + 1e-9)
    local_max = maximum_filter(db, size=PEAK_NEIGHBOURHOOD, mode="constant", cval=-np.inf) == db
    # Adaptive floor: peaks must stand out from the frame's median as well as from silence.
    floor = np.maximum(np.median(db, axis=1, keepdims=True) + 10.0, MIN_PEAK_DB)
    t, f = np.nonzero(local_max & (db > floor) & (np.arange(db.shape[1])[None, :] > 2))
    return sorted(zip(t.tolist(), f.tolist(), strict=True))


def landmarks(audio: Audio, sr: int) -> list[tuple[int, int]]:
    """(hash, anchor frame) pairs; hash = f1 (8 bits) | df (7 bits) | dt (6 bits)."""
    peaks = _peaks(audio, sr)
    out: list[tuple[int, int]] = []
    for i, (t1, f1) in enumerate(peaks):
        fanned = 0
        for t2, f2 in peaks[i + 1 :]:
            dt = t2 - t1
            if dt > MAX_DT:
                break
            df = f2 - f1
            if dt < 1 or abs(df) > MAX_DF:
                continue
            h = ((f1 & 0xFF) << 13) | (((df + 64) & 0x7F) << 6) | (dt & 0x3F)
            out.append((h, t1))
            fanned += 1
            if fanned >= FAN_OUT:
                break
    return out


def best_offsets(
    query: Iterable[tuple[int, int]], stored: Iterable[tuple[str, int, int]]
) -> list[tuple[str, int, int]]:
    """Vote: for each candidate, the number of hashes agreeing on one time offset.

    :param query: (hash, offset) of the clip.
    :param stored: (generation_id, hash, offset) rows sharing a hash with the query.
    :returns: (generation_id, votes, offset) sorted by votes, best first.
    """
    by_hash: dict[int, list[int]] = {}
    for h, t in query:
        by_hash.setdefault(h, []).append(t)
    votes: Counter[tuple[str, int]] = Counter()
    for gen_id, h, t_stored in stored:
        for t_query in by_hash.get(h, ()):
            votes[(gen_id, t_stored - t_query)] += 1
    best: dict[str, tuple[int, int]] = {}
    for (gen_id, delta), n in votes.items():
        if n > best.get(gen_id, (0, 0))[0]:
            best[gen_id] = (n, delta)
    return sorted(((g, n, d) for g, (n, d) in best.items()), key=lambda r: -r[1])
