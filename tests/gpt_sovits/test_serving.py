"""The continuous-batching scheduler on the tiny fixture model (CPU): admission every step,
retirement, equality with `Text2Semantic.generate`, back-pressure, cancellation, long requests,
streaming, and the caches and batched SoVITS decoding around it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.sampling import SamplingParams
from voiceseal_models.gpt_sovits.serving import (
    ModelLRU,
    PreparedVoice,
    QueueFull,
    RequestCancelled,
    RequestTooLong,
    Scheduler,
    SchedulerConfig,
    T2SRequest,
    TokenChunk,
    VoiceCache,
)
from voiceseal_models.gpt_sovits.serving.sampler import RowSampling, counter_noise
from voiceseal_models.gpt_sovits.serving.vocoder import (
    AudioJob,
    VocoderWorker,
    decode_batch,
    prior_frames,
)
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn
from voiceseal_models.gpt_sovits.t2s import Text2Semantic

#: The `submit_together` fixture (conftest.py): a worker given all jobs, batching them once all wait.
SubmitTogether = Callable[..., tuple[Any, list[Any]]]

STEPS = 120  # enough for every fixture sequence to stop on its own


@pytest.fixture(scope="module")
def model(fixtures_dir: Path) -> Text2Semantic:
    return Text2Semantic.from_checkpoint(fixtures_dir / "t2s_tiny.ckpt")


@pytest.fixture(scope="module")
def inputs(fixtures_dir: Path) -> dict[str, Any]:
    io: dict[str, Any] = torch.load(fixtures_dir / "t2s_tiny_io.pt", weights_only=True)
    return io


def _config(**overrides: Any) -> SchedulerConfig:
    values: dict[str, Any] = {"max_rows": 4, "capacity": 192, "exact_rng": True}
    return SchedulerConfig(**(values | overrides))


def _request(inputs: dict[str, Any], variant: str = "a", **kwargs: Any) -> T2SRequest:
    io = inputs["inputs"]
    phones, bert = (
        (io["phones"], io["bert_feature"])
        if variant == "a"
        else (io["phones_b"], io["bert_feature_b"])
    )
    prompt = kwargs.pop("prompt", io["prompt_semantic"])
    kwargs.setdefault("max_steps", STEPS)
    return T2SRequest(phones, bert, prompt, **kwargs)


def _generate(model: Text2Semantic, request: T2SRequest) -> Any:
    p = request.sampling
    return model.generate(
        request.phones,
        request.bert,
        request.prompt,
        top_k=p.top_k,
        top_p=p.top_p,
        temperature=p.temperature,
        repetition_penalty=p.repetition_penalty,
        early_stop_num=request.early_stop_num,
        max_steps=request.max_steps,
        seed=request.seed,
    )


# Mixed texts, prompts, sampling parameters and stop rules in one batch.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("a", {"sampling": SamplingParams(top_k=1)}),
    ("b", {"sampling": SamplingParams(top_k=15), "seed": 3}),
    ("a", {"sampling": SamplingParams(top_k=15, top_p=0.8, temperature=0.7), "seed": 5}),
    ("b", {"sampling": SamplingParams(top_k=5, repetition_penalty=1.0), "seed": 11}),
    ("a", {"sampling": SamplingParams(top_k=15), "seed": 7, "prompt": None}),
    ("b", {"sampling": SamplingParams(top_k=3, temperature=1.3), "seed": 2, "early_stop_num": 14}),
    ("a", {"sampling": SamplingParams(top_k=1), "max_steps": 13}),
]


def test_batched_results_equal_generate(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    scheduler = Scheduler(model, _config())
    requests = [_request(inputs, v, **kw) for v, kw in CASES]
    handles = [scheduler.submit(r) for r in requests]
    scheduler.run_until_idle()
    stops = set()
    for request, handle in zip(requests, handles, strict=True):
        expected, got = _generate(model, request), handle.result()
        assert torch.equal(got.y, expected.y), handle.id
        assert (got.idx, got.stop, got.prompt_len) == (
            expected.idx,
            expected.stop,
            expected.prompt_len,
        )
        stops.add(got.stop)
    assert stops == {"eos", "early_stop", "max_steps"}  # every stop rule was exercised


def test_greedy_matches_official_fixture(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    ref = inputs["greedy_single"]
    scheduler = Scheduler(model, _config(exact_rng=False))
    handle = scheduler.submit(_request(inputs, sampling=SamplingParams(top_k=1)))
    scheduler.run_until_idle()
    result = handle.result()
    assert torch.equal(result.y, ref["y_returned"].long())
    assert result.idx == ref["idx_returned"]


def test_admits_every_step_and_retires(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    scheduler = Scheduler(model, _config(max_rows=2))
    first = scheduler.submit(_request(inputs, sampling=SamplingParams(top_k=1)))
    for _ in range(5):
        scheduler.step()
    assert (scheduler.active, first.steps) == (1, 5)
    late = [scheduler.submit(_request(inputs, "b", seed=s)) for s in (1, 2)]
    scheduler.step()  # the next step admits the first late request into the free row
    assert (scheduler.active, scheduler.queued) == (2, 1)
    assert (first.steps, late[0].steps, late[1].steps) == (6, 1, 0)
    while not first.done:
        scheduler.step()
    scheduler.step()  # its row is reused by the waiting request at once
    assert late[1].steps == 1 and scheduler.queued == 0
    scheduler.run_until_idle()
    assert scheduler.active == 0
    for handle in (first, *late):
        expected = _generate(model, handle.request)
        assert torch.equal(handle.result().y, expected.y)


def test_counter_noise_ignores_batch_companions(
    model: Text2Semantic, inputs: dict[str, Any]
) -> None:
    request = _request(inputs, "b", sampling=SamplingParams(top_k=50, temperature=1.5), seed=9)
    alone = Scheduler(model, _config(exact_rng=False))
    solo = alone.submit(request)
    alone.run_until_idle()
    crowd = Scheduler(model, _config(exact_rng=False))
    others = [crowd.submit(_request(inputs, "a", seed=s)) for s in (4, 5)]
    shared = crowd.submit(request)
    crowd.run_until_idle()
    assert torch.equal(solo.result().y, shared.result().y)
    assert any(not torch.equal(o.result().y, others[0].result().y) for o in others[1:])


def test_counter_noise_is_exponential() -> None:
    noise = counter_noise(torch.tensor([0, 1, 2**32 - 1]), torch.tensor([0, 0, 5]), 20000)
    assert noise.shape == (3, 20000) and bool((noise > 0).all())
    assert abs(float(noise.mean()) - 1.0) < 0.02
    assert not torch.equal(noise[0], noise[1])
    assert torch.equal(
        noise, counter_noise(torch.tensor([0, 1, 2**32 - 1]), torch.tensor([0, 0, 5]), 20000)
    )


def test_forced_length_ignores_eos(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    scheduler = Scheduler(model, _config(exact_rng=False))
    handle = scheduler.submit(_request(inputs, max_steps=80, ignore_eos=True))
    scheduler.run_until_idle()
    result = handle.result()
    assert result.stop == "max_steps" and result.generated.numel() == 80
    assert int(result.generated.max()) < model.config.eos


def test_queue_full_is_back_pressure(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    scheduler = Scheduler(model, _config(max_queue=2))
    scheduler.submit(_request(inputs))
    scheduler.submit(_request(inputs))
    with pytest.raises(QueueFull, match="2 requests already wait"):
        scheduler.submit(_request(inputs))
    scheduler.step()  # both admitted: the queue has room again
    scheduler.submit(_request(inputs))


def test_cancel_frees_row_within_one_step(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    scheduler = Scheduler(model, _config(max_rows=1))
    running = scheduler.submit(_request(inputs, ignore_eos=True))
    waiting = scheduler.submit(_request(inputs, "b"))
    for _ in range(3):
        scheduler.step()
    running.cancel()
    scheduler.step()
    assert waiting.steps == 1  # the cancelled row went to the waiting request in that step
    with pytest.raises(RequestCancelled, match="after 3 steps"):
        running.result()
    with pytest.raises(RequestCancelled):
        list(running.chunks())
    queued = scheduler.submit(_request(inputs))
    queued.cancel()
    scheduler.run_until_idle()
    with pytest.raises(RequestCancelled, match="after 0 steps"):
        queued.result()
    assert waiting.result().stop == "eos"


def test_long_requests_refused_or_truncated(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    strict = Scheduler(model, _config(capacity=64))
    with pytest.raises(RequestTooLong, match=r"at most 25 steps fit"):
        strict.submit(_request(inputs, max_steps=100))  # 24 phones + 16 prompt tokens
    with pytest.raises(RequestTooLong, match="split the text"):
        Scheduler(model, _config(capacity=48)).submit(_request(inputs))
    lenient = Scheduler(model, _config(capacity=64, too_long="truncate", exact_rng=False))
    handle = lenient.submit(_request(inputs, max_steps=100, ignore_eos=True))
    assert handle.max_steps == 25
    lenient.run_until_idle()
    assert handle.result().stop == "max_steps" and handle.result().generated.numel() == 25


def test_streams_chunks(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    seen: list[TokenChunk] = []
    scheduler = Scheduler(model, _config(first_chunk_tokens=4, chunk_tokens=10))
    handle = scheduler.submit(_request(inputs, max_steps=37, ignore_eos=True, on_chunk=seen.append))
    scheduler.step()
    assert not seen
    for _ in range(3):
        scheduler.step()
    assert [c.tokens.numel() for c in seen] == [4]  # out as soon as 4 tokens exist
    scheduler.run_until_idle()
    chunks = list(handle.chunks())
    assert [c.tokens.numel() for c in chunks] == [4, 10, 10, 10, 3]
    assert [c.final for c in chunks] == [False] * 4 + [True]
    assert [c.start for c in chunks] == [0, 4, 14, 24, 34]
    assert torch.equal(torch.cat([c.tokens for c in chunks]), handle.result().generated)
    assert len(seen) == 5


def test_background_thread(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    scheduler = Scheduler(model, _config())
    scheduler.start()
    try:
        handles = [scheduler.submit(_request(inputs, v, **kw)) for v, kw in CASES[:3]]
        results = [h.result(timeout=60) for h in handles]
    finally:
        scheduler.stop()
    for handle, result in zip(handles, results, strict=True):
        assert torch.equal(result.y, _generate(model, handle.request).y)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bert": torch.zeros(1024, 3)}, r"bert must be \(1024, 24\)"),
        ({"phones": torch.full((24,), 9999)}, "phoneme ids must lie in"),
        ({"prompt": torch.full((4,), 1024)}, "prompt semantic ids must lie in"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"seed": -1}, "seed must lie in"),
    ],
)
def test_rejects_bad_input(
    model: Text2Semantic, inputs: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    io = inputs["inputs"]
    fields: dict[str, Any] = {
        "phones": io["phones"],
        "bert": io["bert_feature"],
        "prompt": io["prompt_semantic"],
        "max_steps": STEPS,
    } | change
    scheduler = Scheduler(model, _config())
    with pytest.raises(ValueError, match=message):
        scheduler.submit(T2SRequest(**fields))
    assert scheduler.queued == 0


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="span_buckets must increase"):
        SchedulerConfig(capacity=512, span_buckets=(256, 128, 512))
    with pytest.raises(ValueError, match="and end at 8"):
        SchedulerConfig(max_rows=8, batch_buckets=(1, 4))


def test_row_sampling_views_share_storage() -> None:
    state = RowSampling.empty(4, 10, torch.device("cpu"))
    state.head(2).top_k.fill_(7)
    assert state.top_k.tolist() == [7, 7, 1, 1]


def _voice(nbytes_semantic: int) -> PreparedVoice:
    return PreparedVoice(
        torch.zeros(nbytes_semantic // 8, dtype=torch.int64),
        torch.zeros(1, dtype=torch.int64),
        torch.zeros(1024, 1),
        torch.zeros(1, 4, 1),
    )


def test_voice_cache_is_lru_by_bytes() -> None:
    cache = VoiceCache(max_entries=10, max_bytes=3 * _voice(800).nbytes)
    built: list[str] = []

    def prepare(name: str) -> PreparedVoice:
        built.append(name)
        return _voice(800)

    for name in ("a", "b", "c", "a", "d"):
        cache.get(name, lambda name=name: prepare(name))  # type: ignore[misc]
    assert built == ["a", "b", "c", "d"]  # the repeated voice was not prepared again
    assert "b" not in cache and "a" in cache and len(cache) == 3
    assert (cache.hits, cache.misses) == (1, 4)


def test_model_lru_evicts_least_recent() -> None:
    evicted: list[object] = []
    lru: ModelLRU[int] = ModelLRU(100, size_of=lambda m: m, on_evict=lambda k, _: evicted.append(k))
    lru.get("x", lambda: 40)
    lru.get("y", lambda: 40)
    lru.get("x", lambda: 40)
    lru.get("z", lambda: 50)
    assert evicted == ["y"] and lru.keys() == ["x", "z"]
    with pytest.raises(MemoryError, match="needs 200 bytes"):
        lru.get("big", lambda: 200)


@pytest.fixture(scope="module")
def sovits(fixtures_dir: Path) -> SynthesizerTrn:
    return SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth")


def test_sovits_batch_equals_solo(sovits: SynthesizerTrn) -> None:
    model = sovits
    gen = torch.Generator().manual_seed(0)
    ge = torch.randn(2, model.config.gin_channels, 1, generator=gen)
    jobs = [
        AudioJob(
            torch.randint(0, 1024, (n,), generator=gen), torch.randint(1, 300, (m,)), ge[i : i + 1]
        )
        for i, (n, m) in enumerate(((9, 7), (5, 4)))
    ]
    batch = decode_batch(model, jobs, noise_scale=0.0)
    for job, audio in zip(jobs, batch, strict=True):
        (solo,) = decode_batch(model, [job], noise_scale=0.0)
        assert (
            audio.shape == solo.shape == (job.codes.numel() * 2 * model.config.samples_per_frame,)
        )
        torch.testing.assert_close(audio, solo, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="job 0: codes and phones must be non-empty"):
        decode_batch(model, [AudioJob(torch.zeros(0, dtype=torch.int64), jobs[0].phones, ge[:1])])


@pytest.mark.parametrize("speed", [1.0, 1.3])
def test_jobs_with_their_own_noise_decode_as_alone(sovits: SynthesizerTrn, speed: float) -> None:
    """A job carrying its prior draw gets, in any padded batch, the audio `decode` gives it
    alone with that draw: its companions change nothing (at speed 1 and stretched)."""
    model = sovits
    gen = torch.Generator().manual_seed(3)
    ge = torch.randn(3, model.config.gin_channels, 1, generator=gen)
    jobs = []
    for i, (n, m) in enumerate(((9, 7), (5, 4), (12, 3))):
        frames = prior_frames(model, n, speed)
        noise = torch.randn(model.config.inter_channels, frames, generator=gen)
        codes, phones = torch.randint(0, 1024, (n,), generator=gen), torch.randint(1, 300, (m,))
        jobs.append(
            AudioJob(codes, phones, ge[i : i + 1], noise=noise, speed=speed, noise_scale=0.7)
        )
    batch = decode_batch(model, jobs)
    for job, audio in zip(jobs, batch, strict=True):
        assert job.noise is not None
        alone = model.decode(
            job.codes[None], job.phones[None], ge=job.ge, noise=job.noise[None],
            noise_scale=0.7, speed=speed,
        )[0, 0]  # fmt: skip
        torch.testing.assert_close(audio, alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"noise must be \(inter_channels, frames\)"):
        decode_batch(model, [replace(jobs[0], noise=jobs[0].noise[:, :-1])])  # type: ignore[index]
    with pytest.raises(ValueError, match="must share speed, noise scale"):
        decode_batch(model, [jobs[0], replace(jobs[1], noise_scale=0.2)])


def _noisy_job(
    model: SynthesizerTrn, gen: torch.Generator, ge: torch.Tensor, n: int, speed: float = 1.0
) -> AudioJob:
    """A job of `n` random codes carrying its own prior draw (as the engine's jobs do)."""
    noise = torch.randn(model.config.inter_channels, prior_frames(model, n, speed), generator=gen)
    codes = torch.randint(0, 1024, (n,), generator=gen)
    return AudioJob(codes, torch.randint(1, 300, (4,)), ge, noise=noise, speed=speed)


def test_vocoder_worker_batches_only_jobs_that_can_share_a_call(
    sovits: SynthesizerTrn, submit_together: SubmitTogether
) -> None:
    model = sovits
    gen = torch.Generator().manual_seed(4)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen)
    jobs = [
        _noisy_job(model, gen, ge, n, speed)
        for n, speed in ((6, 1.0), (4, 1.2), (8, 1.0), (5, 1.2), (7, 1.0))
    ]
    # Nothing starts before all five wait, so the grouping is certain; the last two then go
    # at once (nothing more is coming).
    worker, futures = submit_together(model, jobs, max_batch=8, noise_scale=0.5)
    results = [f.result(timeout=60) for f in futures]
    worker.close()
    assert worker.batches == 2  # the three at speed 1, then the two at 1.2
    for j, audio in zip(jobs, results, strict=True):
        (alone,) = decode_batch(model, [j], length_multiple=1)
        torch.testing.assert_close(audio, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("max_batch", "size"), [(8, 4), (3, 3)])
def test_vocoder_worker_rounds_batches_up_to_powers_of_two(
    sovits: SynthesizerTrn,
    submit_together: SubmitTogether,
    monkeypatch: pytest.MonkeyPatch,
    max_batch: int,
    size: int,
) -> None:
    """The stream-window worker's `batch_buckets`: three windows decode as a batch of four
    (the last repeated, its copy dropped), each as it would alone; never past `max_batch`."""
    from voiceseal_models.gpt_sovits.serving import vocoder

    model = sovits
    gen = torch.Generator().manual_seed(6)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen)
    jobs = [_noisy_job(model, gen, ge, n) for n in (7, 12, 9)]
    sizes: list[int] = []
    real = vocoder.decode_batch

    def counted(m: SynthesizerTrn, batch: list[AudioJob], **kw: Any) -> list[torch.Tensor]:
        sizes.append(len(batch))
        return real(m, batch, **kw)

    monkeypatch.setattr(vocoder, "decode_batch", counted)
    worker, futures = submit_together(
        model, jobs, max_batch=max_batch, batch_buckets=True, pack=False
    )
    results = [f.result(timeout=60) for f in futures]
    worker.close()
    assert sizes == [size] and worker.batches == 1
    for j, audio in zip(jobs, results, strict=True):
        (alone,) = real(model, [j], length_multiple=1)
        torch.testing.assert_close(audio, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_batch": 0}, "min_batch <= max_batch"),
        ({"min_batch": 4, "max_batch": 2}, "min_batch <= max_batch"),
        ({"max_wait_s": -1.0}, "max_wait_s >= 0"),
        ({"graph_below": 0}, "graph_below must be >= 1"),
    ],
)
def test_vocoder_worker_refuses_bad_settings(
    sovits: SynthesizerTrn, settings: dict[str, Any], message: str
) -> None:
    from voiceseal_models.gpt_sovits.serving.vocoder import VocoderWorker

    with pytest.raises(ValueError, match=message):
        VocoderWorker(sovits, **settings)


def test_a_failing_job_fails_alone_in_its_batch(
    sovits: SynthesizerTrn, submit_together: SubmitTogether
) -> None:
    model = sovits
    gen = torch.Generator().manual_seed(5)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen)
    good = [
        AudioJob(torch.randint(0, 1024, (n,), generator=gen), torch.randint(1, 300, (4,)), ge)
        for n in (6, 9)
    ]
    bad = AudioJob(torch.tensor([3, 5000, 7]), torch.randint(1, 300, (4,)), ge)  # no such code
    jobs = [good[0], bad, good[1]]
    worker, futures = submit_together(model, jobs, max_batch=8, noise_scale=0.0)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1024\)"):
        futures[1].result(timeout=60)
    for i in (0, 2):
        (alone,) = decode_batch(model, [jobs[i]], noise_scale=0.0)
        torch.testing.assert_close(futures[i].result(timeout=60), alone, atol=1e-5, rtol=1e-4)
    worker.close()


def test_grouped_prompt_pass_matches_solo(model: Text2Semantic, inputs: dict[str, Any]) -> None:
    # Texts of different lengths sharing a prompt length are admitted in one left-padded pass.
    scheduler = Scheduler(model, _config(exact_rng=False))
    requests = [
        _request(inputs, "a", sampling=SamplingParams(top_k=1)),
        _request(inputs, "b", sampling=SamplingParams(top_k=1)),
        _request(inputs, "b", sampling=SamplingParams(top_k=1), prompt=None),
    ]
    handles = [scheduler.submit(r) for r in requests]
    scheduler.step()
    assert scheduler.active == 3 and all(h.steps == 1 for h in handles)
    scheduler.run_until_idle()
    for request, handle in zip(requests, handles, strict=True):
        assert torch.equal(handle.result().y, _generate(model, request).y)


def test_vocoder_worker_batches_in_background(sovits: SynthesizerTrn) -> None:
    model = sovits
    gen = torch.Generator().manual_seed(1)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen)
    jobs = [
        AudioJob(torch.randint(0, 1024, (n,), generator=gen), torch.randint(1, 300, (4,)), ge)
        for n in (6, 3, 8)
    ]
    worker = VocoderWorker(model, max_batch=2, noise_scale=0.0)
    futures = [worker.submit(job) for job in jobs]
    worker.close()
    for job, future in zip(jobs, futures, strict=True):
        (solo,) = decode_batch(model, [job], noise_scale=0.0)
        torch.testing.assert_close(future.result(timeout=60), solo, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(jobs[0])


def test_wide_step_network_equals_the_masked_one(model: Text2Semantic) -> None:
    """The wide step's per-row attention lengths give the masked span's logits and cache writes
    (on the CPU `ragged_attention` is its reference; the kernel is compared on CUDA)."""
    from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool, step_logits
    from voiceseal_models.gpt_sovits.serving.wide_step import wide_logits

    net, rows, capacity = model.network, 5, 64
    gen = torch.Generator().manual_seed(0)
    pools = [
        SlotPool.allocate(net, rows, capacity, device=torch.device("cpu"), dtype=torch.float32)
        for _ in range(2)
    ]
    kv = torch.randn(pools[0].kv.shape, generator=gen)
    pos = torch.randint(0, capacity // 2, (rows,), generator=gen)
    slot = pos + torch.randint(0, capacity // 2, (rows,), generator=gen)
    tokens = torch.randint(0, net.config.vocab_size, (rows,), generator=gen)
    for pool in pools:
        pool.kv.copy_(kv)
        pool.pos.copy_(pos)
        pool.slot.copy_(slot)
        pool.tokens.copy_(tokens)
    with torch.inference_mode():
        masked = step_logits(net, pools[0], rows, capacity)
        wide = wide_logits(net, pools[1], rows, capacity)
    torch.testing.assert_close(wide, masked, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pools[1].kv, pools[0].kv, rtol=0, atol=0)
