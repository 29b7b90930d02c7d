"""A third-party-style plugin implementing every VoiceSeal hook, for the wiring tests.

Its components are small but real (they compute what they claim), so the platform can be
exercised through each hook without the bundled models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import typer
from fastapi import APIRouter

from voiceseal import hookimpl
from voiceseal.api.deps import AdminDep
from voiceseal.contracts import (
    Audio,
    AudioChunk,
    Capabilities,
    ReferenceClip,
    Register,
    SynthesisOptions,
    Transcript,
    VoiceAssets,
    VoiceHandle,
)
from voiceseal.policy import PolicyContext, Refusal, SynthesisRequest

FORBIDDEN = "forbidden phrase"
SR = 16000


class ToneEngine:
    """One short tone per word, pitched by the voice's reference F0 proxy (zero crossings)."""

    name, version = "tones", "1"
    capabilities = Capabilities(languages=("en",), sample_rates=(SR,), streaming=True)

    def prepare_voice(self, assets: VoiceAssets) -> VoiceHandle:
        ref = assets.references[0]
        crossings = np.count_nonzero(np.diff(np.signbit(ref.audio))) / (
            2 * len(ref.audio) / ref.sample_rate
        )
        return VoiceHandle(assets.voice_id, self.name, float(crossings), {"f0": float(crossings)})

    def synthesize(
        self, text: str, voice: VoiceHandle, options: SynthesisOptions
    ) -> Iterator[AudioChunk]:
        t = np.arange(int(0.15 * SR / options.speed)) / SR
        tone = (0.3 * np.sin(2 * np.pi * voice.state * t)).astype(np.float32)
        for _word in text.split():
            yield AudioChunk(tone, SR)


class SpectrumVocoder:
    name, version = "inverse-rfft", "1"
    capabilities = Capabilities(sample_rates=(SR,))

    def vocode(self, features: Any) -> AudioChunk:
        return AudioChunk(np.fft.irfft(np.asarray(features)).astype(np.float32), SR)


class MeanLevelAdapter:
    """'Trains' a gain that brings the voice to the clips' mean level; loading applies it."""

    name, version, engine = "mean-level", "1", "tones"
    capabilities = Capabilities()

    def train(
        self,
        base: Mapping[str, Path],
        clips: list[ReferenceClip],
        out_dir: Path,
        progress: Callable[[float], None] | None = None,
    ) -> Path:
        level = float(np.mean([np.sqrt(np.mean(c.audio**2)) for c in clips]))
        out = out_dir / "adapter.json"
        out.write_text(json.dumps({"level": level}))
        return out

    def load(self, handle: VoiceHandle, adapter_file: Path) -> VoiceHandle:
        level = json.loads(adapter_file.read_text())["level"]
        return VoiceHandle(
            handle.voice_id, handle.engine, handle.state, {**handle.persist, "level": level}
        )


class SpectralCentroidEncoder:
    name, version, dim = "centroid", "1", 2
    capabilities = Capabilities()

    def embed(self, audio: Audio, sample_rate: int) -> np.ndarray[Any, Any]:
        spec = np.abs(np.fft.rfft(audio))
        c = float(np.sum(np.arange(spec.size) * spec) / max(float(spec.sum()), 1e-9)) / spec.size
        v = np.array([c, 1.0 - c], dtype=np.float32)
        return (v / np.linalg.norm(v)).astype(np.float32)


class SilenceTranscriber:
    """Hears nothing in silence and 'something' otherwise."""

    name, version = "energy", "1"
    capabilities = Capabilities(languages=("en",))

    def transcribe(self, audio: Audio, sample_rate: int, language: str | None) -> Transcript:
        loud = float(np.sqrt(np.mean(audio**2))) > 1e-3
        return Transcript("something" if loud else "", language or "en")


class UpperFrontend:
    name, version = "shout", "1"
    capabilities = Capabilities(languages=("xx",))

    def normalize(self, text: str, language: str) -> str:
        return text.upper()

    def split_sentences(self, text: str, language: str, max_chars: int) -> list[str]:
        return [text[i : i + max_chars] for i in range(0, len(text), max_chars)]


class EveryHook:
    def __init__(self) -> None:
        self.generations: list[dict[str, Any]] = []
        self.consents: list[dict[str, Any]] = []

    @hookimpl
    def register_engines(self, register: Register) -> None:
        register("tones", lambda ctx: ToneEngine(), version="1", description="test tones")

    @hookimpl
    def register_vocoders(self, register: Register) -> None:
        register("inverse-rfft", lambda ctx: SpectrumVocoder(), version="1")

    @hookimpl
    def register_adapters(self, register: Register) -> None:
        register("mean-level", lambda ctx: MeanLevelAdapter(), version="1")

    @hookimpl
    def register_watermarkers(self, register: Register) -> None:
        register("never", lambda ctx: None, unavailable="a test scheme that is never available")

    @hookimpl
    def register_speaker_encoders(self, register: Register) -> None:
        register("centroid", lambda ctx: SpectralCentroidEncoder(), version="1")

    @hookimpl
    def register_transcribers(self, register: Register) -> None:
        register("energy", lambda ctx: SilenceTranscriber(), version="1")

    @hookimpl
    def register_text_frontends(self, register: Register) -> None:
        register("shout", lambda ctx: UpperFrontend(), version="1")

    @hookimpl
    def register_routes(self, router: APIRouter) -> None:
        @router.get("/every-hook/ping")
        def ping(*, principal: AdminDep) -> dict[str, str]:
            """Answers admins only."""
            return {"pong": principal.role}

    @hookimpl
    def register_commands(self, cli: typer.Typer) -> None:
        @cli.command("every-hook")
        def every_hook() -> None:
            """Prints a greeting."""
            typer.echo("every hook says hello")

    @hookimpl
    def check_synthesis(self, request: SynthesisRequest, context: PolicyContext) -> Refusal | None:
        if FORBIDDEN in request.text.lower():
            return Refusal(
                "forbidden_phrase", f"the text contains {FORBIDDEN!r}", plugin="every-hook"
            )
        return None

    @hookimpl
    def generation_recorded(self, record: dict[str, Any]) -> None:
        self.generations.append(record)

    @hookimpl
    def consent_changed(self, record: dict[str, Any]) -> None:
        self.consents.append(record)
