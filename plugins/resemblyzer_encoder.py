"""Speaker-encoder plugin ``resemblyzer``: the GE2E d-vector model that ships inside the
``resemblyzer`` package (256-d, 16 kHz), run on CPU. Nothing is downloaded.

Audio is resampled to 16 kHz, volume-normalised and stripped of long pauses by resemblyzer's own
``preprocess_wav`` (webrtcvad), then embedded as the L2-normalised mean of 1.6 s partial windows.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

import voiceseal
from voiceseal.contracts import Audio, Capabilities, ComponentContext, Register, Vector
from voiceseal.errors import InvalidAudio
from voiceseal_plugins._audio_input import validated_mono

NAME = "resemblyzer"
DIM = 256
MODEL_SAMPLE_RATE = 16000
#: Peak below this (about -80 dBFS) is digital silence.
SILENCE_PEAK = 1e-4
#: Speech left after pause removal below which a d-vector says nothing about the speaker.
MIN_SPEECH_SECONDS = 0.5


class ResemblyzerEncoder:
    """Speaker embeddings from resemblyzer's bundled GE2E model (thread-safe)."""

    name = NAME
    dim = DIM
    capabilities = Capabilities(
        languages=(),
        sample_rates=(MODEL_SAMPLE_RATE,),
        streaming=False,
        device="cpu",
        extra={"dim": DIM, "any_input_rate": True, "language_independent": True},
    )

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # resemblyzer imports a deprecated scipy path and webrtcvad imports pkg_resources;
            # both only warn, and the warnings are theirs to fix, not our callers'.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            from resemblyzer import VoiceEncoder, preprocess_wav

        self._preprocess = preprocess_wav
        self._model = VoiceEncoder("cpu", verbose=False)
        self._model.eval()
        # A torch LSTM module is not documented as safe to call from several threads at once.
        self._lock = threading.Lock()
        self.version = _version_string()

    def embed(self, audio: Audio, sample_rate: int) -> Vector:
        """Embed the speaker of mono ``audio`` (N,) at any rate.

        :returns: (256,) float32, unit L2 norm. Cosine similarity is the dot product.
        :raises InvalidAudio: empty, non-finite, silent or speech-free audio.
        """
        samples = _to_model_rate(audio, sample_rate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            speech = np.asarray(self._preprocess(samples), dtype=np.float32)
        if speech.size < MIN_SPEECH_SECONDS * MODEL_SAMPLE_RATE:
            raise InvalidAudio(
                f"only {speech.size / MODEL_SAMPLE_RATE:.2f} s of speech found; the speaker "
                f"encoder needs at least {MIN_SPEECH_SECONDS:.1f} s"
            )
        with self._lock:
            vector = np.asarray(self._model.embed_utterance(speech), dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidAudio("the speaker encoder produced no usable embedding for this audio")
        return (vector / norm).astype(np.float32)


def _to_model_rate(audio: Any, sample_rate: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    samples = validated_mono(audio, sample_rate)
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise InvalidAudio("the audio is silent: there is no speaker to embed")
    if sample_rate != MODEL_SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, sample_rate, MODEL_SAMPLE_RATE).astype(np.float32)
    return samples


def _version_string() -> str:
    try:
        return f"resemblyzer {version('resemblyzer')} (bundled GE2E weights)"
    except PackageNotFoundError:
        return "resemblyzer not installed"


def _build(context: ComponentContext) -> ResemblyzerEncoder:
    return ResemblyzerEncoder()


@voiceseal.hookimpl
def register_speaker_encoders(register: Register) -> None:
    missing = importlib.util.find_spec("resemblyzer") is None
    register(
        NAME,
        _build,
        version=_version_string(),
        description="GE2E d-vectors (256-d) from resemblyzer's bundled weights, CPU",
        unavailable="resemblyzer is not installed (pip install 'voiceseal[cpu]')"
        if missing
        else None,
    )
