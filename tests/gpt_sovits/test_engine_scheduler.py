"""The ``gpt-sovits`` engine decoding through the continuous-batching scheduler (CPU, fixtures).

Results equal the unbatched path for the same seed, requests for different voices share steps,
a full queue refuses with 503 (engine and HTTP), a client that disconnects frees its row, and a
request that fails inside the scheduler fails alone.

To make "these requests were in the scheduler at the same time" certain rather than likely, a
test can *hold* the serving thread: it submits a real request whose chunk callback waits, so
the thread stops inside a step while the test queues what it wants; releasing it lets the next
step admit everything queued at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.api.app import create_app
from voiceseal.contracts import ReferenceClip, SynthesisOptions, VoiceAssets, VoiceHandle
from voiceseal.errors import Cancelled, InvalidInput, Overloaded, VoiceSealError
from voiceseal.kit import audio as audio_io
from voiceseal.kit.blobs import store
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.cancel import CancelToken, bound
from voiceseal.kit.db import transaction
from voiceseal.registry.base import utcnow
from voiceseal.registry.models import Consent, Generation, Speaker, Tenant, Voice, VoiceSample
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings
from voiceseal_models.gpt_sovits.serving import (
    AudioJob,
    RequestCancelled,
    RequestFailed,
    T2SRequest,
)
from voiceseal_plugins.gpt_sovits import vocoding
from voiceseal_plugins.gpt_sovits.batching import Batcher
from voiceseal_plugins.gpt_sovits.engine import GPTSoVITSEngine, segment_seed
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings
from voiceseal_plugins.gpt_sovits.vocoding import batching_on

# The engine reads HuBERT through transformers (the gpt-sovits extra; `make test` installs it).
pytest.importorskip("transformers", reason="transformers is not installed (gpt-sovits extra)")

TEXT = "Hello there, this is a short test of the engine."
#: Short segments and a low token cap keep the random models' runaway generations short.
FAST: dict[str, Any] = {"max_tokens": 120, "max_segment_chars": 120}
WAIT_S = 60.0  # bound of every poll; reached only when something is broken


# --------------------------------------------------------------------------- helpers


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (bounded: a hang fails the test, it never passes)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


@contextmanager
def held(batcher: Batcher) -> Iterator[None]:
    """The batcher's serving thread stopped inside a step until the block ends (see above)."""
    entered, release = threading.Event(), threading.Event()

    def wait(_chunk: object) -> None:
        entered.set()
        release.wait(WAIT_S)

    # Any text will do: it decodes exactly one chunk, whose callback holds the thread.
    gate = T2SRequest(
        phones=torch.ones(4, dtype=torch.int64),
        bert=torch.zeros(1024, 4),
        prompt=None,
        ignore_eos=True,
        max_steps=batcher.config.first_chunk_tokens,
        on_chunk=wait,
    )
    [handle] = batcher.submit([gate])
    assert entered.wait(WAIT_S), "the gate request never reached its first chunk"
    try:
        yield
    finally:
        release.set()
        handle.result(WAIT_S)


def _together(batcher: Batcher, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` (requests to engines served by ``batcher``) on threads that the held
    scheduler queues all at once, so that its next step admits them together; their results."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with held(batcher):
        for t in threads:
            t.start()
        _until(lambda: batcher.scheduler.queued == len(calls), "all requests are queued")
    for t in threads:
        t.join(WAIT_S)
    return results


def _clip(seconds: float = 4.0, f0: float = 150.0, rate: int = 24000, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _assets(voice_id: str, transcript: str, f0: float, seed: int) -> VoiceAssets:
    clip = ReferenceClip(_clip(f0=f0, seed=seed), 24000, transcript, "en")
    return VoiceAssets(voice_id, (clip,), {}, {"gpt": "voice.ckpt", "sovits": "voice.pth"}, {})


VOICE_A = ("a", "The quick brown fox jumps over the lazy dog.", 150.0, 0)
VOICE_B = ("b", "A different speaker reads this.", 230.0, 4)


def _say(engine: GPTSoVITSEngine, voice: VoiceHandle, text: str = TEXT, **options: Any) -> Any:
    extra = {k: options.pop(k) for k in ("stream", "noise_scale") if k in options}
    chunks = engine.synthesize(text, voice, SynthesisOptions(extra=extra, **options))
    return np.concatenate([c.samples for c in chunks])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("gsv-models")
    (folder / "voice.ckpt").write_bytes((fixtures_dir / "t2s_tiny.ckpt").read_bytes())
    (folder / "voice.pth").write_bytes((fixtures_dir / "s2_v2_tiny.pth").read_bytes())
    ckpt = torch.load(fixtures_dir / "t2s_tiny.ckpt", map_location="cpu", weights_only=True)
    ckpt["info"] = "GPT-e2"  # same weights, another file: another pool entry
    torch.save(ckpt, folder / "other.ckpt")
    return folder


@pytest.fixture(scope="module")
def make_engine(hubert_dir: Path, model_dir: Path) -> Iterator[Callable[..., GPTSoVITSEngine]]:
    made: list[GPTSoVITSEngine] = []

    def make(**settings: Any) -> GPTSoVITSEngine:
        values = {"hubert_dir": hubert_dir, "model_dir": model_dir, **FAST, **settings}
        engine = GPTSoVITSEngine(GPTSoVITSSettings(**values), device="cpu")
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture(scope="module")
def direct(make_engine: Callable[..., GPTSoVITSEngine]) -> GPTSoVITSEngine:
    return make_engine(batching=False)


@pytest.fixture(scope="module")
def batched(make_engine: Callable[..., GPTSoVITSEngine]) -> GPTSoVITSEngine:
    return make_engine()


# --------------------------------------------------------------------------- engine


def test_defaults_and_segment_seeds(direct: GPTSoVITSEngine, batched: GPTSoVITSEngine) -> None:
    voice = batched.prepare_voice(_assets(*VOICE_A))
    batcher = batched.batcher(voice.state.pair)
    assert batcher is not None and direct.batcher(voice.state.pair) is None
    # On the CPU: per-request generators (exact), four rows, a queue of four per row.
    config = batcher.config
    assert (config.exact_rng, config.max_rows, config.max_queue) == (True, 4, 16)
    assert config.first_chunk_tokens == config.chunk_tokens == batched.settings.stream_chunk_tokens
    # Segment 0 keeps a 32-bit seed; later segments and 64-bit seeds map into 32 bits.
    assert segment_seed(11, 0) == 11
    seeds = {segment_seed(s, i) for s in (0, 11, 2**40 + 11, 2**63 + 5) for i in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2**32 for s in seeds)


@pytest.mark.parametrize(
    ("text", "seed", "stream"),
    [
        (TEXT, 11, False),
        (TEXT, 11, True),
        (TEXT, 2**40 + 3, True),
        # Three segments: each is its own scheduler request, decoded side by side.
        ("One small cat sat there. " * 12, 5, False),
    ],
)
def test_batched_equals_direct_for_the_same_seed(
    direct: GPTSoVITSEngine, batched: GPTSoVITSEngine, text: str, seed: int, stream: bool
) -> None:
    solo = direct.prepare_voice(_assets(*VOICE_A))
    voice = batched.prepare_voice(_assets(*VOICE_A))
    batcher = batched.batcher(voice.state.pair)
    assert batcher is not None
    steps = batcher.stats.steps
    expected = _say(direct, solo, text, seed=seed, stream=stream)
    assert np.array_equal(_say(batched, voice, text, seed=seed, stream=stream), expected)
    assert batcher.stats.steps > steps  # it went through the scheduler
    assert batcher.scheduler.active == 0 and batcher.scheduler.queued == 0


def test_requests_for_different_voices_share_steps(
    direct: GPTSoVITSEngine, batched: GPTSoVITSEngine
) -> None:
    jobs = [(VOICE_A, 11, False), (VOICE_B, 12, True), (VOICE_A, 13, True), (VOICE_B, 11, False)]
    solo = [_say(direct, direct.prepare_voice(_assets(*v)), seed=s, stream=st) for v, s, st in jobs]
    voices = [batched.prepare_voice(_assets(*v)) for v, _, _ in jobs]
    assert voices[0].state.prompt.digest != voices[1].state.prompt.digest
    batcher = batched.batcher(voices[0].state.pair)
    assert batcher is not None and batched.batcher(voices[1].state.pair) is batcher
    peak = batcher.stats.peak_rows
    results = _together(
        batcher,
        [
            partial(_say, batched, v, seed=s, stream=st)
            for v, (_, s, st) in zip(voices, jobs, strict=True)
        ],
    )
    # All four were admitted in one step and decoded side by side, two voices, two prompts...
    assert batcher.stats.peak_rows == len(jobs) > peak
    # ... and each got exactly what it gets alone, unbatched.
    for i, audio in enumerate(results):
        assert np.array_equal(audio, solo[i]), f"request {i} changed in the batch"


def test_whole_file_segments_decode_their_audio_in_shared_sovits_batches(
    direct: GPTSoVITSEngine, make_engine: Callable[..., GPTSoVITSEngine]
) -> None:
    """With SoVITS batching on (the CUDA default; forced here on the CPU), whole-file segments
    of concurrent requests go through the SoVITS file's worker, and each request's audio is
    what it gets alone (its own noise frames; only float rounding differs), speed included.
    Streams do not use the whole-file worker (off CUDA they decode their windows eagerly)."""
    engine = make_engine(sovits_batching=True)
    jobs = [(VOICE_A, 11, 1.0), (VOICE_B, 12, 1.0), (VOICE_A, 13, 1.25), (VOICE_B, 11, 1.0)]
    solo = [_say(direct, direct.prepare_voice(_assets(*v)), seed=s, speed=sp) for v, s, sp in jobs]
    voices = [engine.prepare_voice(_assets(*v)) for v, _, _ in jobs]
    batcher = engine.batcher(voices[0].state.pair)
    assert batcher is not None
    vocoder = engine._loaded_sovits(voices[0].state.pair)
    assert vocoder.active_worker is None  # made on first use
    assert not batching_on(direct.settings, vocoder.model)  # unset: off on the CPU
    window = AudioJob(torch.arange(20), torch.arange(1, 9), voices[0].state.prompt.ge)
    assert vocoder.window(window, engine.settings) is None  # no graphs off CUDA: eager windows
    assert vocoder.prepare_windows(engine.settings) == 0 and vocoder._windows is None
    results = _together(
        batcher,
        [
            partial(_say, engine, v, seed=s, speed=sp)
            for v, (_, s, sp) in zip(voices, jobs, strict=True)
        ],
    )
    worker = vocoder.active_worker
    assert worker is not None and 1 <= worker.batches <= len(jobs)
    for i, audio in enumerate(results):
        assert audio.shape == solo[i].shape, f"request {i}"
        np.testing.assert_allclose(audio, solo[i], atol=1e-4, rtol=0, err_msg=f"request {i}")
    batches = worker.batches
    streamed = _say(engine, voices[0], seed=11, stream=True)
    assert worker.batches == batches  # the stream's windows did not go through it
    reference = _say(direct, direct.prepare_voice(_assets(*VOICE_A)), seed=11, stream=True)
    assert np.array_equal(streamed, reference)
    # Evicted or shut down: the worker ends; a later segment decodes on its own thread.
    vocoder.retire()
    assert vocoder.active_worker is None
    again = _say(engine, voices[0], seed=11)
    np.testing.assert_allclose(again, solo[0], atol=1e-4, rtol=0)


def test_full_queue_refuses_with_overloaded(make_engine: Callable[..., GPTSoVITSEngine]) -> None:
    engine = make_engine(batch_max_queue=1)
    voice = engine.prepare_voice(_assets(*VOICE_A))
    batcher = engine.batcher(voice.state.pair)
    assert batcher is not None
    waiting: list[Any] = []
    thread = threading.Thread(target=lambda: waiting.append(_say(engine, voice, seed=3)))
    with held(batcher):
        thread.start()
        _until(lambda: batcher.scheduler.queued == 1, "the first request waits")
        with pytest.raises(Overloaded, match="at capacity") as refused:
            _say(engine, voice, seed=4)
        assert refused.value.status_code == 503 and refused.value.retry_after > 0
        # A multi-segment request is queued whole or not at all: nothing of it stays behind.
        with pytest.raises(Overloaded):
            _say(engine, voice, "One small cat sat there. " * 12, seed=4)
    thread.join(WAIT_S)
    assert waiting and waiting[0].size > 0  # the one that got in was served
    _until(lambda: not batcher.scheduler.busy, "the scheduler is idle")
    assert _say(engine, voice, seed=4).size > 0  # room again: served


def test_later_sentences_of_an_admitted_request_wait_for_room(
    direct: GPTSoVITSEngine, make_engine: Callable[..., GPTSoVITSEngine]
) -> None:
    """The API binds one cancel token around all of a request's sentences: once admitted, its
    next sentence waits for room in a full queue (refusing it would cut a stream short), until
    it gets in or its request is cancelled; new requests are refused meanwhile."""
    engine = make_engine(batch_max_queue=1)
    voice = engine.prepare_voice(_assets(*VOICE_A))
    batcher = engine.batcher(voice.state.pair)
    assert batcher is not None
    served, kept, dropped = CancelToken(), CancelToken(), CancelToken()
    results: dict[str, Any] = {}

    def say(name: str, token: CancelToken, seed: int) -> None:
        try:
            with bound(token):
                results[name] = _say(engine, voice, seed=seed)
        except VoiceSealError as exc:
            results[name] = exc

    for token in (kept, dropped):
        say("first sentence", token, 3)  # admitted: served at once
    threads = {
        "new": threading.Thread(target=say, args=("new", served, 5)),
        "kept": threading.Thread(target=say, args=("kept", kept, 4)),
        "dropped": threading.Thread(target=say, args=("dropped", dropped, 4)),
    }
    waits = batcher.stats.room_waits
    with held(batcher):
        threads["new"].start()  # a new request takes the only place in the queue
        _until(lambda: batcher.scheduler.queued == 1, "the new request waits in the queue")
        threads["kept"].start()
        threads["dropped"].start()
        _until(lambda: batcher.stats.room_waits == waits + 2, "both next sentences wait")
        with pytest.raises(Overloaded):  # while another new request is refused
            _say(engine, voice, seed=6)
        dropped.cancel()  # its client went away: it stops waiting
        threads["dropped"].join(WAIT_S)
        assert isinstance(results["dropped"], Cancelled)
    for name in ("new", "kept"):
        threads[name].join(WAIT_S)
    solo = direct.prepare_voice(_assets(*VOICE_A))
    assert np.array_equal(results["new"], _say(direct, solo, seed=5))
    assert np.array_equal(results["kept"], _say(direct, solo, seed=4))


def test_text_longer_than_a_row_is_refused_with_the_reason(
    make_engine: Callable[..., GPTSoVITSEngine],
) -> None:
    engine = make_engine(batch_capacity=64)
    voice = engine.prepare_voice(_assets(*VOICE_A))
    with pytest.raises(InvalidInput, match=r"too long .* VOICESEAL_GPT_SOVITS_BATCH_CAPACITY"):
        _say(engine, voice, "This sentence is much too long for sixty four slots.")


def test_a_failing_request_fails_alone(make_engine: Callable[..., GPTSoVITSEngine]) -> None:
    # Counter-based noise (the CUDA default): requests with equal prompts share one prompt pass,
    # so the bad request below is admitted in the same pass as a good one.
    engine = make_engine(batch_exact_rng=False)
    voice = engine.prepare_voice(_assets(*VOICE_A))
    batcher = engine.batcher(voice.state.pair)
    assert batcher is not None
    alone = _say(engine, voice, seed=7)
    prompt = voice.state.prompt
    phones = torch.tensor(prompt.phone_ids + prompt.phone_ids, dtype=torch.int64)
    # Valid shapes and ids, but features that cannot be read: its prompt pass fails.
    bad = T2SRequest(
        phones, torch.empty(1024, phones.numel(), device="meta"), prompt.semantic, max_steps=50
    )
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(_say(engine, voice, seed=7)))
    with held(batcher):
        [bad_handle] = batcher.submit([bad])
        thread.start()
        _until(lambda: batcher.scheduler.queued == 2, "both requests are queued")
    with pytest.raises(RequestFailed, match="could not be admitted"):
        bad_handle.result(WAIT_S)
    thread.join(WAIT_S)
    assert results and np.array_equal(results[0], alone)  # untouched by its neighbour
    assert np.array_equal(_say(engine, voice, seed=7), alone)  # and the engine serves on


def test_eviction_retires_the_serving_thread(make_engine: Callable[..., GPTSoVITSEngine]) -> None:
    engine = make_engine(max_loaded_models=2)
    voice = engine.prepare_voice(_assets(*VOICE_A))
    batcher = engine.batcher(voice.state.pair)
    assert batcher is not None
    expected = _say(engine, voice, seed=1)
    assert batcher.serving  # idle, and kept for batch_idle_s
    # Another GPT file pushes this one out of the pool of two: its thread ends, idle.
    name, transcript, f0, seed = VOICE_B
    other = _assets(name, transcript, f0, seed)
    other = VoiceAssets(
        other.voice_id, other.references, {}, {"gpt": "other.ckpt", "sovits": "voice.pth"}, {}
    )
    engine.prepare_voice(other)
    assert engine.models.stats().evictions == 1
    _until(lambda: not batcher.serving, "the evicted model's serving thread ends")
    # The next request loads the file again, with a new scheduler, and gets the same audio.
    assert np.array_equal(_say(engine, voice, seed=1), expected)
    fresh = engine.batcher(voice.state.pair)
    assert fresh is not None and fresh is not batcher and fresh.serving
    engine.close()
    assert not fresh.serving


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def speech_runtime(
    settings: Settings, hubert_dir: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A runtime whose gpt-sovits engine reads its settings from the environment."""
    values = {"hubert_dir": hubert_dir, "model_dir": model_dir, "batch_max_queue": 1, **FAST}
    for key, value in values.items():
        monkeypatch.setenv(f"VOICESEAL_GPT_SOVITS_{key.upper()}", str(value))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runtime = build_runtime(settings.model_copy(update={"output_match_threshold": -1.0}))
    yield runtime
    runtime.engine("gpt-sovits").close()  # type: ignore[attr-defined]


@pytest.fixture
def gsv_voice(
    speech_runtime: Runtime, session_factory: sessionmaker[Session], tenant: Tenant
) -> str:
    """A gpt-sovits voice with an active consent for ``tenant``, written as the registration
    writes it (the registration's own checks are tested elsewhere and need Whisper)."""
    name, transcript, f0, seed = VOICE_A
    blobs = LocalBlobStore(speech_runtime.settings.resolved_blob_dir)
    wav = audio_io.encode(_clip(f0=f0, seed=seed), 24000, "wav")
    now = utcnow()
    with transaction(session_factory) as session:
        speaker = Speaker(name="Alex Sample")
        session.add(speaker)
        session.flush()
        voice = Voice(
            name=name,
            speaker_id=speaker.id,
            engine="gpt-sovits",
            languages=["en"],
            engine_options={"gpt": "voice.ckpt", "sovits": "voice.pth"},
        )
        session.add(voice)
        session.flush()
        sha = store(session, blobs, wav, "audio/wav")
        session.add(
            VoiceSample(
                speaker_id=speaker.id,
                voice_id=voice.id,
                kind="reference",
                blob_sha256=sha,
                duration_s=4.0,
                sample_rate=24000,
                transcript=transcript,
            )
        )
        session.add(
            Consent(
                speaker_id=speaker.id,
                voice_id=voice.id,
                statement="I agree.",
                nonce_hash=f"{voice.id:0>64}"[-64:],
                nonce_expires_at=now + timedelta(hours=1),
                nonce_used_at=now,
                status="active",
                scope_tenants=[tenant.id],
                scope_purposes=["tts"],
            )
        )
        voice_id = voice.id
    return voice_id


def _batcher_of(runtime: Runtime) -> Batcher:
    engine = runtime.engine("gpt-sovits")
    assert isinstance(engine, GPTSoVITSEngine)
    voice = engine.prepare_voice(_assets(*VOICE_A))  # same files: the same loaded GPT
    batcher = engine.batcher(voice.state.pair)
    assert batcher is not None
    return batcher


def _records(session_factory: sessionmaker[Session], voice_id: str) -> list[Generation]:
    with transaction(session_factory) as session:
        return list(
            session.scalars(
                select(Generation)
                .where(Generation.voice_id == voice_id)
                .order_by(Generation.created_at)
            )
        )


def test_full_queue_is_a_503_with_retry_after_and_is_recorded(
    settings: Settings,
    speech_runtime: Runtime,
    gsv_voice: str,
    tenant_key: str,
    session_factory: sessionmaker[Session],
) -> None:
    auth = {"Authorization": f"Bearer {tenant_key}"}
    body = {"input": TEXT, "voice": gsv_voice, "response_format": "pcm", "seed": 3}
    batcher = _batcher_of(speech_runtime)
    statuses: list[int] = []
    with TestClient(create_app(settings, runtime=speech_runtime)) as client:

        def first() -> None:
            statuses.append(client.post("/v1/audio/speech", headers=auth, json=body).status_code)

        thread = threading.Thread(target=first)
        with held(batcher):
            thread.start()
            _until(lambda: batcher.scheduler.queued == 1, "the first request waits")
            refused = client.post("/v1/audio/speech", headers=auth, json=body)
            # Streamed too: the refusal comes before the first byte, so it is a real 503.
            streamed = client.post(
                "/v1/audio/speech", headers=auth, json=body | {"stream_format": "sse"}
            )
        thread.join(WAIT_S)
    for response in (refused, streamed):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "overloaded")
        assert "retry" in error["message"]
    assert statuses and statuses[0] != 503  # the queued one was served (its mark may fail)
    refusals = [g for g in _records(session_factory, gsv_voice) if g.refusal_code == "overloaded"]
    assert sorted((g.status, g.streamed) for g in refusals) == [
        ("failed", False),
        ("failed", True),
    ]


def test_disconnect_mid_stream_frees_the_row(
    settings: Settings,
    speech_runtime: Runtime,
    gsv_voice: str,
    tenant_key: str,
    session_factory: sessionmaker[Session],
) -> None:
    batcher = _batcher_of(speech_runtime)
    body = {
        "input": "Good morning. This voice was registered. It has consent. It is marked. Bye.",
        "voice": gsv_voice,
        "response_format": "pcm",
        "stream_format": "audio",
        "seed": 2,
    }
    with (
        TestClient(create_app(settings, runtime=speech_runtime)) as client,
        client.stream(
            "POST", "/v1/audio/speech", headers={"Authorization": f"Bearer {tenant_key}"}, json=body
        ) as response,
    ):
        assert response.status_code == 200
        # The first audio was made before the status was sent (the watermark's stream may
        # need a sentence more); the next sentence is decoded only once the first chunk is
        # taken. Holding the scheduler keeps it queued.
        with held(batcher):
            chunks = response.iter_raw()  # kept: dropping the iterator closes the response
            assert next(chunks)
            _until(lambda: batcher.scheduler.queued == 1, "the next sentence is queued")
            [second] = [h for h in batcher.pending() if h.request.prompt is not None]
            closer = threading.Thread(target=response.close)
            closer.start()  # the client goes away while its request is queued
            _until(lambda: second.cancel_requested, "the disconnect reaches the engine")
        closer.join(WAIT_S)
    # Within a step of the release, the row and the queue are free again.
    _until(lambda: batcher.scheduler.active == 0, "no row is busy")
    assert batcher.scheduler.queued == 0
    with pytest.raises(RequestCancelled):
        second.result(WAIT_S)
    # The dropped request is on record, as any other failure.
    _until(
        lambda: any(g.refusal_code == "cancelled" for g in _records(session_factory, gsv_voice)),
        "the cancellation is recorded",
    )


def test_disconnect_before_a_whole_file_response_drops_the_request(
    settings: Settings,
    speech_runtime: Runtime,
    gsv_voice: str,
    tenant_key: str,
    session_factory: sessionmaker[Session],
) -> None:
    """A whole-file request whose client goes away while it waits in the scheduler is
    cancelled there (its row and queue place freed) and recorded as cancelled, not made."""
    batcher = _batcher_of(speech_runtime)
    body = {"input": TEXT, "voice": gsv_voice, "response_format": "wav", "seed": 4}
    app = create_app(settings, runtime=speech_runtime)
    # TestClient cannot hang up on a request that has no response yet, so this talks ASGI:
    # the body, then (once the request is queued) the disconnect a server would deliver.
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/audio/speech",
        "raw_path": b"/v1/audio/speech",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {tenant_key}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    gone = threading.Event()

    async def call() -> None:
        messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            while not gone.is_set():
                await anyio.sleep(0.005)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    with TestClient(app) as client:  # runs the app's lifespan
        scope["state"] = client.app_state.copy()  # what the lifespan made (as TestClient does)
        with held(batcher):
            caller = threading.Thread(target=lambda: client.portal.call(call))
            caller.start()
            _until(lambda: batcher.scheduler.queued == 1, "the request is queued")
            [queued] = [h for h in batcher.pending() if h.request.prompt is not None]
            gone.set()  # the client hangs up
            _until(lambda: queued.cancel_requested, "the disconnect reaches the engine")
        caller.join(WAIT_S)
        assert not caller.is_alive()
    _until(lambda: batcher.scheduler.active == 0, "no row is busy")
    assert batcher.scheduler.queued == 0
    with pytest.raises(RequestCancelled):
        queued.result(WAIT_S)
    # The answer went nowhere; it says what happened (nginx's 499), not 200 with audio.
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    records = _records(session_factory, gsv_voice)
    assert [(g.status, g.refusal_code) for g in records] == [("failed", "cancelled")]


# --------------------------------------------------------------------------- CUDA (opt-in)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_with_step_graphs(
    make_engine: Callable[..., GPTSoVITSEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain fp32 matmuls, so that a batch of four and a request alone compare tightly.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    engine = make_engine(device="cuda", batch_max_rows=4, batch_capacity=512)
    jobs = [(VOICE_A, 11, False), (VOICE_B, 12, True), (VOICE_A, 13, True), (VOICE_B, 11, False)]
    voices = [engine.prepare_voice(_assets(*v)) for v, _, _ in jobs]
    # The common stream-window graphs were captured with the model, before any stream.
    windows = engine._loaded_sovits(voices[0].state.pair)._windows
    assert windows is not None
    assert {(t, p) for t in (25, 50) for p in (64, 128, 192)} <= set(windows._graphs)
    batcher = engine.batcher(voices[0].state.pair)
    assert batcher is not None
    assert batcher.scheduler.use_graphs and not batcher.config.exact_rng  # the CUDA defaults
    solo = [_say(engine, voices[i], seed=s, stream=st) for i, (_, s, st) in enumerate(jobs)]
    results = _together(
        batcher,
        [
            partial(_say, engine, v, seed=s, stream=st)
            for v, (_, s, st) in zip(voices, jobs, strict=True)
        ],
    )
    assert batcher.stats.peak_rows == len(jobs)
    # Counter-based noise: a request's tokens do not depend on its batch companions.
    for i, audio in enumerate(results):
        assert audio.shape == solo[i].shape, f"request {i} got other tokens in the batch"
        np.testing.assert_allclose(audio, solo[i], atol=1e-4)
    # Whole-file audio came from the SoVITS worker (on by default on CUDA), and equals the
    # synthesizer's own decode of the same tokens and noise.
    worker = engine._loaded_sovits(voices[0].state.pair).active_worker
    assert worker is not None and worker.batches >= 1
    monkeypatch.setattr(engine.settings, "sovits_batching", False)
    plain = _say(engine, voices[0], seed=jobs[0][1])
    np.testing.assert_allclose(plain, solo[0], atol=1e-4)
    # Stream windows replayed from graphs (the CUDA default) equal eager windows.
    vocoder = engine._loaded_sovits(voices[1].state.pair)
    graphed = _say(engine, voices[1], seed=jobs[1][1], stream=True)
    assert vocoder._windows is not None and len(vocoder._windows._graphs) >= 1
    monkeypatch.setattr(vocoding, "WINDOW_TOKENS", 0)  # no window fits: all eager
    eager = _say(engine, voices[1], seed=jobs[1][1], stream=True)
    assert graphed.shape == eager.shape
    np.testing.assert_allclose(graphed, eager, atol=1e-4)
