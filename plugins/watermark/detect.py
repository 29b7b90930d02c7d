"""Blind detection: search alignment and replay speed by the sync tiles, then decode.

For a set of speed hypotheses at once, the detector folds the weighted relative features onto
the 1 s block for each sub-frame phase, and correlates the fold with the keyed sync chips at
every block offset (a cyclic shift: one matrix product scores them all). The statistic is

    z = sum_t s_t F_t / sqrt(sum_t F_t^2)        (t over the sync tiles)

with s_t the keyed ±1 chips and F_t the folded feature. On audio that does not carry this key's
mark, the chips are independent of F, so by Hoeffding's inequality P(z >= tau) <= exp(-tau^2 / 2)
whatever the audio is. Each stage (the clip's own speed, read plainly; the same, read from the
time-smoothed analysis; the speed search) decodes at most DECODE_CANDIDATES of its best
hypotheses at or above its threshold, and accepts one only if the 24-bit keyed tag verifies,
which is independent of the sync chips. :func:`false_positive_bound` (derived in README.md)
bounds a false detection by about 4.4e-7 per clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voiceseal_plugins.watermark import code, layout
from voiceseal_plugins.watermark.features import FINE_PER_FRAME as OWN_PER_FRAME
from voiceseal_plugins.watermark.features import Spectrum

#: Target bound on the probability of a false detection, per clip analysed.
FALSE_POSITIVE_BOUND = 1e-6
#: Sync statistic a hypothesis needs to be decoded, at the clip's own speed and in the speed
#: search. With a 24-bit tag and at most DECODE_CANDIDATES decodes per stage the bound holds
#: whatever they are (see :func:`false_positive_bound`); they save decoding time on unmarked
#: audio, and sit below the statistic of marked clips under the attacks that matter.
SYNC_THRESHOLD_OWN = 3.0
SYNC_THRESHOLD_SEARCH = 4.0
#: Replay speeds searched when the clip does not decode at its own speed.
SPEED_RANGE = (0.8, 1.25)
#: Coarse grid: relative step, clip seconds analysed, detection frames per mark frame. At a
#: speed error e the alignment drifts by e * (seconds analysed): half a step (0.5 %) over 1 s is
#: 5 ms, a quarter frame, so the grid point nearest the true speed still lines up. The coarse
#: stage only ranks speeds (it never decodes), so it skips the costlier weights.
COARSE_SPEED_STEP = 0.01
COARSE_SECONDS = 1.0
COARSE_PER_FRAME = 2
#: Fine grid around the best coarse speed, on up to FINE_SECONDS of the clip; half a fine step
#: of error (0.125 %) drifts 3.75 ms over 3 s; the grid reaches 0.75 % each way, since the best
#: coarse speed is often the neighbour of the nearest one.
FINE_SPEED_STEP = 0.0025
FINE_SPEED_SPAN = 3  # fine steps each side of a coarse speed
FINE_SECONDS = 3.0
FINE_PER_FRAME = 4
#: Most hypotheses decoded per stage, best first (the false-positive bound counts them).
DECODE_CANDIDATES = 3
#: Readings of the clip at its own speed, each a stage of the bound: plain, then (if that does
#: not decode) time-smoothed (``Spectrum.band_features(..., smooth=True)``), which holds up
#: better under added noise.
OWN_SPEED_READINGS = 2
#: Shortest clip the detector analyses: one block's span, which carries the whole code word
#: (of a clip of exactly 1 s the relative feature leaves about 47 of the block's 50 mark frames;
#: the code's redundancy covers the rest; shorter clips hold less). The own-speed fold pads
#: the one partial block; measured on 200 speech clips of 1 s, 0.995 detected clean, every one
#: with its full payload (README.md, Limits).
MIN_SECONDS = 1.0
#: Shortest clip the speed search runs on; shorter ones (from MIN_SECONDS) are read at their own
#: speed only. The search costs about 7 ms per clip whatever its length, so on unmarked 1 s clips
#: it ran at 117-129x real time on one core, against 155-166x on 1.5 s clips (the shortest
#: searched before and now) and 176-236x on 3 s clips, same machine; read at their own speed
#: only, unmarked 1 s clips run at 464-483x. So 1-1.5 s clips are added without making the
#: slowest case slower. Crops keep their speed; a sped-up or slowed-down clip needs 1.5 s. (The
#: search itself reads clips shorter than its windows: its busiest-stretch choice then starts
#: at the clip's start.)
SPEED_SEARCH_MIN_SECONDS = 1.5
#: Length the platform should give an output before checking its mark, so that the check passes
#: every time rather than most of the time: a clip of MIN_SECONDS is read most of the time, and
#: a short answer is mostly room tone. Measured when the minimum was 1.5 s (and the platform's
#: pad the minimum plus 1 s): outputs with about 0.9 s of speech padded with room tone to 2.5 s
#: verified every time.
VERIFY_SECONDS = 2.5

Array = npt.NDArray[np.float64]


def _coarse_speeds() -> Array:
    """Log-spaced speeds including both ends of SPEED_RANGE, steps at most COARSE_SPEED_STEP.
    Speeds near 1 stay in: a clip 0.5 % off speed drifts too far over 3 s for the own-speed
    stage, and the fine grid around them covers it."""
    lo, hi = (math.log(s) for s in SPEED_RANGE)
    return np.exp(np.linspace(lo, hi, math.ceil((hi - lo) / COARSE_SPEED_STEP) + 1))


def _fine_factors() -> Array:
    return np.exp(np.arange(-FINE_SPEED_SPAN, FINE_SPEED_SPAN + 1) * FINE_SPEED_STEP)


def hypotheses_per_speed(per_frame: int = OWN_PER_FRAME) -> int:
    """(phase, offset) pairs searched at one speed."""
    return per_frame * layout.BLOCK_FRAMES


def speed_search_hypotheses() -> int:
    """(speed, phase, offset) hypotheses the speed search can decode.

    Refined speeds are products of a coarse speed and a fine factor; the bound counts every such
    product, not only those refined for a given clip, since which ones are refined depends on it.
    """
    return len(_coarse_speeds()) * len(_fine_factors()) * hypotheses_per_speed(FINE_PER_FRAME)


def thresholds() -> tuple[float, float]:
    """Sync thresholds at the clip's own speed and in the speed search."""
    return SYNC_THRESHOLD_OWN, SYNC_THRESHOLD_SEARCH


def _stage_chance(z: float, hypotheses: int) -> float:
    """Bound on the chance that one stage falsely accepts an unmarked clip at sync statistic
    ``z`` or above: it decodes at most DECODE_CANDIDATES hypotheses, and on average at most
    ``hypotheses * exp(-z^2/2)`` reach ``z`` (Hoeffding); each passes the tag with 2^-TAG_BITS."""
    attempts = min(float(DECODE_CANDIDATES), hypotheses * math.exp(-0.5 * z * z))
    return attempts * 2.0**-code.TAG_BITS


def false_positive_bound() -> float:
    """The design's bound on the probability of a false detection per clip (README.md)."""
    own, search = thresholds()
    return OWN_SPEED_READINGS * _stage_chance(own, hypotheses_per_speed()) + _stage_chance(
        search, speed_search_hypotheses()
    )


def chance(z: float) -> float:
    """Bound on the probability that an unmarked clip yields a detection with sync statistic
    ``z`` or more, in any stage (the complement is reported as confidence)."""
    return min(
        1.0,
        OWN_SPEED_READINGS * _stage_chance(z, hypotheses_per_speed())
        + _stage_chance(z, speed_search_hypotheses()),
    )


@dataclass(frozen=True)
class Candidate:
    """One (speed, sub-frame phase, block offset) hypothesis and its sync statistic."""

    z: float
    speed: float
    per_frame: int
    phase: int
    offset: int
    #: Folded features aligned to the block, shape (BLOCK_FRAMES, n_bands).
    folded: Array
    #: Where in the clip (seconds) the analysed stretch starts.
    origin: float = 0.0

    @property
    def start_seconds(self) -> float:
        """Start of the first complete block in the analysed stretch, in seconds of the clip."""
        first = (-self.offset) % layout.BLOCK_FRAMES
        return self.origin + (
            (first * self.per_frame + self.phase)
            * layout.FRAME_SECONDS
            / self.per_frame
            / self.speed
        )


@dataclass(frozen=True)
class Decoded:
    """An accepted hypothesis: its payload passed the keyed tag."""

    payload: bytes
    candidate: Candidate
    #: Correlation of the soft symbols with the decoded code word, in [-1, 1].
    agreement: float


class Detector:
    """The blind detector for one key (stateless between clips, safe to share)."""

    def __init__(self, key: bytes, lay: layout.Layout) -> None:
        self._key = key
        self._layout = lay
        b, nb = lay.chips.shape
        sync = np.where(lay.sync, lay.chips, 0.0)
        # Row r of these holds the sync chips (and sync mask) that fold row u meets at offset r,
        # i.e. tile (u + r) mod B, flattened over (u, band): one matrix product scores all offsets.
        rolled = np.stack([np.roll(sync, -r, axis=0) for r in range(b)])
        self._sync_by_offset = rolled.reshape(b, b * nb).astype(np.float32)
        self._mask_by_offset = (rolled != 0).astype(np.float32).reshape(b, b * nb)
        self._data = ~lay.sync
        self.tau_own, self.tau_search = thresholds()
        if false_positive_bound() > FALSE_POSITIVE_BOUND:
            raise RuntimeError("watermark detector settings break the false-positive bound")

    def search(
        self,
        spectrum: Spectrum,
        speeds: Array,
        per_frame: int,
        max_seconds: float | None = None,
        keep: int = DECODE_CANDIDATES,
        start: int = 0,
        reliability: bool = True,
        smooth: bool = False,
    ) -> list[Candidate]:
        """Every (speed, phase, offset) hypothesis for ``speeds`` at once; the best ``keep``,
        best first. ``smooth``: the smoothed reading (see ``Spectrum.band_features``)."""
        speeds = np.asarray(speeds, dtype=np.float64).reshape(-1)
        origin = start * layout.FRAME_SECONDS / OWN_PER_FRAME
        b = layout.BLOCK_FRAMES
        period = b * per_frame
        # Padded with zero rows to whole blocks.
        feats = spectrum.band_features(
            speeds,
            per_frame,
            max_seconds,
            start=start,
            reliability=reliability,
            smooth=smooth,
            rows_multiple=period,
        )
        n_speeds, n_rows, nb = feats.shape
        n_blocks = n_rows // period
        # folds[s, u, q, band]: sum over blocks of mark frame u of the block at sub-frame phase q.
        folds = feats.reshape(n_speeds, n_blocks, b, per_frame, nb)
        folds = folds[:, 0] if n_blocks == 1 else folds.sum(axis=1)
        flat = folds.transpose(0, 2, 1, 3).reshape(n_speeds * per_frame, b * nb)
        flat = flat.astype(np.float32, copy=False)
        num = flat @ self._sync_by_offset.T  # (speed * phase, offset)
        den = np.sqrt((flat * flat) @ self._mask_by_offset.T)
        z = np.divide(num, den, out=np.zeros_like(num), where=den > 0).reshape(-1)
        best = np.argpartition(z, -keep)[-keep:] if len(z) > keep else np.arange(len(z))
        out = []
        for index in best[np.argsort(z[best])[::-1]]:
            row, r = divmod(int(index), b)
            si, q = divmod(row, per_frame)
            aligned = np.roll(folds[si, :, q, :], r, axis=0).astype(np.float64)
            out.append(
                Candidate(float(z[index]), float(speeds[si]), per_frame, q, r, aligned, origin)
            )
        return out

    def _soft(self, folded: Array) -> Array:
        """Soft code symbols: each data tile's fold times its chip, summed per symbol."""
        lay = self._layout
        signed = lay.chips * folded
        values = signed[self._data]
        soft = np.bincount(lay.symbol[self._data], weights=values, minlength=lay.n_symbols)
        return soft.astype(np.float64)

    def decode(self, candidate: Candidate) -> Decoded | None:
        soft = self._soft(candidate.folded)
        bits, metric = code.viterbi(soft)
        payload = code.check_payload(self._key, bits)
        if payload is None:
            return None
        norm = float(np.abs(soft).sum())
        return Decoded(payload, candidate, metric / norm if norm > 0 else 0.0)

    def best_guess(self, spectrum: Spectrum) -> tuple[Candidate, npt.NDArray[np.uint8]]:
        """The best hypothesis at the clip's own speed and its decoded bits, accepted or not
        (for benchmarks: bit accuracy below the detection threshold)."""
        best = self.search(spectrum, np.ones(1), OWN_PER_FRAME)[0]
        return best, code.viterbi(self._soft(best.folded))[0]

    def detect(self, spectrum: Spectrum, speed_search: bool = True) -> Decoded | None:
        """The first hypothesis that decodes, stage by stage; ``speed_search=False`` stops after
        the clip's own speed (clips shorter than SPEED_SEARCH_MIN_SECONDS). Skipping a stage
        only lowers the false-positive bound, which counts every stage."""
        if not spectrum.carries_anything:
            return None
        found = self._try(self.search(spectrum, np.ones(1), OWN_PER_FRAME), self.tau_own)
        if found is not None:
            return found
        # The smoothed reading: measured on 200 speech clips of 3 s under white noise at 20 dB
        # SNR, 0.35 of them decode plainly and 0.92 with it (either reading).
        found = self._try(
            self.search(spectrum, np.ones(1), OWN_PER_FRAME, smooth=True), self.tau_own
        )
        if found is not None or not speed_search:
            return found
        # Both grids read the busiest stretch of the clip (pauses carry no mark): the coarse
        # one a second of marked time at any speed of the range, the fine one up to
        # FINE_SECONDS around the best coarse speed. Measured on speed-changed clips: the best
        # coarse speed is the right one to within the fine grid's reach.
        start = spectrum.busiest(COARSE_SECONDS / SPEED_RANGE[0])
        best = self.search(
            spectrum,
            _coarse_speeds(),
            COARSE_PER_FRAME,
            COARSE_SECONDS,
            keep=1,
            start=start,
            reliability=False,
        )[0]
        refined = self.search(
            spectrum,
            best.speed * _fine_factors(),
            FINE_PER_FRAME,
            FINE_SECONDS,
            start=spectrum.busiest(FINE_SECONDS / best.speed),
        )
        return self._try(refined, self.tau_search)

    def _try(self, candidates: list[Candidate], tau: float) -> Decoded | None:
        for candidate in candidates:
            if candidate.z < tau:
                break
            decoded = self.decode(candidate)
            if decoded is not None:
                return decoded
        return None
