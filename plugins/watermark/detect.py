"""Blind detection: search alignment and replay speed by the sync tiles, then decode.

For one speed hypothesis the detector folds the relative features onto the 1 s block for each
sub-frame phase, and correlates the fold with the keyed sync chips at every block offset (a
cyclic shift). The statistic is

    z = sum_t s_t F_t / sqrt(sum_t F_t^2)        (t over the sync tiles)

with s_t the keyed ±1 chips and F_t the folded feature. On audio that does not carry this key's
mark, the chips are independent of F, so by Hoeffding's inequality P(z >= tau) <= exp(-tau^2 / 2)
whatever the audio is. Hypotheses at or above their stage's threshold (:func:`thresholds`) are
decoded with Viterbi, and accepted only if the 16-bit keyed tag verifies, which is independent of
the sync chips. README.md derives the thresholds from the number of hypotheses so that a false
detection has probability <= 1e-6 per clip.
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
#: Share of that bound spent on the clip's own speed; the rest goes to the speed search.
OWN_SPEED_SHARE = 0.1
#: Replay speeds searched when the clip does not decode at its own speed.
SPEED_RANGE = (0.8, 1.25)
#: Coarse grid: relative step, clip seconds analysed, detection frames per mark frame. At a
#: speed error e the alignment drifts by e * (frames analysed): 0.35 % over 1.5 s is a quarter
#: frame, so the grid point nearest the true speed still lines up.
COARSE_SPEED_STEP = 0.007
COARSE_SECONDS = 1.5
COARSE_PER_FRAME = 4
#: Fine grid around the best coarse speeds, on up to FINE_SECONDS of the clip; half a step of
#: error (0.075 %) drifts 0.11 frame over 3 s.
FINE_SPEED_STEP = 0.0015
FINE_SPEED_SPAN = 3  # fine steps each side of a coarse speed
FINE_SECONDS = 3.0
FINE_PER_FRAME = 4
REFINED_SPEEDS = 2
#: Candidates above threshold decoded per stage, best first.
DECODE_CANDIDATES = 3
#: Shortest clip the detector analyses.
MIN_SECONDS = 1.5

Array = npt.NDArray[np.float64]


def _coarse_speeds() -> Array:
    """Log-spaced speeds including both ends of SPEED_RANGE, steps at most COARSE_SPEED_STEP,
    without those next to 1 (the clip's own speed is searched first)."""
    lo, hi = (math.log(s) for s in SPEED_RANGE)
    grid = np.exp(np.linspace(lo, hi, math.ceil((hi - lo) / COARSE_SPEED_STEP) + 1))
    return grid[np.abs(np.log(grid)) > COARSE_SPEED_STEP / 2]


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


def _tau(hypotheses: int, budget: float) -> float:
    """tau with hypotheses * exp(-tau^2/2) * 2^-TAG_BITS <= budget."""
    return math.sqrt(2.0 * math.log(hypotheses * 2.0**-code.TAG_BITS / budget))


def thresholds() -> tuple[float, float]:
    """Sync thresholds at the clip's own speed and in the speed search."""
    own = _tau(hypotheses_per_speed(), OWN_SPEED_SHARE * FALSE_POSITIVE_BOUND)
    search = _tau(speed_search_hypotheses(), (1.0 - OWN_SPEED_SHARE) * FALSE_POSITIVE_BOUND)
    return own, search


def chance(z: float, at_own_speed: bool) -> float:
    """Union bound on the probability that an unmarked clip reaches sync statistic ``z`` in its
    stage and passes the tag (the complement is reported as confidence)."""
    h = hypotheses_per_speed() if at_own_speed else speed_search_hypotheses()
    return min(1.0, h * math.exp(-0.5 * z * z) * 2.0**-code.TAG_BITS)


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

    @property
    def start_seconds(self) -> float:
        """Start of the first complete block in the clip, in seconds of the clip."""
        first = (-self.offset) % layout.BLOCK_FRAMES
        return (
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
        self._sync_by_offset = rolled.reshape(b, b * nb)
        self._mask_by_offset = (rolled != 0).astype(np.float64).reshape(b, b * nb)
        self._data = ~lay.sync
        self.tau_own, self.tau_search = thresholds()

    def search(
        self, spectrum: Spectrum, speed: float, per_frame: int, max_seconds: float | None = None
    ) -> list[Candidate]:
        """All (phase, offset) hypotheses at one speed; the best DECODE_CANDIDATES, best first."""
        feats = spectrum.band_features(speed, per_frame, max_seconds)
        b, nb = layout.BLOCK_FRAMES, feats.shape[1]
        period = b * per_frame
        padded = np.zeros((-(-len(feats) // period) * period, nb))
        padded[: len(feats)] = feats
        # folds[u, q, band]: sum over blocks of mark frame u of the block at sub-frame phase q.
        folds = padded.reshape(-1, b, per_frame, nb).sum(axis=0)
        flat = folds.transpose(0, 2, 1).reshape(b * nb, per_frame)
        num = self._sync_by_offset @ flat  # (offset, phase)
        den = np.sqrt(self._mask_by_offset @ flat**2)
        z = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        out = []
        for index in np.argsort(z, axis=None)[::-1][:DECODE_CANDIDATES]:
            r, q = divmod(int(index), per_frame)
            aligned = np.roll(folds[:, q, :], r, axis=0)  # row t: fold row (t - r) mod B
            out.append(Candidate(float(z[r, q]), speed, per_frame, q, r, aligned))
        return out

    def _soft(self, folded: Array) -> Array:
        """Soft code symbols: each data tile's fold times its chip, summed per symbol."""
        lay = self._layout
        values = (lay.chips * folded)[self._data]
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
        best = self.search(spectrum, 1.0, OWN_PER_FRAME)[0]
        return best, code.viterbi(self._soft(best.folded))[0]

    def detect(self, spectrum: Spectrum) -> Decoded | None:
        if not spectrum.carries_anything:
            return None
        found = self._try(self.search(spectrum, 1.0, OWN_PER_FRAME), self.tau_own)
        if found is not None:
            return found
        coarse = [
            self.search(spectrum, float(s), COARSE_PER_FRAME, COARSE_SECONDS)[0]
            for s in _coarse_speeds()
        ]
        coarse.sort(key=lambda c: -c.z)
        refined: list[Candidate] = []
        for best in coarse[:REFINED_SPEEDS]:
            for f in _fine_factors():
                refined.extend(
                    self.search(spectrum, best.speed * float(f), FINE_PER_FRAME, FINE_SECONDS)
                )
        refined.sort(key=lambda c: -c.z)
        return self._try(refined[:DECODE_CANDIDATES], self.tau_search)

    def _try(self, candidates: list[Candidate], tau: float) -> Decoded | None:
        for candidate in candidates:
            if candidate.z < tau:
                break
            decoded = self.decode(candidate)
            if decoded is not None:
                return decoded
        return None
