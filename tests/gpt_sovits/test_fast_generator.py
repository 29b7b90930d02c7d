"""Serving's `FastGenerator` (frozen kernels, channels-last option, fused pointwise work)
computes `Generator.forward`; CPU runs take its PyTorch fallback (the Triton kernels are
compared on a GPU in test_vocoder_cuda.py). float32, tiny fixture model: the two paths differ
only in summation order, so they agree to ~1e-6."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator
from voiceseal_models.gpt_sovits.serving.vocoder import AudioJob, decode_batch
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn

ATOL = 1e-5


@pytest.fixture(scope="module")
def model(fixtures_dir: Path) -> SynthesizerTrn:
    return SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_equals_generator(model: SynthesizerTrn, channels_last: bool, masked: bool) -> None:
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, model.config.inter_channels, 14, generator=gen)
    g = torch.randn(3, model.config.gin_channels, 1, generator=gen)
    mask = None
    if masked:
        mask = (torch.arange(14)[None] < torch.tensor([14, 9, 3])[:, None]).float()[:, None]
    fast = FastGenerator(model.dec, channels_last=channels_last)
    with torch.inference_mode():
        expected = model.dec(x, g, mask)
        got = fast(x, g, mask)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_decode_batch_with_fast_generator(model: SynthesizerTrn) -> None:
    gen = torch.Generator().manual_seed(5)
    ge = torch.randn(2, model.config.gin_channels, 1, generator=gen)
    jobs = [
        AudioJob(
            torch.randint(0, 1024, (n,), generator=gen),
            torch.randint(1, 300, (n // 2 + 1,), generator=gen),
            ge[i : i + 1],
        )
        for i, n in enumerate((27, 12))
    ]
    fast = FastGenerator(model.dec)
    expected = decode_batch(model, jobs, noise_scale=0.0)
    got = decode_batch(model, jobs, noise_scale=0.0, dec=fast)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
