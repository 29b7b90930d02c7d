"""The serving path on a CUDA device: CUDA-graph replay equals the eager batched step, which
equals `Text2Semantic.generate`. Opt-in: `pytest -m gpu` on a machine with a GPU.

Tolerances: the tiny fixture model runs in float32 with TF32 off, so graph and eager paths
launch the same kernels on the same data and must agree token for token; the fp16 full-width
comparison allows the logit drift that bench/gpu.py reports (greedy tokens may differ after a
near-tie, so only the first tokens are compared there)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.sampling import SamplingParams
from voiceseal_models.gpt_sovits.serving import (
    RequestCancelled,
    Scheduler,
    SchedulerConfig,
    T2SRequest,
)
from voiceseal_models.gpt_sovits.serving.vocoder import AudioJob, GraphedChunkDecoder, decode_batch
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn
from voiceseal_models.gpt_sovits.t2s import T2SResult, Text2Semantic

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.usefixtures("no_tf32"),
]


@pytest.fixture(scope="module")
def inputs(fixtures_dir: Path) -> dict[str, Any]:
    io: dict[str, Any] = torch.load(fixtures_dir / "t2s_tiny_io.pt", weights_only=True)
    return io


def _model(fixtures_dir: Path, dtype: torch.dtype = torch.float32) -> Text2Semantic:
    return Text2Semantic.from_checkpoint(fixtures_dir / "t2s_tiny.ckpt", device="cuda", dtype=dtype)


def _requests(inputs: dict[str, Any]) -> list[T2SRequest]:
    io = inputs["inputs"]
    a = (io["phones"], io["bert_feature"])
    b = (io["phones_b"], io["bert_feature_b"])
    prompt = io["prompt_semantic"]
    return [
        T2SRequest(*a, prompt, SamplingParams(top_k=1), max_steps=150),
        T2SRequest(*b, prompt, SamplingParams(top_k=15), seed=3, max_steps=150),
        T2SRequest(
            *a, None, SamplingParams(top_k=15, top_p=0.8, temperature=0.7), seed=5, max_steps=150
        ),
        T2SRequest(
            *b, prompt[:9], SamplingParams(top_k=5, repetition_penalty=1.0), seed=11, max_steps=150
        ),
        T2SRequest(*a, prompt, SamplingParams(top_k=30), seed=2, max_steps=90, ignore_eos=True),
    ]


def _serve(
    model: Text2Semantic, config: SchedulerConfig, requests: list[T2SRequest]
) -> list[T2SResult]:
    scheduler = Scheduler(model, config)
    scheduler.warm_up()
    handles = []
    for request in requests:  # one new request per step: admissions into a running batch
        handles.append(scheduler.submit(request))
        scheduler.step()
    scheduler.run_until_idle()
    return [h.result() for h in handles]


CONFIG = SchedulerConfig(max_rows=8, capacity=256, span_buckets=(64, 128, 256))


def test_graph_equals_eager(fixtures_dir: Path, inputs: dict[str, Any]) -> None:
    model = _model(fixtures_dir)
    graph = _serve(model, CONFIG, _requests(inputs))
    eager = _serve(
        model, SchedulerConfig(**{**CONFIG.__dict__, "cuda_graphs": False}), _requests(inputs)
    )
    for g, e in zip(graph, eager, strict=True):
        assert torch.equal(g.y, e.y) and (g.idx, g.stop) == (e.idx, e.stop)
    ref = inputs["greedy_single"]
    assert torch.equal(graph[0].y, ref["y_returned"].long())


def test_exact_rng_equals_generate_on_cuda(fixtures_dir: Path, inputs: dict[str, Any]) -> None:
    model = _model(fixtures_dir)
    requests = _requests(inputs)[:4]
    served = _serve(model, SchedulerConfig(**{**CONFIG.__dict__, "exact_rng": True}), requests)
    for request, got in zip(requests, served, strict=True):
        p = request.sampling
        expected = model.generate(
            request.phones, request.bert, request.prompt, top_k=p.top_k, top_p=p.top_p,
            temperature=p.temperature, repetition_penalty=p.repetition_penalty,
            max_steps=request.max_steps, seed=request.seed,
        )  # fmt: skip
        assert torch.equal(got.y.cpu(), expected.y.cpu()) and got.idx == expected.idx


def test_half_precision_graph_follows_eager(fixtures_dir: Path, inputs: dict[str, Any]) -> None:
    model = _model(fixtures_dir, torch.float16)
    request = _requests(inputs)[0]
    (served,) = _serve(model, CONFIG, [request])
    eager = model.generate(request.phones, request.bert, request.prompt, top_k=1, max_steps=150)
    # fp16 rounding may flip a near-tie late in the sequence; the first tokens must agree.
    n = 12
    assert torch.equal(served.generated[:n].cpu(), eager.generated[:n].cpu())


def test_cancel_under_graphs_frees_row(fixtures_dir: Path, inputs: dict[str, Any]) -> None:
    model = _model(fixtures_dir)
    scheduler = Scheduler(
        model, SchedulerConfig(**{**CONFIG.__dict__, "max_rows": 1, "batch_buckets": None})
    )
    scheduler.warm_up()
    requests = _requests(inputs)
    running = scheduler.submit(requests[4])
    waiting = scheduler.submit(requests[0])
    for _ in range(3):
        scheduler.step()
    running.cancel()
    scheduler.step()
    # The freed row went to the waiting request in that same step (pipelined: its first
    # token is read back during the next step).
    assert waiting.steps_launched == 1 and scheduler.active == 1
    scheduler.run_until_idle()
    with pytest.raises(RequestCancelled):
        running.result()
    assert torch.equal(waiting.result().y, inputs["greedy_single"]["y_returned"].long())


def test_sovits_batch_on_cuda(cuda_sovits_jobs: tuple[SynthesizerTrn, list[AudioJob]]) -> None:
    model, jobs = cuda_sovits_jobs
    batch = decode_batch(model, jobs, noise_scale=0.0)
    for job, audio in zip(jobs, batch, strict=True):
        (solo,) = decode_batch(model, [job], noise_scale=0.0)
        torch.testing.assert_close(audio, solo, atol=1e-4, rtol=1e-3)


def test_graphed_chunk_decoder_equals_decode(fixtures_dir: Path) -> None:
    model = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", device="cuda")
    chunk = GraphedChunkDecoder(model, tokens=10, phone_buckets=(8, 16), noise_scale=0.0)
    gen = torch.Generator().manual_seed(3)
    for n_phones in (5, 8, 13):
        codes = torch.randint(0, 1024, (10,), generator=gen)
        phones = torch.randint(1, 300, (n_phones,), generator=gen)
        ge = torch.randn(1, model.config.gin_channels, 1, generator=gen).cuda()
        expected = model.decode(codes, phones, ge=ge, noise_scale=0.0)[0, 0]
        torch.testing.assert_close(chunk(codes, phones, ge), expected, atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match=r"phones must be \(m,\) with 1 <= m <= 16"):
        chunk(codes, torch.ones(17, dtype=torch.int64), ge)


# ------------------------------------------------------------------ the Triton step


def test_fused_self_check_on_fixture(fixtures_dir: Path) -> None:
    pytest.importorskip(
        "triton",
        reason="Triton is not installed (it comes with CUDA builds of torch; CPU installs do without it)",
    )
    from voiceseal_models.gpt_sovits.serving.triton_step import self_check

    # Float32 (IEEE products in the kernels) agrees to rounding; fp16 to its usual drift.
    # 1 and 3 rows: the GEMV form; 20: the tl.dot tiles.
    for dtype, tolerance in ((torch.float32, 1e-5), (torch.float16, 1e-2)):
        network = _model(fixtures_dir, dtype).network
        assert self_check(network, row_counts=(1, 3, 20)) < tolerance


def test_fused_step_serves_like_eager(fixtures_dir: Path, inputs: dict[str, Any]) -> None:
    pytest.importorskip(
        "triton",
        reason="Triton is not installed (it comes with CUDA builds of torch; CPU installs do without it)",
    )
    model = _model(fixtures_dir)
    fused = _serve(
        model, SchedulerConfig(**{**CONFIG.__dict__, "fused_step": True}), _requests(inputs)
    )
    eager = _serve(
        model,
        SchedulerConfig(**{**CONFIG.__dict__, "fused_step": False, "cuda_graphs": False}),
        _requests(inputs),
    )
    for f, e in zip(fused, eager, strict=True):
        assert torch.equal(f.y, e.y) and (f.idx, f.stop) == (e.idx, e.stop)
    assert torch.equal(fused[0].y, inputs["greedy_single"]["y_returned"].long())


def test_fused_step_precision_full_size_fp16(fixtures_dir: Path) -> None:
    """Full-size v2 shapes, random weights and random cache contents: the fp16 fused logits are
    at least as close to float32 as the stock fp16 step's (1 row: the Triton network; 16 rows:
    the eager network with the fused sampler), and pick the same argmax as float32."""
    pytest.importorskip(
        "triton",
        reason="Triton is not installed (it comes with CUDA builds of torch; CPU installs do without it)",
    )
    import copy
    import json

    from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool, step_logits
    from voiceseal_models.gpt_sovits.serving.triton_step import FusedStep
    from voiceseal_models.gpt_sovits.t2s_network import T2SConfig, Text2SemanticDecoder

    torch.manual_seed(0)
    s1 = json.loads((fixtures_dir / "manifest_s1_v2.json").read_text())["config"]
    net32 = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(s1)).to("cuda").eval()
    net16 = copy.deepcopy(net32).half()
    plan = FusedStep(net16)
    gen = torch.Generator().manual_seed(1)
    rows, span = 4, 512
    for trial in range(3):
        pools = {
            dtype: SlotPool.allocate(net16, rows, span, device=torch.device("cuda"), dtype=dtype)
            for dtype in (torch.float16, torch.float32)
        }
        kv = torch.randn(pools[torch.float16].kv.shape, generator=gen).half()
        slot = torch.randint(100, span, (rows,), generator=gen)
        tokens = torch.randint(0, 1024, (rows,), generator=gen)
        logits = {}
        for name, net, dtype in (
            ("fp32", net32, torch.float32),
            ("stock", net16, torch.float16),
            ("fused", net16, torch.float16),
        ):
            pool = pools[dtype]
            pool.kv.copy_(kv)
            pool.slot.copy_(slot)
            pool.pos.copy_(slot - 40)
            pool.tokens.copy_(tokens)
            with torch.inference_mode():
                run = plan.logits if name == "fused" else partial(step_logits, net)
                logits[name] = run(pool, rows, span)
        ref = logits["fp32"]
        error = {k: float((v - ref).norm() / ref.norm()) for k, v in logits.items()}
        assert error["fused"] <= max(1.2 * error["stock"], 1e-3), (trial, error)
        assert torch.equal(logits["fused"].argmax(-1), ref.argmax(-1)), trial


def test_fused_sampler_keeps_tokens_in_vocabulary_on_nan_logits(fixtures_dir: Path) -> None:
    """A model that produces NaN must not make the sampler emit an id past the vocabulary: the
    next step's embedding lookup would then assert on the device and end every request."""
    pytest.importorskip(
        "triton",
        reason="Triton is not installed (it comes with CUDA builds of torch; CPU installs do without it)",
    )
    from voiceseal_models.gpt_sovits.serving import triton_step
    from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool

    network = _model(fixtures_dir).network
    vocab = network.config.vocab_size
    rows = 4
    pool = SlotPool.allocate(network, rows, 64, device=torch.device("cuda"), dtype=torch.float32)
    pool.sampling.top_k.fill_(vocab)
    pool.sampling.top_p.fill_(1.0)
    pool.sampling.temperature.fill_(1.0)
    pool.sampling.penalty.fill_(1.0)
    pool.sampling.ignore_eos.copy_(torch.tensor([True, False, True, False]))
    pool.sampling.step.fill_(100)
    logits = torch.full((rows, vocab), float("nan"), device="cuda")
    out = triton_step.sample_and_advance(network, pool, rows, logits, None).cpu()
    assert ((out[:, 0] >= 0) & (out[:, 0] < vocab)).all(), out
    assert ((pool.tokens.cpu() >= 0) & (pool.tokens.cpu() < vocab)).all()


def test_precompile_pass_leaves_the_cache_clean(fixtures_dir: Path) -> None:
    """The scheduler's compile pass runs its buckets' PyTorch parts on the output of kernels it
    did not launch; whatever they wrote into the cache is wiped before anything reads it."""
    pytest.importorskip(
        "triton",
        reason="Triton is not installed (it comes with CUDA builds of torch; CPU installs do without it)",
    )
    sched = Scheduler(
        _model(fixtures_dir), SchedulerConfig(**{**CONFIG.__dict__, "fused_step": True})
    )
    assert sched._precompiled
    assert int(torch.count_nonzero(sched.pool.kv)) == 0


def test_models_for_a_gpu_are_built_there_when_it_has_room() -> None:
    from voiceseal_models.gpt_sovits.checkpoint import init_device

    assert init_device("cuda", {"w": torch.zeros(1000)}) == torch.device("cuda")
    # A float32 copy of a trillion weights fits no GPU: the meta device instead.
    huge = {"w": torch.empty(10**12, device="meta")}
    assert init_device("cuda", huge).type == "meta"
