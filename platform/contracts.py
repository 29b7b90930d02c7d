"""Component protocols: what engines, watermarkers, encoders and the rest promise the core.

Every component declares a ``name``, a ``version`` and a capability record, and has a few methods.
Audio crosses every boundary as mono float32 numpy arrays in [-1, 1] plus an explicit sample rate;
nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

#: Mono audio, float32, nominally within [-1, 1].
Audio = npt.NDArray[np.float32]
#: An L2-normalised speaker vector.
Vector = npt.NDArray[np.float32]


# --- shared records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a component can do; shown by ``voiceseal plugins`` and used for dispatch."""

    languages: tuple[str, ...] = ()
    sample_rates: tuple[int, ...] = ()
    streaming: bool = False
    #: "cpu", "cuda" or "any".
    device: str = "cpu"
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AudioChunk:
    """A piece of synthesized audio. ``final`` marks the last chunk of a request."""

    samples: Audio
    sample_rate: int
    final: bool = False
    #: Index of the text segment (sentence) the chunk belongs to.
    segment: int = 0


@dataclass(frozen=True)
class ReferenceClip:
    """A consented clip of the registered voice, decoded to mono float32."""

    audio: Audio
    sample_rate: int
    transcript: str = ""
    language: str = "en"
    sha256: str = ""


@dataclass(frozen=True)
class VoiceAssets:
    """Everything an engine may use to prepare a voice."""

    voice_id: str
    references: tuple[ReferenceClip, ...]
    #: Engine-specific files (e.g. ``{"gpt": Path, "sovits": Path}``) already on local disk.
    model_files: Mapping[str, Path] = field(default_factory=dict)
    #: Engine-specific options stored with the voice.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Precomputed, engine-owned data cached in the registry (e.g. target envelopes).
    cached: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class VoiceHandle:
    """An engine's prepared voice. ``state`` is opaque to the core; engines cache these per voice."""

    voice_id: str
    engine: str
    state: Any
    #: Small JSON-able data the engine wants persisted with the voice (computed once at registration).
    persist: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request options. Engines ignore what they do not support and say so in capabilities."""

    language: str = "en"
    speed: float = 1.0
    seed: int = 0
    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    """A watermark found in a clip."""

    payload: bytes
    #: In [0, 1]; how sure the detector is that the mark (not chance) produced this payload.
    confidence: float
    #: Where the first complete mark starts in the analysed clip, seconds (may be negative when the
    #: clip starts inside a mark).
    offset_seconds: float
    scheme: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    #: Mean word probability or similar, in [0, 1].
    confidence: float = 1.0


# --- protocols --------------------------------------------------------------------------------


@runtime_checkable
class Engine(Protocol):
    """A synthesis engine (DESIGN.md §6)."""

    name: str
    version: str
    capabilities: Capabilities

    def prepare_voice(self, assets: VoiceAssets) -> VoiceHandle:
        """Do the per-voice work once (analysis, prompt extraction); the core caches the handle."""
        ...

    def synthesize(
        self, text: str, voice: VoiceHandle, options: SynthesisOptions
    ) -> Iterator[AudioChunk]:
        """Yield audio for already-normalised text; one or more chunks per sentence."""
        ...


@runtime_checkable
class StreamEmbedder(Protocol):
    """Chunk-by-chunk watermark embedding; output equals whole-file embedding of the same audio."""

    def push(self, audio: Audio) -> Audio:
        """Feed the next samples; returns marked samples ready to send (may lag by one frame)."""
        ...

    def flush(self) -> Audio:
        """Return the remaining marked samples at end of stream."""
        ...


@runtime_checkable
class Watermarker(Protocol):
    """A keyed audio watermark carrying ``payload_bits`` bits."""

    name: str
    version: str
    capabilities: Capabilities
    payload_bits: int

    def embed(self, audio: Audio, sample_rate: int, payload: bytes) -> Audio: ...

    def detect(self, audio: Audio, sample_rate: int) -> Detection | None: ...

    def stream_embedder(self, sample_rate: int, payload: bytes) -> StreamEmbedder: ...


@runtime_checkable
class SpeakerEncoder(Protocol):
    """Speaker embedding model (voice fingerprints)."""

    name: str
    version: str
    capabilities: Capabilities
    dim: int

    def embed(self, audio: Audio, sample_rate: int) -> Vector:
        """Return an L2-normalised vector for the speaker in ``audio``."""
        ...


@runtime_checkable
class Transcriber(Protocol):
    """Speech recogniser used to verify spoken consent."""

    name: str
    version: str
    capabilities: Capabilities

    def transcribe(self, audio: Audio, sample_rate: int, language: str | None) -> Transcript: ...


@runtime_checkable
class Vocoder(Protocol):
    """Features-to-waveform model usable by engines."""

    name: str
    version: str
    capabilities: Capabilities

    def vocode(self, features: Any) -> AudioChunk: ...


@runtime_checkable
class TextFrontend(Protocol):
    """Text normalisation and sentence splitting for some languages."""

    name: str
    version: str
    capabilities: Capabilities

    def normalize(self, text: str, language: str) -> str: ...

    def split_sentences(self, text: str, language: str, max_chars: int) -> list[str]: ...


@runtime_checkable
class AdapterKind(Protocol):
    """A kind of per-voice adapter (e.g. LoRA) with its trainer and loader."""

    name: str
    version: str
    capabilities: Capabilities
    #: The engine whose voices this adapter kind applies to.
    engine: str

    def train(
        self,
        base: Mapping[str, Path],
        clips: list[ReferenceClip],
        out_dir: Path,
        progress: Callable[[float], None] | None = None,
    ) -> Path: ...

    def load(self, handle: VoiceHandle, adapter_file: Path) -> VoiceHandle: ...


# --- registration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentContext:
    """What the core hands a component factory. Secrets never leave this object in logs or reprs."""

    data_dir: Path
    device: str = "cpu"
    watermark_key: bytes = field(default=b"", repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)


#: A factory builds a component lazily, on first use, so importing plugins stays cheap.
Factory = Callable[[ComponentContext], Any]


class Register(Protocol):
    """The ``register`` callback handed to every ``register_*`` hook."""

    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        version: str = "",
        description: str = "",
        aliases: tuple[str, ...] = (),
        unavailable: str | None = None,
    ) -> None:
        """Register a component. ``unavailable`` is a reason shown to users when it cannot run
        here (e.g. a program missing from PATH); such components are listed but never chosen."""
        ...
