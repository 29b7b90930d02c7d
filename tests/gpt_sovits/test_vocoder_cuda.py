"""Serving's SoVITS generator and wide-batch decode pieces on a CUDA device (opt-in:
`pytest -m gpu` on a machine with a GPU).

Tolerances: float32 with TF32 off compares the Triton/channels-last generator with the module
to 1e-5 (summation order only); fp16 at full v2ProPlus width (random weights) allows the
rounding differences of fused fp32 intermediates, 3e-3 relative L2 (measured ~1e-3 on an
H100). The ragged attention kernel is compared with SDPA in float32 (1e-5) and fp16 (2e-3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator
from voiceseal_models.gpt_sovits.serving.ragged_attention import (
    ragged_attention,
    ragged_attention_reference,
)
from voiceseal_models.gpt_sovits.serving.vocoder import AudioJob, decode_batch
from voiceseal_models.gpt_sovits.sovits import SoVITSConfig, SynthesizerTrn

#: The `submit_together` fixture (conftest.py): a worker given all jobs, batching them once all wait.
SubmitTogether = Callable[..., tuple[Any, list[Any]]]

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.usefixtures("no_tf32"),
]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _mask(lengths: list[int], frames: int, dtype: torch.dtype) -> torch.Tensor:
    valid = torch.arange(frames)[None] < torch.tensor(lengths)[:, None]
    return valid.to(dtype)[:, None].cuda()


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_generator_float32(fixtures_dir: Path, channels_last: bool) -> None:
    model = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", device="cuda")
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, model.config.inter_channels, 31, generator=gen).cuda()
    g = torch.randn(3, model.config.gin_channels, 1, generator=gen).cuda()
    fast = FastGenerator(model.dec, channels_last=channels_last)
    for mask in (None, _mask([31, 20, 7], 31, torch.float32)):
        expected = model.dec(x, g, mask)
        got = fast(x, g, mask)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_fast_generator_fp16_full_size(fixtures_dir: Path) -> None:
    hparams = json.loads((fixtures_dir / "manifest_s2_v2ProPlus.json").read_text())["config"]
    torch.manual_seed(0)
    model = SynthesizerTrn(SoVITSConfig.from_hparams(hparams, version="v2ProPlus"))
    dec = model.dec.to("cuda", torch.float16).eval()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 192, 120, generator=gen).cuda().half()
    g = torch.randn(4, 1024, 1, generator=gen).cuda().half()
    mask = _mask([120, 77, 120, 31], 120, torch.float16)
    with torch.inference_mode():
        for channels_last in (False, True):
            fast = FastGenerator(dec, channels_last=channels_last)
            for m in (None, mask):
                expected = dec(x, g, m)
                got = fast(x, g, m)
                assert torch.isfinite(got).all()
                assert _rel(got, expected) < 3e-3
                if m is not None:  # padding stays exactly zero
                    assert not got[3, :, 31 * 640 :].any()


def test_decode_batch_fast_equals_eager(
    cuda_sovits_jobs: tuple[SynthesizerTrn, list[AudioJob]],
) -> None:
    model, jobs = cuda_sovits_jobs
    fast = FastGenerator(model.dec)
    expected = decode_batch(model, jobs, noise_scale=0.0)
    got = decode_batch(model, jobs, noise_scale=0.0, dec=fast)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ragged_attention_matches_sdpa(dtype: torch.dtype) -> None:
    gen = torch.Generator(device="cuda").manual_seed(1)
    rows, heads, capacity, dim, span = 9, 4, 300, 32, 200
    kv = torch.randn(2, rows + 3, heads, capacity, dim, device="cuda", generator=gen).to(dtype)
    q = torch.randn(rows, heads, dim, device="cuda", generator=gen).to(dtype)
    lengths = torch.tensor([1, 2, 63, 64, 65, 127, 200, 150, 250], device="cuda")
    keys, values = kv[0, :rows, :, :span], kv[1, :rows, :, :span]
    expected = ragged_attention_reference(
        q.double(), keys.double(), values.double(), lengths.clamp(max=span)
    )
    out = torch.full_like(q, float("nan"))
    out.copy_(ragged_attention(q, keys, values, lengths))
    assert torch.isfinite(out).all()
    assert _rel(out, expected) < (1e-5 if dtype == torch.float32 else 2e-3)


def test_wide_step_serves_like_the_eager_step(fixtures_dir: Path) -> None:
    # Row buckets >= 4 take the wide step (one graph each, at the longest span); greedy
    # requests in float32 must come out token for token as from the eager, stock step.
    from voiceseal_models.gpt_sovits.sampling import SamplingParams
    from voiceseal_models.gpt_sovits.serving import Scheduler, SchedulerConfig, T2SRequest
    from voiceseal_models.gpt_sovits.t2s import Text2Semantic

    model = Text2Semantic.from_checkpoint(fixtures_dir / "t2s_tiny.ckpt", device="cuda")
    io = torch.load(fixtures_dir / "t2s_tiny_io.pt", weights_only=True)["inputs"]
    requests = [
        T2SRequest(io["phones"], io["bert_feature"], io["prompt_semantic"][: 5 + 3 * i],
                   SamplingParams(top_k=1), max_steps=60 + 7 * i)
        for i in range(6)
    ]  # fmt: skip
    base = {"max_rows": 8, "capacity": 256, "span_buckets": (64, 128, 256), "fused_step": False}
    results = []
    for config in (
        SchedulerConfig(**base, wide_min_rows=4),
        SchedulerConfig(**base, cuda_graphs=False, wide_min_rows=None),
    ):
        scheduler = Scheduler(model, config)
        scheduler.warm_up()
        if config.cuda_graphs:
            assert scheduler.graphs is not None
            assert {(4, 256), (8, 256)} <= set(scheduler.graphs.graphs)
            assert (8, 64) not in scheduler.graphs
        handles = [scheduler.submit(r) for r in requests]
        scheduler.run_until_idle()
        results.append([h.result() for h in handles])
    for wide, eager in zip(*results, strict=True):
        assert torch.equal(wide.y.cpu(), eager.y.cpu()) and wide.stop == eager.stop


def test_graphed_decoder_equals_solo_decode(fixtures_dir: Path) -> None:
    from voiceseal_models.gpt_sovits.serving.graphed_decode import GraphedDecoder

    model = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", device="cuda")
    graphed = GraphedDecoder(model, token_multiple=8, phone_multiple=8, noise_scale=0.0)
    gen = torch.Generator().manual_seed(9)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen).cuda()
    for n, m in ((13, 7), (20, 9), (5, 3), (14, 2)):  # (14, 2) replays the first bucket
        codes = torch.randint(0, 1024, (n,), generator=gen)
        phones = torch.randint(1, 300, (m,), generator=gen)
        expected = model.decode(codes, phones, ge=ge, noise_scale=0.0)[0, 0]
        got = graphed(codes, phones, ge)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert len(graphed._graphs) == 3
    # The caller's own noise and scale (a stream window's frames): as `decode` with that draw;
    # `decode` is the thread-safe call, with the audio copied to the host.
    noise = torch.randn(
        model.config.inter_channels, 13 * model.config.latent_upsampling, generator=gen
    ).cuda()
    codes = torch.randint(0, 1024, (13,), generator=gen)
    phones = torch.randint(1, 300, (7,), generator=gen)
    expected = model.decode(codes, phones, ge=ge, noise=noise[None], noise_scale=0.8)[0, 0]
    got = graphed.decode(codes, phones, ge, noise, 0.8)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, expected.cpu(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="noise must be"):
        graphed(codes, phones, ge, noise[:, :-1])
    with pytest.raises(ValueError, match="codes must lie in"):
        graphed(torch.tensor([5, 1024]), phones, ge)


def test_worker_jobs_with_their_own_noise_equal_decoding_alone(
    fixtures_dir: Path, submit_together: SubmitTogether
) -> None:
    """The platform's whole-file path on CUDA: jobs carrying their prior draws, batched by the
    worker through the serving generator, get the synthesizer's own solo decode."""
    from voiceseal_models.gpt_sovits.serving.vocoder import prior_frames

    model = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", device="cuda")
    gen = torch.Generator().manual_seed(12)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen).cuda()
    jobs = []
    for n, speed in ((13, 1.0), (30, 1.0), (9, 1.0), (17, 1.25)):
        noise = torch.randn(
            model.config.inter_channels, prior_frames(model, n, speed), generator=gen
        )
        codes = torch.randint(0, 1024, (n,), generator=gen)
        jobs.append(
            AudioJob(
                codes,
                torch.randint(1, 300, (6,), generator=gen),
                ge,
                noise=noise.cuda(),
                speed=speed,
            )
        )
    worker, futures = submit_together(model, jobs)
    got = [f.result(timeout=120) for f in futures]
    worker.close()
    assert worker.batches == 2  # speed 1 together, then the stretched one
    for job, audio in zip(jobs, got, strict=True):
        assert job.noise is not None
        alone = model.decode(
            job.codes.cuda(), job.phones.cuda(), ge=ge, noise=job.noise[None], noise_scale=0.5,
            speed=job.speed,
        )[0, 0].cpu()  # fmt: skip
        torch.testing.assert_close(audio, alone, atol=1e-5, rtol=0)
