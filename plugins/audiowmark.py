"""The ``audiowmark`` watermarker: drives the audiowmark program (GPLv3) as a separate process.

audiowmark has no Python binding and its licence would extend to a program that links it, so it
only ever runs as a subprocess, and only where it is installed: without it on PATH the component
is listed by ``voiceseal plugins`` as unavailable, with the reason.

Payload: audiowmark carries 128 bits. We send the 32-bit payload followed by a 96-bit keyed tag
(BLAKE2b MAC under the platform's watermark key), so a decoded pattern is accepted only if its tag
verifies (false positives 2^-96 per pattern). The 128-bit AES key audiowmark uses is derived from
the same watermark key and written, mode 0600, to a temporary key file for each call.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from voiceseal import hookimpl
from voiceseal.contracts import (
    Audio,
    Capabilities,
    ComponentContext,
    Detection,
    Register,
    StreamEmbedder,
)
from voiceseal.errors import WatermarkError
from voiceseal_plugins.watermark import prf
from voiceseal_plugins.watermark.audio import check_payload, check_rate, check_samples
from voiceseal_plugins.watermark.layout import SAMPLE_RATES

NAME = "audiowmark"
PROGRAM = "audiowmark"
PAYLOAD_BYTES = 4
TAG_BYTES = 12
TIMEOUT_SECONDS = 600
_PATTERN = re.compile(r"^pattern\s+(\S+)\s+([0-9a-f]{32})\s+([-0-9.]+)\s+([-0-9.]+)")


class _BufferedStream:
    """audiowmark needs the whole signal; this embedder buffers until ``flush``."""

    def __init__(self, owner: AudiowmarkWatermarker, sample_rate: int, payload: bytes) -> None:
        self._owner, self._rate, self._payload = owner, sample_rate, payload
        self._chunks: list[np.ndarray] = []

    def push(self, audio: Audio) -> Audio:
        self._chunks.append(check_samples(audio, for_embedding=True))
        return np.zeros(0, dtype=np.float32)

    def flush(self) -> Audio:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0)
        return self._owner.embed(audio.astype(np.float32), self._rate, self._payload)


class AudiowmarkWatermarker:
    name = NAME
    version = "1"
    payload_bits = 8 * PAYLOAD_BYTES
    capabilities = Capabilities(
        sample_rates=SAMPLE_RATES,  # audiowmark resamples internally
        streaming=False,
        device="cpu",
        extra={"program": PROGRAM, "note": "stream embedding buffers the whole signal"},
    )

    def __init__(self, key: bytes, program: str) -> None:
        self._key = key
        self._program = program

    def __repr__(self) -> str:  # never show the key
        return f"AudiowmarkWatermarker(program={self._program!r})"

    @contextmanager
    def _workdir(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="voiceseal-awm-") as tmp:
            folder = Path(tmp)
            key_file = folder / "key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"key {prf.stream(self._key, 'audiowmark-aes-key', 16).hex()}\n")
            yield folder

    def _run(self, args: list[str]) -> str:
        done = subprocess.run(
            [self._program, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise WatermarkError(
                f"audiowmark {args[0]} failed: {detail[-1] if detail else done.returncode}"
            )
        return done.stdout

    def _message(self, payload: bytes) -> str:
        return (payload + prf.mac(self._key, payload, TAG_BYTES)).hex()

    def embed(self, audio: Audio, sample_rate: int, payload: bytes) -> Audio:
        sample_rate = check_rate(sample_rate)
        samples = check_samples(audio, for_embedding=True)
        message = self._message(check_payload(payload))
        with self._workdir() as folder:
            sf.write(folder / "in.wav", samples, sample_rate, subtype="FLOAT")
            self._run(
                [
                    "add",
                    "-q",
                    "--key",
                    str(folder / "key"),
                    str(folder / "in.wav"),
                    str(folder / "out.wav"),
                    message,
                ]
            )
            marked, rate = sf.read(folder / "out.wav", dtype="float32")
        if rate != sample_rate or len(marked) != len(samples):
            raise WatermarkError("audiowmark changed the sample rate or length of the audio")
        return np.asarray(marked, dtype=np.float32).reshape(-1)

    def detect(self, audio: Audio, sample_rate: int) -> Detection | None:
        sample_rate = check_rate(sample_rate)
        samples = check_samples(audio, for_embedding=False)
        with self._workdir() as folder:
            sf.write(folder / "in.wav", samples, sample_rate, subtype="FLOAT")
            out = self._run(["get", "--key", str(folder / "key"), str(folder / "in.wav")])
        for line in out.splitlines():
            match = _PATTERN.match(line.strip())
            if match is None:
                continue
            word = bytes.fromhex(match.group(2))
            payload, tag = word[:PAYLOAD_BYTES], word[PAYLOAD_BYTES:]
            if prf.mac(self._key, payload, TAG_BYTES) != tag:
                continue
            where = match.group(1)
            offset = 0.0
            if ":" in where:
                minutes, seconds = where.split(":")
                offset = 60.0 * float(minutes) + float(seconds)
            return Detection(
                payload=payload,
                confidence=1.0 - 2.0 ** (-8 * TAG_BYTES),
                offset_seconds=offset,
                scheme=NAME,
                extra={"sync_score": float(match.group(3)), "decode_error": float(match.group(4))},
            )
        return None

    def stream_embedder(self, sample_rate: int, payload: bytes) -> StreamEmbedder:
        return _BufferedStream(self, check_rate(sample_rate), check_payload(payload))


@hookimpl
def register_watermarkers(register: Register) -> None:
    program = shutil.which(PROGRAM)

    def build(context: ComponentContext) -> AudiowmarkWatermarker:
        if program is None:  # the core never builds an unavailable component; guard anyway
            raise WatermarkError("audiowmark not found on PATH")
        return AudiowmarkWatermarker(context.watermark_key, program)

    register(
        NAME,
        build,
        version="1",
        description="audiowmark (GPLv3) run as a separate process; 32-bit payload + 96-bit keyed tag",
        unavailable=None if program else "audiowmark not found on PATH",
    )
