"""Band hybrid: the WORLD-transferred signal below a crossover, the untouched source above it.

WORLD resynthesis loses most intelligibility in the consonant band: fricative noise and plosive
bursts come back smeared by its 5 ms frames and smooth envelopes. Above ~4 kHz there is little
voiced energy and few cues to who is speaking, so the source signal itself carries that band.
Measured on the bench (Whisper tiny.en, 9 target voices): 8.6 -> 8.3 % mean and 11.9 -> 11.2 % worst word error rate,
speaker similarity gain +0.119 -> +0.124; with the engine's earlier, weaker F0 tracking it saved
2.3 points (14.5 -> 12.2 %, 4 voices).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Centre of the crossover and width of its raised-cosine transition.
CROSSOVER_HZ = 4000.0
CROSSOVER_WIDTH_HZ = 1000.0


def keep_high_band(
    processed: npt.NDArray[np.floating],
    original: npt.NDArray[np.floating],
    sample_rate: int,
    *,
    crossover_hz: float = CROSSOVER_HZ,
    width_hz: float = CROSSOVER_WIDTH_HZ,
) -> npt.NDArray[np.float64]:
    """``processed`` below ``crossover_hz``, ``original`` above it; length of ``original``.

    Both signals must be time-aligned (WORLD resynthesis is). The two gains sum to one at every
    frequency, so a band where both signals agree passes unchanged; the filter is zero-phase
    (one FFT over the whole utterance), so no delay is added.
    """
    if processed.ndim != 1 or original.ndim != 1:
        raise ValueError("keep_high_band takes mono signals (N,)")
    if not 0.0 < width_hz / 2.0 < crossover_hz < sample_rate / 2.0 - width_hz / 2.0:
        raise ValueError(
            f"crossover {crossover_hz} Hz (width {width_hz} Hz) does not fit below the Nyquist "
            f"frequency of {sample_rate} Hz audio"
        )
    n = original.size
    if n == 0:
        return np.zeros(0)
    low = np.zeros(n)
    m = min(n, processed.size)
    low[:m] = processed[:m]
    nfft = 1 << int(np.ceil(np.log2(n + 1)))
    freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    ramp = np.clip((freqs - (crossover_hz - width_hz / 2.0)) / width_hz, 0.0, 1.0)
    high_gain = 0.5 - 0.5 * np.cos(np.pi * ramp)
    spectrum = (
        np.fft.rfft(low, nfft) * (1.0 - high_gain)
        + np.fft.rfft(original.astype(np.float64), nfft) * high_gain
    )
    return np.fft.irfft(spectrum, nfft)[:n]
