"""The ``gpt-sovits`` engine on the tiny official-format fixture checkpoints, on CPU.

The fixture GPT and SoVITS files are random networks saved by the official code, and HuBERT is
a tiny random model in the Hugging Face folder format: the audio is noise, but every step of the
real pipeline runs (file vetting, prompt extraction, G2P, sampling, decoding, streaming).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from voiceseal.components import Components
from voiceseal.contracts import (
    AudioChunk,
    ComponentContext,
    ReferenceClip,
    SynthesisOptions,
    VoiceAssets,
    VoiceHandle,
)
from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal.plugins import get_plugin_manager
from voiceseal_plugins.gpt_sovits import plugin
from voiceseal_plugins.gpt_sovits.engine import SAMPLE_RATE, GPTSoVITSEngine, wrap_text
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings
from voiceseal_plugins.gpt_sovits.streaming import StreamingDecoder, crossfade

# The engine reads HuBERT through transformers (the gpt-sovits extra; `make test` installs it).
pytest.importorskip("transformers", reason="transformers is not installed (gpt-sovits extra)")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpt_sovits"
GPT = FIXTURES / "t2s_tiny.ckpt"
SOVITS = FIXTURES / "s2_v2_tiny.pth"
TEXT = "Hello there, this is a short test of the engine."
#: Short segments and a low token cap keep the random models' runaway generations short.
FAST = {"max_tokens": 120, "max_segment_chars": 120}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny models gain nothing from threads, and spinning OpenMP workers on a shared 2-core
    # machine slow them down a lot.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin's model folder: the fixture pair plus a second GPT with different bytes."""
    folder = tmp_path_factory.mktemp("gsv-models")
    shutil.copyfile(GPT, folder / "voice.ckpt")
    shutil.copyfile(SOVITS, folder / "voice.pth")
    ckpt = torch.load(GPT, map_location="cpu", weights_only=True)
    ckpt["info"] = "GPT-e2"  # same weights, another file: another pool entry
    torch.save(ckpt, folder / "other.ckpt")
    return folder


@pytest.fixture(scope="module")
def engine(hubert_dir: Path, model_dir: Path) -> GPTSoVITSEngine:
    settings = GPTSoVITSSettings(hubert_dir=hubert_dir, model_dir=model_dir, **FAST)
    return GPTSoVITSEngine(settings, device="cpu")


def _clip(seconds: float = 4.0, f0: float = 150.0, rate: int = 24000, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _reference(transcript: str = "The quick brown fox jumps over the lazy dog.", **kw: Any) -> Any:
    rate = kw.pop("rate", 24000)
    return ReferenceClip(_clip(rate=rate, **kw), rate, transcript, "en")


def _assets(
    voice_id: str = "v1",
    references: tuple[ReferenceClip, ...] | None = None,
    files: dict[str, Path] | None = None,
    options: dict[str, Any] | None = None,
    cached: dict[str, Any] | None = None,
) -> VoiceAssets:
    return VoiceAssets(
        voice_id,
        references if references is not None else (_reference(),),
        {"gpt": GPT, "sovits": SOVITS} if files is None and options is None else (files or {}),
        options or {},
        cached or {},
    )


def _audio(chunks: list[AudioChunk]) -> Any:
    return np.concatenate([c.samples for c in chunks])


def _say(
    engine: GPTSoVITSEngine, handle: VoiceHandle, text: str = TEXT, **options: Any
) -> list[AudioChunk]:
    extra = {k: options.pop(k) for k in ("stream", "noise_scale") if k in options}
    return list(engine.synthesize(text, handle, SynthesisOptions(extra=extra, **options)))


@pytest.fixture(scope="module")
def voice(engine: GPTSoVITSEngine) -> VoiceHandle:
    return engine.prepare_voice(_assets())


# --------------------------------------------------------------------------- happy path


def test_plugin_registers_the_engine() -> None:
    pm = get_plugin_manager(load_entry_points=False, extra=[plugin])
    components = Components(pm, ComponentContext(data_dir=Path("unused")))
    spec = components.spec("engines", "gpt-sovits")
    assert spec.unavailable is None
    assert components.spec("engines", "gpt_sovits") is spec  # alias
    engine = components.get("engines", "gpt-sovits")
    caps = engine.capabilities
    assert caps.languages == ("en", "zh", "ja")
    assert caps.sample_rates == (SAMPLE_RATE,)
    assert caps.streaming and caps.device == "any"
    assert caps.extra["reference_seconds"] == (3.0, 10.0)


def test_prepare_then_synthesize(engine: GPTSoVITSEngine, voice: VoiceHandle) -> None:
    persisted = json.loads(json.dumps(voice.persist))  # JSON-able, small
    assert persisted["sovits_version"] == "v2" and not persisted["reference_free"]
    assert 0 < len(persisted["prompt_semantic"]) <= 125  # 4 s + 0.6 s tail at 25 tokens/s
    assert all(0 <= t < 1024 for t in persisted["prompt_semantic"])
    assert persisted["prompt_phone_ids"] and persisted["gpt_sha256"] != persisted["sovits_sha256"]
    chunks = _say(engine, voice)
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    audio = _audio(chunks)
    assert all(c.sample_rate == SAMPLE_RATE and c.samples.dtype == np.float32 for c in chunks)
    # At least the 10 tokens the decoder always keeps, 1280 samples (40 ms) each.
    assert audio.size >= 10 * 1280 and audio.size % 1280 == 0
    assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1.0


def test_same_seed_same_audio_other_seed_other_audio(
    engine: GPTSoVITSEngine, voice: VoiceHandle
) -> None:
    first = _audio(_say(engine, voice, seed=7))
    assert np.array_equal(first, _audio(_say(engine, voice, seed=7)))
    assert not np.array_equal(first[:4096], _audio(_say(engine, voice, seed=8))[:4096])


def test_sampling_controls_and_speed_change_the_output(
    engine: GPTSoVITSEngine, voice: VoiceHandle
) -> None:
    base = _audio(_say(engine, voice, seed=1))
    greedy = _audio(_say(engine, voice, seed=1, top_k=1, noise_scale=0.0))
    # Greedy tokens and no prior noise: nothing random is left, whatever the seed.
    assert np.array_equal(greedy, _audio(_say(engine, voice, seed=99, top_k=1, noise_scale=0.0)))
    assert not np.array_equal(base[:4096], greedy[:4096])
    fast = _audio(_say(engine, voice, seed=1, speed=2.0))
    # Same tokens, latent stretched by 1/2: int(2 * n / 2) + 1 frames of 640 samples.
    assert fast.size == (base.size // 1280 + 1) * 640
    with pytest.raises(InvalidInput, match="top_k must be >= 1"):
        _say(engine, voice, top_k=0)
    with pytest.raises(InvalidInput, match="speed must be between"):
        _say(engine, voice, speed=9.0)
    with pytest.raises(InvalidInput, match="noise_scale"):
        _say(engine, voice, noise_scale="loud")


# --------------------------------------------------------------------------- streaming


def _local_decoder(values: Any, left: int, right: int, per_token: int) -> Any:
    """A window decoder whose token t depends on tokens t-left..t+right (zero outside)."""

    def decode(start: int, end: int) -> Any:
        padded = np.pad(values[start:end], (left, right))
        kernel = np.linspace(1.0, 2.0, left + right + 1, dtype=np.float32)
        mixed = np.correlate(padded, kernel, mode="valid")
        return np.repeat(mixed, per_token).astype(np.float32)

    return decode


def _stream(decode: Any, n: int, chunk: int, context: int, fade: int) -> tuple[Any, int]:
    decoder = StreamingDecoder(decode, chunk=chunk, context=context, fade=fade)
    pieces = [p for v in range(n) if (p := decoder.push(v)) is not None]
    pieces.append(decoder.finish())
    return np.concatenate(pieces), decoder.windows


def test_stream_assembly_is_exact_where_the_decoder_is_local() -> None:
    """The assembly loses, doubles and misplaces no sample at any seam."""
    values = np.random.default_rng(3).standard_normal(100).astype(np.float32)
    per_token, chunk, fade = 8, 7, 2
    # Causal within the left context: every window decodes its tokens exactly, so the streamed
    # audio must equal the one-piece decode everywhere, cross-faded seams included.
    causal = _local_decoder(values, left=3, right=0, per_token=per_token)
    streamed, windows = _stream(causal, len(values), chunk, context=4, fade=fade)
    assert windows == len(values) // chunk + 1
    np.testing.assert_allclose(streamed, causal(0, len(values)), atol=1e-5)
    # Looking ahead too: the audio held back at each window's right edge lacks its future,
    # so only the cross-faded seams may differ; everything else is exact.
    ahead = _local_decoder(values, left=2, right=2, per_token=per_token)
    streamed, _ = _stream(ahead, len(values), chunk, context=4, fade=fade)
    whole = ahead(0, len(values))
    assert streamed.size == whole.size
    seams = np.zeros(len(values), bool)
    for end in range(chunk, len(values), chunk):  # window ends; their last `fade` tokens
        seams[end - fade : end] = True
    exact = np.repeat(~seams, per_token)
    np.testing.assert_allclose(streamed[exact], whole[exact], atol=1e-5)
    assert not np.allclose(streamed[~exact], whole[~exact], atol=1e-5)
    np.testing.assert_allclose(crossfade(np.ones(4, np.float32), np.ones(6, np.float32)), 1.0)


def test_streamed_equals_whole_within_crossfade_tolerance(
    engine: GPTSoVITSEngine, voice: VoiceHandle
) -> None:
    # Seed 11 makes the random GPT speak 58 tokens (2.3 s): four windows of 16 tokens.
    whole_chunks = _say(engine, voice, seed=11)
    streamed_chunks = _say(engine, voice, seed=11, stream=True)
    whole, streamed = _audio(whole_chunks), _audio(streamed_chunks)
    assert len(whole_chunks) == 1 and len(streamed_chunks) == 4
    # The first chunk holds stream_chunk_tokens - crossfade tokens, long before the end.
    assert streamed_chunks[0].samples.size == (16 - 4) * 1280
    assert streamed_chunks[-1].final and not any(c.final for c in streamed_chunks[:-1])
    # Same tokens (one sampler, one seed) and the same prior noise per latent frame: the
    # streams differ only because a window cannot attend to tokens not generated yet.
    assert streamed.size == whole.size
    error = np.sqrt(np.mean((streamed - whole) ** 2) / np.mean(whole**2))
    assert error < 0.1, error  # measured 0.064 (-24 dB)
    # Without prior noise the decoder is deterministic; the bound must hold there too.
    quiet_whole = _audio(_say(engine, voice, seed=11, noise_scale=0.0))
    quiet_stream = _audio(_say(engine, voice, seed=11, noise_scale=0.0, stream=True))
    error = np.sqrt(np.mean((quiet_stream - quiet_whole) ** 2) / np.mean(quiet_whole**2))
    assert error < 0.1, error


# --------------------------------------------------------------------------- caches


def test_prompt_is_computed_once_per_voice(engine: GPTSoVITSEngine, voice: VoiceHandle) -> None:
    before = engine.prompt_builds
    again = engine.prepare_voice(_assets())
    assert engine.prompt_builds == before
    assert again.state.prompt is voice.state.prompt
    assert again.persist == voice.persist


def test_persisted_prompt_needs_no_hubert_after_a_restart(
    engine: GPTSoVITSEngine, voice: VoiceHandle
) -> None:
    # A "restarted" process: a new engine without HuBERT, given what registration persisted.
    restarted = GPTSoVITSEngine(GPTSoVITSSettings(**FAST))
    handle = restarted.prepare_voice(_assets(cached=voice.persist))
    assert torch.equal(handle.state.prompt.semantic, voice.state.prompt.semantic)
    assert np.array_equal(
        _audio(_say(restarted, handle, seed=5)), _audio(_say(engine, voice, seed=5))
    )
    # Without the persisted data the same voice needs HuBERT, and says which setting is missing.
    with pytest.raises(InvalidInput, match="VOICESEAL_GPT_SOVITS_HUBERT_DIR"):
        restarted.prepare_voice(_assets(references=(_reference(seed=21),)))
    # Reference-free mode (no transcript) needs no HuBERT at all, as in the official code.
    free = restarted.prepare_voice(_assets(references=(_reference(""),)))
    assert free.persist["reference_free"] and free.persist["prompt_semantic"] is None
    assert _audio(_say(restarted, free)).size >= 10 * 1280


def test_models_are_shared_by_checksum_and_evicted_lru(hubert_dir: Path, model_dir: Path) -> None:
    small = GPTSoVITSEngine(
        GPTSoVITSSettings(hubert_dir=hubert_dir, model_dir=model_dir, max_loaded_models=2, **FAST)
    )
    a = small.prepare_voice(_assets("a", options={"gpt": "voice.ckpt", "sovits": "voice.pth"}))
    # Uploaded copies of the same files (other paths, same bytes) share the loaded models.
    small.prepare_voice(_assets("a2"))
    assert small.models.stats().loads == 2
    b = small.prepare_voice(_assets("b", options={"gpt": "other.ckpt", "sovits": "voice.pth"}))
    stats = small.models.stats()
    assert (stats.loads, stats.evictions) == (3, 1)
    assert stats.loaded == (a.state.pair.sovits_sha256, b.state.pair.gpt_sha256)
    # Voice a's GPT was evicted: its next request loads it again (which, in a pool of two,
    # evicts the shared SoVITS, loaded again in turn) and still works.
    assert _audio(_say(small, a)).size > 0
    stats = small.models.stats()
    assert (stats.loads, stats.evictions) == (5, 3)
    assert stats.loaded == (a.state.pair.gpt_sha256, a.state.pair.sovits_sha256)


def test_two_voices_interleaved_give_their_solo_results(
    engine: GPTSoVITSEngine, voice: VoiceHandle
) -> None:
    other = engine.prepare_voice(
        _assets("v2", references=(_reference("A different speaker reads this.", f0=230, seed=4),))
    )
    assert other.state.prompt.digest != voice.state.prompt.digest
    jobs = [(voice, 11, False), (other, 12, False), (voice, 13, True), (other, 11, True)]
    solo = [_audio(_say(engine, h, seed=s, stream=st)) for h, s, st in jobs]

    # Interleaved in one thread: the four generators advance one chunk at a time, in turn.
    streams = [
        engine.synthesize(TEXT, h, SynthesisOptions(seed=s, extra={"stream": st}))
        for h, s, st in jobs
    ]
    collected: list[list[Any]] = [[] for _ in jobs]
    live = set(range(len(jobs)))
    while live:
        for i in sorted(live):
            chunk = next(streams[i], None)
            if chunk is None:
                live.discard(i)
            else:
                collected[i].append(chunk.samples)
    for i, pieces in enumerate(collected):
        assert np.array_equal(np.concatenate(pieces), solo[i]), f"job {i} changed"

    # Concurrently, in threads.
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        h, s, st = jobs[i]
        results[i] = _audio(_say(engine, h, seed=s, stream=st))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, audio in enumerate(results):
        assert np.array_equal(audio, solo[i]), f"job {i} changed under concurrency"


def test_extra_references_change_the_timbre_vector(engine: GPTSoVITSEngine) -> None:
    main = _reference()
    single = engine.prepare_voice(_assets("s", references=(main,)))
    aux = engine.prepare_voice(
        _assets("x", references=(main, _reference("", f0=260, seed=9, seconds=5.0)))
    )
    # Same prompt tokens (from the main clip), averaged style vector over both clips.
    assert single.persist["prompt_semantic"] == aux.persist["prompt_semantic"]
    assert not torch.allclose(single.state.prompt.ge, aux.state.prompt.ge)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("seconds", [2.0, 12.5])
def test_reference_outside_3_to_10_seconds_is_refused(
    engine: GPTSoVITSEngine, seconds: float
) -> None:
    with pytest.raises(InvalidAudio, match=r"reference clip 1 lasts .* must last 3-10 s"):
        engine.prepare_voice(_assets(references=(_reference(seconds=seconds),)))
    with pytest.raises(InvalidAudio, match="reference clip 2 lasts"):
        engine.prepare_voice(_assets(references=(_reference(), _reference(seconds=seconds))))


@pytest.mark.parametrize(
    ("text", "language", "message"),
    [
        ("", "en", "text is empty"),
        ("   ", "en", "text is empty"),
        ("?!... ,,", "en", "nothing to speak"),
        ("Привет, мир", "en", "nothing speakable"),
        ("😀😀😀", "ja", "nothing"),
        ("Bonjour", "fr", "speaks en, zh, ja, not 'fr'"),
    ],
)
def test_unspeakable_text_is_refused(
    engine: GPTSoVITSEngine, voice: VoiceHandle, text: str, language: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        _say(engine, voice, text, language=language)


def test_long_text_is_split_never_truncated(engine: GPTSoVITSEngine, voice: VoiceHandle) -> None:
    words = [
        "the",
        "small",
        "cat",
        "sat",
        "on",
        "a",
        "warm",
        "mat",
        "and",
        "looked",
        "at",
        "seven",
        "birds",
        "near",
        "the",
        "window",
    ]
    text = " ".join(words * 6)  # 450 characters without one punctuation mark
    segments = engine.segments(text, "en")
    assert len(segments) == 4
    assert all(len(s.norm_text) <= 120 for s in segments)
    # Every word reaches the G2P, in order, and no word is cut in two.
    spoken = " ".join(s.norm_text.strip(" .") for s in segments).split()
    assert spoken == words * 6
    chunks = _say(engine, voice, text)
    assert sorted({c.segment for c in chunks}) == [0, 1, 2, 3]
    assert chunks[-1].final and chunks[-1].segment == 3
    # The official fragment interval (0.3 s of silence) separates the segments.
    gaps = [c for c in chunks if not c.samples.any()]
    assert len(gaps) == 3 and all(g.samples.size == 9600 for g in gaps)


def test_wrap_text_prefers_clause_marks_then_spaces() -> None:
    assert wrap_text("short", 10) == ["short"]
    assert wrap_text("one two, three four five six", 16) == ["one two,", "three four five", "six"]
    assert wrap_text("abcdefghijklmnopqrstuvwxyz", 10) == ["abcdefghij", "klmnopqrst", "uvwxyz"]
    long_zh = "我们今天去公园散步然后回家吃饭" * 3
    assert "".join(wrap_text(long_zh, 20)) == long_zh


# --------------------------------------------------------------------------- bad files


def _torch_bytes(obj: Any, head: bytes = b"PK") -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = bytearray(buffer.getvalue())
    data[:2] = head
    return bytes(data)


def _v1_gpt(path: Path) -> Path:
    """The fixture GPT with a v1 (512-row) phoneme table."""
    ckpt = torch.load(GPT, map_location="cpu", weights_only=True)
    key = "model.ar_text_embedding.word_embeddings.weight"
    ckpt["weight"][key] = ckpt["weight"][key][:512].clone()
    ckpt["config"]["model"]["phoneme_vocab_size"] = 512
    torch.save(ckpt, path)
    return path


def _v4_lora(path: Path) -> Path:
    weights = OrderedDict([("cfm.estimator.proj_out.weight", torch.zeros(4, 4).half())])
    top = OrderedDict(weight=weights, config={"model": {}}, info="e1", lora_rank=32)
    path.write_bytes(_torch_bytes(top, b"04"))  # the official v4-LoRA header tag
    return path


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _code_pickle(path: Path, marker: Path) -> Path:
    payload = pickle.dumps({"weight": _RunsCode(marker), "config": {}}, protocol=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
    path.write_bytes(buffer.getvalue())
    return path


def test_bad_model_files_are_refused_with_the_reason(
    engine: GPTSoVITSEngine, tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    text_file = tmp_path / "notes.pth"
    text_file.write_text("these are not weights, just some text in a file")
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(SOVITS.read_bytes()[: SOVITS.stat().st_size // 2])
    cases: list[tuple[dict[str, Path], str]] = [
        (
            {"gpt": _v1_gpt(tmp_path / "v1.ckpt"), "sovits": SOVITS},
            "GPT file uses the v1 phoneme table but the SoVITS file \\(v2\\)",
        ),
        ({"gpt": GPT, "sovits": _v4_lora(tmp_path / "lora.pth")}, "needs its base model"),
        ({"gpt": GPT, "sovits": text_file}, "SoVITS file is refused: .*not a checkpoint"),
        (
            {"gpt": _code_pickle(tmp_path / "evil.ckpt", marker), "sovits": SOVITS},
            "GPT file is refused: .*refused to unpickle",
        ),
        ({"gpt": GPT, "sovits": truncated}, "SoVITS file is refused"),
        ({"gpt": SOVITS, "sovits": GPT}, "SoVITS file where a GPT file is expected"),
        ({"gpt": GPT}, "needs a GPT \\(.ckpt\\) and a SoVITS \\(.pth\\) file; missing sovits"),
    ]
    for files, message in cases:
        with pytest.raises(InvalidInput, match=message):
            engine.prepare_voice(_assets(files=files))
    assert not marker.exists()


def test_named_files_stay_inside_the_model_folder(
    engine: GPTSoVITSEngine, model_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.ckpt"
    shutil.copyfile(GPT, outside)
    for name in ("../outside.ckpt", str(outside), "sub/../../outside.ckpt"):
        with pytest.raises(InvalidInput, match=r"relative to the model folder, without '\.\.'"):
            engine.prepare_voice(_assets(options={"gpt": name, "sovits": "voice.pth"}))
    with pytest.raises(InvalidInput, match=r"no file 'nope\.ckpt' in the model folder"):
        engine.prepare_voice(_assets(options={"gpt": "nope.ckpt", "sovits": "voice.pth"}))
    with pytest.raises(InvalidInput, match="both uploaded and named"):
        engine.prepare_voice(
            _assets(files={"gpt": GPT, "sovits": SOVITS}, options={"gpt": "voice.ckpt"})
        )
    with pytest.raises(InvalidInput, match="unknown gpt-sovits engine_options \\['temperature'\\]"):
        engine.prepare_voice(_assets(options={"temperature": 0.5}))
    unconfigured = GPTSoVITSEngine(GPTSoVITSSettings(**FAST))
    with pytest.raises(InvalidInput, match="set VOICESEAL_GPT_SOVITS_MODEL_DIR"):
        unconfigured.prepare_voice(_assets(options={"gpt": "voice.ckpt", "sovits": "voice.pth"}))


# --------------------------------------------------------------------------- v2Pro


@pytest.mark.slow
def test_v2pro_voice_needs_and_uses_the_speaker_model(hubert_dir: Path, tmp_path: Path) -> None:
    """A v2Pro file (random, tiny except for its 20480-d speaker input) and a random ERes2NetV2."""
    from voiceseal_models.gpt_sovits.sovits import ERes2NetV2, SoVITSConfig, SynthesizerTrn

    config = json.loads((FIXTURES / "s2_v2_tiny_config.json").read_text())
    config["model"].update(gin_channels=1024, version="v2Pro")
    torch.manual_seed(0)
    network = SynthesizerTrn(SoVITSConfig.from_hparams(config, version="v2Pro"))
    weights = OrderedDict((k, v.half()) for k, v in network.state_dict().items())
    pro = tmp_path / "pro.pth"
    pro.write_bytes(_torch_bytes(OrderedDict(weight=weights, config=config, info="e1"), b"05"))
    sv_model = tmp_path / "pretrained_eres2netv2w24s4ep4.ckpt"
    torch.save(ERes2NetV2().state_dict(), sv_model)

    without = GPTSoVITSEngine(GPTSoVITSSettings(hubert_dir=hubert_dir, **FAST))
    with pytest.raises(InvalidInput, match=r"v2Pro model.*set VOICESEAL_GPT_SOVITS_SV_MODEL"):
        without.prepare_voice(_assets(files={"gpt": GPT, "sovits": pro}))

    engine = GPTSoVITSEngine(GPTSoVITSSettings(hubert_dir=hubert_dir, sv_model=sv_model, **FAST))
    voice = engine.prepare_voice(_assets(files={"gpt": GPT, "sovits": pro}))
    assert voice.persist["sovits_version"] == "v2Pro"
    assert voice.state.prompt.ge.shape == (1, 1024, 1)
    audio = _audio(_say(engine, voice, seed=2))
    assert audio.size >= 10 * 1280 and np.isfinite(audio).all()
