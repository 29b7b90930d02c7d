"""The ``gpt-sovits`` engine: prepare a voice once, then synthesize sentence by sentence.

Per request, nothing mutable is shared: each segment's sampler draws from its own seed (derived
from the request's seed and the segment's index), the decoder's prior noise from a generator
made from the request's seed, and the loaded networks are only read. Two requests for different
voices (or the same one) can therefore run at the same time and each gets what it would get
alone.

With batching on (the default, see the settings), every segment's GPT decoding is a request to
the continuous-batching scheduler of its GPT file (:mod:`.batching`): a request submits all its
segments at once (all queued or none: a full queue refuses it with ``Overloaded``, HTTP 503,
before any audio), then decodes SoVITS audio from their tokens as they arrive, in order. When
the caller goes away (the generator is closed, or the request's cancel token fires: see
``voiceseal.kit.cancel``) its segments are cancelled and their rows freed at the next step.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypedDict

import numpy as np
import torch

from voiceseal.contracts import (
    AudioChunk,
    Capabilities,
    SynthesisOptions,
    VoiceAssets,
    VoiceHandle,
)
from voiceseal.errors import Cancelled, EngineFailed, InvalidInput, Overloaded, VoiceSealError
from voiceseal.kit import cancel
from voiceseal_models.gpt_sovits.checkpoint import SUPPORTED_SOVITS_VERSIONS, CheckpointError
from voiceseal_models.gpt_sovits.sampling import SamplingParams
from voiceseal_models.gpt_sovits.serving import (
    AudioJob,
    QueueFull,
    RequestCancelled,
    RequestHandle,
    RequestTooLong,
    ServingError,
    T2SRequest,
)
from voiceseal_models.gpt_sovits.serving.vocoder import prior_frames
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn
from voiceseal_models.gpt_sovits.t2s import T2SResult, Text2Semantic
from voiceseal_models.gpt_sovits.text import Language, split_sentences
from voiceseal_models.gpt_sovits.text.sentences import CLAUSE_MARKS
from voiceseal_plugins.gpt_sovits.batching import Batcher, LoadedGPT
from voiceseal_plugins.gpt_sovits.features import FeatureModels, TextFeatures
from voiceseal_plugins.gpt_sovits.model_files import FILE_ROLES, ModelPair, resolve_files, vet_pair
from voiceseal_plugins.gpt_sovits.model_pool import ModelPool
from voiceseal_plugins.gpt_sovits.plugin import NAME, engine_version
from voiceseal_plugins.gpt_sovits.prompt import (
    LANGUAGES,
    REFERENCE_SECONDS,
    VoicePrompt,
    as_language,
    build_prompt,
    check_references,
    persist,
    reference_digest,
)
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings, env_name
from voiceseal_plugins.gpt_sovits.streaming import NoiseSource, Samples, StreamingDecoder
from voiceseal_plugins.gpt_sovits.vocoding import LoadedSoVITS, batching_on

SAMPLE_RATE: Final = 32000
SPEED_RANGE: Final = (0.25, 4.0)
PROMPT_CACHE_SIZE: Final = 64
_DTYPES: Final = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Decorrelates the decoder's noise stream from the sampler's, both made from one request seed.
_NOISE_SEED_SALT: Final = 0x5DEECE66D
_SEED_MASK: Final = (1 << 64) - 1
_SEGMENT_SEED_MASK: Final = (1 << 32) - 1  # the scheduler's seed range
_SEGMENT_SEED_STEP: Final = 0x9E3779B9  # odd: consecutive segments get far-apart seeds
#: Suggested wait before retrying a request refused by a full queue (a few segments' time).
RETRY_AFTER_S: Final = 2.0


@dataclass(frozen=True)
class VoiceState:
    """What a prepared voice holds: its vetted files and its prompt (the handle's ``state``)."""

    pair: ModelPair
    prompt: VoicePrompt


def segment_seed(seed: int, index: int) -> int:
    """The sampler seed of segment ``index`` of a request seeded ``seed`` (32 bits, as the
    scheduler takes). Segment 0 of a seed below 2**32 keeps the seed itself."""
    folded = (seed ^ (seed >> 32)) & _SEGMENT_SEED_MASK
    return (folded + index * _SEGMENT_SEED_STEP) & _SEGMENT_SEED_MASK


class _Decoding(TypedDict):
    """Keyword arguments shared by ``Text2Semantic.generate`` and ``iter_tokens``."""

    top_k: int
    top_p: float
    temperature: float
    repetition_penalty: float
    early_stop_num: int
    max_steps: int
    generator: torch.Generator


@dataclass(frozen=True)
class _Request:
    """Validated per-request settings."""

    language: Language
    sampling: SamplingParams
    speed: float
    noise_scale: float
    stream: bool
    seed: int


class GPTSoVITSEngine:
    """Engine ``gpt-sovits`` (see the package docstring)."""

    name = NAME
    capabilities = Capabilities(
        languages=LANGUAGES,
        sample_rates=(SAMPLE_RATE,),
        streaming=True,
        device="any",
        extra={
            "reference_seconds": REFERENCE_SECONDS,
            "model_versions": SUPPORTED_SOVITS_VERSIONS,
            "engine_options": FILE_ROLES,
            "model_files": ("gpt", "sovits"),
            "reference_free": True,
            "request_options": ("stream", "noise_scale"),
        },
    )

    def __init__(self, settings: GPTSoVITSSettings, device: str = "cpu") -> None:
        self.settings = settings
        self.version = engine_version()
        self.device = torch.device(settings.device or device)
        self.dtype = _DTYPES[settings.dtype]
        self.features = FeatureModels(settings, self.device)
        self.models: ModelPool[LoadedGPT | LoadedSoVITS] = ModelPool(
            settings.max_loaded_models, on_evict=_retire
        )
        self._prompts: OrderedDict[str, VoicePrompt] = OrderedDict()
        self._prompts_lock = threading.Lock()
        #: How many prompts were computed (not found in the cache); for tests and metrics.
        self.prompt_builds = 0
        # Requests (by their cancel token, which the API binds around all of a request's
        # work) that the scheduler admitted once: their later sentences wait for room in a
        # full queue instead of being refused halfway through.
        self._admitted: weakref.WeakSet[cancel.CancelToken] = weakref.WeakSet()
        self._admitted_lock = threading.Lock()

    def _continues(self, token: cancel.CancelToken | None) -> Callable[[], bool] | None:
        """For a request admitted before: "keep waiting for room" while it is not cancelled."""
        if token is None:
            return None
        with self._admitted_lock:
            if token not in self._admitted:
                return None
        return lambda: not token.cancelled

    # -- models ------------------------------------------------------------------------------

    def gpt(self, pair: ModelPair) -> Text2Semantic:
        return self._loaded_gpt(pair).model

    def _loaded_gpt(self, pair: ModelPair) -> LoadedGPT:
        loaded = self.models.get(pair.gpt_sha256, lambda: self._load_gpt(pair))
        if not isinstance(loaded, LoadedGPT):
            raise InvalidInput("the file given as GPT is loaded as a SoVITS model by another voice")
        return loaded

    def batcher(self, pair: ModelPair) -> Batcher | None:
        """The scheduler (and its thread) that decodes this pair's GPT, or None without
        batching. Voices whose GPT files have the same bytes share it."""
        if not self.settings.batching:
            return None
        return self._loaded_gpt(pair).batcher(self.settings)

    def close(self) -> None:
        """Shutdown: cancel queued and running decodes, end the serving threads, drop models."""
        for item in self.models.clear():
            item.close()

    def sovits(self, pair: ModelPair) -> SynthesizerTrn:
        return self._loaded_sovits(pair).model

    def _loaded_sovits(self, pair: ModelPair) -> LoadedSoVITS:
        loaded = self.models.get(pair.sovits_sha256, lambda: self._load_sovits(pair))
        if not isinstance(loaded, LoadedSoVITS):
            raise InvalidInput("the file given as SoVITS is loaded as a GPT model by another voice")
        return loaded

    # Headers were vetted before loading; what fails here is a truncated or inconsistent tensor
    # section, reported like any other refused file.

    def _load_gpt(self, pair: ModelPair) -> LoadedGPT:
        try:
            model = Text2Semantic.from_checkpoint(pair.gpt, device=self.device, dtype=self.dtype)
        except (CheckpointError, ValueError, RuntimeError) as exc:
            raise InvalidInput(f"the GPT file cannot be loaded: {exc}") from None
        return LoadedGPT(model)

    def _load_sovits(self, pair: ModelPair) -> LoadedSoVITS:
        try:
            model = SynthesizerTrn.from_checkpoint(
                pair.sovits, device=self.device, dtype=self.dtype
            )
        except (CheckpointError, ValueError, RuntimeError) as exc:
            raise InvalidInput(f"the SoVITS file cannot be loaded: {exc}") from None
        loaded = LoadedSoVITS(model)
        # With the model, not in the first stream's way (vocoding.PRECAPTURE_PHONES).
        loaded.prepare_windows(self.settings)
        return loaded

    # -- voices ------------------------------------------------------------------------------

    def prepare_voice(self, assets: VoiceAssets) -> VoiceHandle:
        unknown = sorted(set(assets.options) - set(FILE_ROLES))
        if unknown:
            raise InvalidInput(
                f"unknown gpt-sovits engine_options {unknown}; accepted: {', '.join(FILE_ROLES)}"
            )
        check_references(assets.references)
        pair = vet_pair(resolve_files(assets.model_files, assets.options, self.settings.model_dir))
        if pair.is_pro and self.settings.sv_model is None:
            raise InvalidInput(
                f"the SoVITS file is a {pair.sovits_version} model, which needs the ERes2NetV2 "
                f"speaker model; set {env_name('sv_model')} to pretrained_eres2netv2w24s4ep4.ckpt"
            )
        sovits = self.sovits(pair)
        self.gpt(pair)  # a full load now, so a broken tensor section fails the registration
        digest = reference_digest(assets.references, pair)
        with self._prompts_lock:
            prompt = self._prompts.get(digest)
            if prompt is not None:
                self._prompts.move_to_end(digest)
        if prompt is None:
            prompt = build_prompt(assets.references, pair, sovits, self.features, assets.cached)
            with self._prompts_lock:
                self.prompt_builds += 1
                self._prompts[digest] = prompt
                while len(self._prompts) > PROMPT_CACHE_SIZE:
                    self._prompts.popitem(last=False)
        return VoiceHandle(assets.voice_id, NAME, VoiceState(pair, prompt), persist(prompt, pair))

    # -- synthesis ---------------------------------------------------------------------------

    def _request(self, options: SynthesisOptions) -> _Request:
        language = as_language(options.language, "language")
        try:
            sampling = SamplingParams(
                options.top_k, options.top_p, options.temperature, options.repetition_penalty
            )
        except ValueError as exc:
            raise InvalidInput(f"sampling options refused: {exc}") from None
        lo, hi = SPEED_RANGE
        if not lo <= options.speed <= hi:
            raise InvalidInput(f"speed must be between {lo} and {hi}, got {options.speed}")
        extra: Mapping[str, Any] = options.extra
        noise_scale = extra.get("noise_scale", self.settings.noise_scale)
        if not isinstance(noise_scale, int | float) or not 0.0 <= float(noise_scale) <= 2.0:
            raise InvalidInput(f"noise_scale must be a number in [0, 2], got {noise_scale!r}")
        return _Request(
            language,
            sampling,
            float(options.speed),
            float(noise_scale),
            bool(extra.get("stream", False)),
            int(options.seed) & _SEED_MASK,
        )

    def segments(self, text: str, language: Language) -> list[TextFeatures]:
        """The text cut into synthesis segments (official cut method; long pieces split at
        clause marks or spaces, never truncated), each with its phones and BERT features.
        Raises ``InvalidInput``."""
        if not text or not text.strip():
            raise InvalidInput("text is empty")
        s = self.settings
        pieces = [
            segment
            for part in wrap_text(text.strip(), s.max_segment_chars - 1)
            for segment in split_sentences(part, language, s.split_method, s.max_segment_chars)
        ]
        if not pieces:
            raise InvalidInput(f"nothing to speak in {text!r} (only punctuation or spaces)")
        return [self.features.text(piece, language) for piece in pieces]

    def synthesize(
        self, text: str, voice: VoiceHandle, options: SynthesisOptions
    ) -> Iterator[AudioChunk]:
        state = voice.state
        if not isinstance(state, VoiceState):
            raise InvalidInput(f"voice {voice.voice_id} was not prepared by the {NAME} engine")
        req = self._request(options)
        # Everything that can refuse the text runs before the first sample is produced.
        segments = self.segments(text, req.language)
        loaded, vocoder = self._loaded_gpt(state.pair), self._loaded_sovits(state.pair)
        jobs = [self._job(loaded.model, state.prompt, s, req, i) for i, s in enumerate(segments)]
        batcher = loaded.batcher(self.settings) if self.settings.batching else None
        sources: list[_TokenSource]
        handles: list[RequestHandle] = []
        token = cancel.current()
        if batcher is None:
            sources = [_Direct(loaded.model, job) for job in jobs]
        else:
            handles = _submit(batcher, jobs, self._continues(token))
            sources = [_Batched(batcher, handle) for handle in handles]
            if token is not None:
                with self._admitted_lock:
                    self._admitted.add(token)
        unregister = token.on_cancel(lambda: _cancel(handles)) if token is not None else None
        try:
            noise = torch.Generator(device=self.device)
            noise.manual_seed(req.seed ^ _NOISE_SEED_SALT)
            gap = np.zeros(round(self.settings.fragment_interval_s * SAMPLE_RATE), np.float32)
            last = len(segments) - 1
            for index, segment in enumerate(segments):
                pieces = self._segment(vocoder, state.prompt, segment, req, sources[index], noise)
                for samples, is_last_piece in pieces:
                    final = is_last_piece and index == last
                    yield AudioChunk(_limit(samples), SAMPLE_RATE, final=final, segment=index)
                if index < last and gap.size:
                    yield AudioChunk(gap, SAMPLE_RATE, segment=index)
        finally:
            # Done, failed or closed by a caller that went away: the rows of segments not
            # decoded yet go back to other requests at the scheduler's next step.
            _cancel(handles)
            if unregister is not None:
                unregister()

    def _job(
        self,
        t2s: Text2Semantic,
        prompt: VoicePrompt,
        segment: TextFeatures,
        req: _Request,
        index: int,
    ) -> T2SRequest:
        """The GPT decoding of one segment, whichever path runs it."""
        return T2SRequest(
            phones=torch.tensor(prompt.phone_ids + segment.phone_ids, dtype=torch.int64),
            bert=torch.cat([prompt.bert, segment.bert], dim=1),
            prompt=prompt.semantic,
            sampling=req.sampling,
            seed=segment_seed(req.seed, index),
            early_stop_num=t2s.default_early_stop_num,
            max_steps=self.settings.max_tokens,
        )

    def _segment(
        self,
        vocoder: LoadedSoVITS,
        prompt: VoicePrompt,
        segment: TextFeatures,
        req: _Request,
        source: _TokenSource,
        noise_generator: torch.Generator,
    ) -> Iterator[tuple[Samples, bool]]:
        """The segment's audio pieces, each with whether it is the segment's last: a stream's
        pieces leave as soon as they are decoded (a look-ahead for the last one would hold
        each piece back by one window)."""
        sovits = vocoder.model
        target = torch.tensor(segment.phone_ids, dtype=torch.int64, device=self.device)
        noise = NoiseSource(sovits.config.inter_channels, noise_generator, self.device, self.dtype)
        # The window decoder reads the same list the streaming decoder appends to.
        tokens: list[int] = []

        def window(start: int, end: int) -> Samples:
            return _decode(sovits, tokens[start:end], start, target, prompt, noise, req)

        graphs = self.device.type == "cuda" and req.speed == 1

        def stream_window(start: int, end: int) -> Samples:
            # On CUDA a window replays a graph of the decode (the same noise frames as `_decode`
            # would draw); elsewhere, or where no graph applies, it is decoded eagerly.
            if graphs:
                piece = tokens[start:end]
                frames, per_token = _latent_frames(sovits, len(piece), req.speed)
                draw = (
                    noise.frames(round(start * per_token), frames)[0]
                    if req.noise_scale > 0
                    else None
                )
                job = AudioJob(
                    torch.tensor(piece, dtype=torch.int64),
                    target.cpu(),
                    prompt.ge,
                    noise=draw,
                    noise_scale=req.noise_scale,
                )
                audio = vocoder.window(job, self.settings)
                if audio is not None:
                    return np.ascontiguousarray(audio.numpy(), dtype=np.float32)
            return window(start, end)

        try:
            if not req.stream:
                # The official hand-over `y[-idx:]`: after a stop at the step cap (a runaway
                # 60 s segment) it drops the first token, which a stream has already sent; on
                # the normal EOS stop both paths decode the same tokens.
                tokens.extend(source.result().tokens.tolist())
                if tokens and batching_on(self.settings, sovits):
                    yield self._batched(vocoder, tokens, target, prompt, noise, req), True
                else:
                    yield window(0, len(tokens)), True
                return
            s = self.settings
            decoder = StreamingDecoder(
                stream_window,
                s.stream_chunk_tokens,
                s.stream_context_tokens,
                s.stream_crossfade_tokens,
                tokens=tokens,
            )
            for token in source.tokens():
                audio = decoder.push(token)
                if audio is not None and audio.size:
                    yield audio, False
            yield decoder.finish(), True
        except VoiceSealError:
            raise
        except ValueError as exc:  # shapes or ids the networks refuse: a bug or a bad voice
            raise InvalidInput(f"{NAME} could not synthesize this segment: {exc}") from None

    def _batched(
        self,
        vocoder: LoadedSoVITS,
        tokens: list[int],
        phones: torch.Tensor,
        prompt: VoicePrompt,
        noise: NoiseSource,
        req: _Request,
    ) -> Samples:
        """What ``_decode`` gives for the whole segment, decoded in a batch with whatever
        other requests' segments wait (the same noise frames: the audio is its own)."""
        frames = prior_frames(vocoder.model, len(tokens), req.speed)
        job = AudioJob(
            torch.tensor(tokens, dtype=torch.int64),
            phones.cpu(),
            prompt.ge,
            noise=noise.frames(0, frames)[0] if req.noise_scale > 0 else None,
            speed=req.speed,
            noise_scale=req.noise_scale,
        )
        audio = vocoder.decode(job, self.settings)
        return np.ascontiguousarray(audio.numpy(), dtype=np.float32)


class _TokenSource(Protocol):
    """Where one segment's semantic tokens come from."""

    def result(self) -> T2SResult: ...

    def tokens(self) -> Iterator[int]: ...


@dataclass(frozen=True)
class _Direct:
    """Decoding in the caller's thread, alone (batching off)."""

    t2s: Text2Semantic
    job: T2SRequest

    def _decoding(self) -> _Decoding:
        job, sampler = self.job, torch.Generator(device=self.t2s.device)
        sampler.manual_seed(job.seed)
        return {
            "top_k": job.sampling.top_k,
            "top_p": job.sampling.top_p,
            "temperature": job.sampling.temperature,
            "repetition_penalty": job.sampling.repetition_penalty,
            "early_stop_num": job.early_stop_num,
            "max_steps": job.max_steps,
            "generator": sampler,
        }

    def result(self) -> T2SResult:
        return self.t2s.generate(
            self.job.phones, self.job.bert, self.job.prompt, **self._decoding()
        )

    def tokens(self) -> Iterator[int]:
        job = self.job
        return self.t2s.iter_tokens(job.phones, job.bert, job.prompt, **self._decoding())


@dataclass(frozen=True)
class _Batched:
    """A segment submitted to the GPT file's scheduler."""

    batcher: Batcher
    handle: RequestHandle

    def result(self) -> T2SResult:
        try:
            return self.handle.result()
        except ServingError as exc:
            raise self._error(exc) from None

    def tokens(self) -> Iterator[int]:
        try:
            for chunk in self.handle.chunks():
                yield from chunk.tokens.tolist()
        except ServingError as exc:
            raise self._error(exc) from None

    def _error(self, exc: ServingError) -> VoiceSealError:
        if isinstance(exc, RequestCancelled):
            why = self.batcher.failure(self.handle)
            if why is None:
                return Cancelled("the request was cancelled before its audio was complete")
            return EngineFailed(f"{NAME} failed while decoding this request ({why})")
        # The scheduler names an out-of-memory failure in its message (it frees the memory and
        # goes on): the same request may well pass later, so it is a 503, not a 500.
        if "out of memory" in str(exc):
            return Overloaded(
                f"{NAME} ran out of GPU memory for this request; retry later",
                retry_after=RETRY_AFTER_S,
            )
        return EngineFailed(f"{NAME} failed on this request: {exc}")


def _submit(
    batcher: Batcher, jobs: list[T2SRequest], wait_for_room: Callable[[], bool] | None
) -> list[RequestHandle]:
    try:
        return batcher.submit(jobs, wait_for_room=wait_for_room)
    except QueueFull as exc:
        if wait_for_room is not None:  # it waited for room until its request was cancelled
            raise Cancelled("the request was cancelled while it waited for room") from None
        raise Overloaded(
            f"{NAME} is at capacity ({exc}); retry in a few seconds", retry_after=RETRY_AFTER_S
        ) from None
    except RequestTooLong as exc:
        raise InvalidInput(
            f"a sentence is too long for {NAME}'s batch slots: {exc} (or raise "
            f"{env_name('batch_capacity')})"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"{NAME} could not synthesize this text: {exc}") from None
    except RuntimeError as exc:  # the engine is shutting down
        raise EngineFailed(f"{NAME} is not serving: {exc}") from None


def _cancel(handles: list[RequestHandle]) -> None:
    for handle in handles:
        if not handle.done:
            handle.cancel()


def _retire(item: LoadedGPT | LoadedSoVITS) -> None:
    item.retire()


def wrap_text(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut after the last clause mark in reach, else at
    the last space, else (unspaced scripts, very long words) hard. Nothing is dropped.

    The official splitter cuts over-long pieces at a fixed width, which can split a word; this
    runs first so that the splitter only ever sees pieces that fit.
    """
    pieces: list[str] = []
    while len(text) > limit:
        window = text[: limit + 1]
        cut = max(window.rfind(mark) for mark in CLAUSE_MARKS) + 1
        if cut <= limit // 3:
            cut = window.rfind(" ")
        if cut <= limit // 3:
            cut = limit
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return [p for p in pieces if p]


def _latent_frames(sovits: SynthesizerTrn, tokens: int, speed: float) -> tuple[int, float]:
    """Frames the prior has for ``tokens`` semantic tokens, and latent frames per token."""
    return prior_frames(sovits, tokens, speed), sovits.config.latent_upsampling / speed


def _decode(
    sovits: SynthesizerTrn,
    tokens: list[int],
    start: int,
    phones: torch.Tensor,
    prompt: VoicePrompt,
    noise: NoiseSource,
    req: _Request,
) -> Samples:
    """Audio of ``tokens`` (which start at token ``start`` of the segment)."""
    codes = torch.tensor(tokens, dtype=torch.int64)[None]
    frames, per_token = _latent_frames(sovits, len(tokens), req.speed)
    draw = noise.frames(round(start * per_token), frames) if req.noise_scale > 0 else None
    audio = sovits.decode(
        codes, phones, ge=prompt.ge, noise=draw, noise_scale=req.noise_scale, speed=req.speed
    )
    return np.ascontiguousarray(audio[0, 0].float().cpu().numpy(), dtype=np.float32)


def _limit(samples: Samples) -> Samples:
    # The official code divides a whole output by its peak when it exceeds 1; a stream cannot
    # know its peak in advance, so both paths clip (real models stay well inside), and the
    # core's loudness normaliser and peak limiter set the final level.
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
