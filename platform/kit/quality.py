"""The reference-clip quality gate: duration, SNR estimate, clipping, silence, speech presence.

Every measured value is returned (and stored with the sample); a refusal names the check that failed.
The SNR estimate compares the loud frames (speech) with the quiet ones (the noise floor between
words), which needs no clean reference and is robust for the 3–60 s clips this gate sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from voiceseal.errors import InvalidAudio
from voiceseal.kit.audio import Audio

FRAME_S = 0.02


@dataclass(frozen=True)
class QualityRules:
    min_seconds: float = 3.0
    max_seconds: float = 10.0
    min_snr_db: float = 15.0
    max_clipping_ratio: float = 0.001
    max_silence_ratio: float = 0.6
    min_speech_ratio: float = 0.3


#: GPT-SoVITS prompts must be 3–10 s; training and consent clips may be longer.
REFERENCE_RULES = QualityRules()
TRAINING_RULES = QualityRules(min_seconds=3.0, max_seconds=600.0)
CONSENT_RULES = QualityRules(
    min_seconds=2.0, max_seconds=60.0, max_silence_ratio=0.7, min_speech_ratio=0.2
)


@dataclass(frozen=True)
class QualityReport:
    duration_s: float
    snr_db: float
    clipping_ratio: float
    silence_ratio: float
    speech_ratio: float
    peak: float
    failures: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = list(self.failures)
        return d


def measure(audio: Audio, sr: int, rules: QualityRules = REFERENCE_RULES) -> QualityReport:
    n = len(audio)
    duration = n / sr
    hop = max(1, int(FRAME_S * sr))
    frames = audio[: n - n % hop].reshape(-1, hop) if n >= hop else audio.reshape(1, -1)
    energy = np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12
    db = 10 * np.log10(energy)
    peak = float(np.max(np.abs(audio))) if n else 0.0
    # Digital silence or near-silence: -60 dBFS frames carry nothing.
    silent = db < -60.0
    silence_ratio = float(np.mean(silent))
    active_db = db[~silent]
    if active_db.size >= 4:
        noise = float(np.percentile(db, 10))
        signal = float(np.percentile(active_db, 90))
        snr = min(signal - noise, 100.0)
        # Speech frames: clearly above the noise floor (12 dB) — music and steady noise
        # score as "speech" here too, which the transcriber check catches for consent clips.
        speech_ratio = float(np.mean(db > noise + 12.0))
    else:
        snr, speech_ratio = 0.0, 0.0
    clipping_ratio = float(np.mean(np.abs(audio) >= 0.999)) if n else 0.0

    failures: list[str] = []
    if duration < rules.min_seconds:
        failures.append(f"duration {duration:.2f} s is below {rules.min_seconds:.1f} s")
    if duration > rules.max_seconds:
        failures.append(f"duration {duration:.2f} s is above {rules.max_seconds:.1f} s")
    if silence_ratio > rules.max_silence_ratio:
        failures.append(f"silence ratio {silence_ratio:.2f} is above {rules.max_silence_ratio:.2f}")
    if speech_ratio < rules.min_speech_ratio:
        failures.append(f"speech presence {speech_ratio:.2f} is below {rules.min_speech_ratio:.2f}")
    if snr < rules.min_snr_db:
        failures.append(f"estimated SNR {snr:.1f} dB is below {rules.min_snr_db:.0f} dB")
    if clipping_ratio > rules.max_clipping_ratio:
        failures.append(
            f"clipping ratio {clipping_ratio:.4f} is above {rules.max_clipping_ratio:.4f}"
        )
    return QualityReport(
        duration, snr, clipping_ratio, silence_ratio, speech_ratio, peak, tuple(failures)
    )


def require(audio: Audio, sr: int, rules: QualityRules, what: str) -> QualityReport:
    report = measure(audio, sr, rules)
    if not report.ok:
        raise InvalidAudio(
            f"{what} refused: {'; '.join(report.failures)}", quality=report.as_dict()
        )
    return report
