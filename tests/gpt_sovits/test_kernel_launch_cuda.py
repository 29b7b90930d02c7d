"""Parallel ahead-of-time compilation of the serving kernels (`serving.kernel_launch`) on a CUDA
device (opt-in: `pytest -m gpu`): inside `compile_only()` launches compile and do not run, the
flag stays on its own thread, and the real launches afterwards give the eager results."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="Triton is not installed")

from voiceseal_models.gpt_sovits.serving.fast_generator import activate
from voiceseal_models.gpt_sovits.serving.kernel_launch import (
    compile_only,
    compiling_only,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _inputs(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 24, 1, 50, generator=gen).to("cuda", dtype)
    mask = (torch.arange(50)[None] < torch.tensor([50, 31, 7])[:, None]).to(dtype)
    bias = torch.randn(24, generator=gen).to("cuda", dtype)
    return x, mask[:, None, None].cuda(), bias


def _expected(x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x.float() + bias.float()[None, :, None, None], 0.1) * mask.float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_compile_only_compiles_without_running_then_runs_for_real(dtype: torch.dtype) -> None:
    x, mask, bias = _inputs(dtype)
    out = torch.full_like(x, float("nan"))
    with compile_only(threads=4):
        assert compiling_only()
        activate(x, mask, 0.1, bias=bias, out=out)
    assert not compiling_only()
    torch.cuda.synchronize()
    assert torch.isnan(out).all(), "a launch inside compile_only() ran its kernel"
    activate(x, mask, 0.1, bias=bias, out=out)
    tol = 1e-6 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(out.float(), _expected(x, mask, bias), rtol=tol, atol=tol)


def test_another_thread_launches_for_real_during_compile_only() -> None:
    x, mask, bias = _inputs(torch.float32)
    out = torch.full_like(x, float("nan"))
    seen: list[bool] = []

    def other() -> None:
        seen.append(compiling_only())
        activate(x, mask, 0.1, bias=bias, out=out)
        torch.cuda.synchronize()

    with compile_only(threads=2):
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert seen == [False]
    torch.testing.assert_close(out, _expected(x, mask, bias), rtol=1e-6, atol=1e-6)
