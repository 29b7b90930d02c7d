"""Shared fixtures for the GPT-SoVITS tests: the golden files from the official implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpt_sovits"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of the official-code fixtures (see its README.md and PROVENANCE.md)."""
    if not (FIXTURES / "t2s_tiny.ckpt").is_file():
        pytest.fail(f"GPT-SoVITS fixtures missing under {FIXTURES}")
    return FIXTURES


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread() -> Iterator[None]:
    """Run these small models on one intra-op thread.

    The tiny fixture models gain nothing from a second thread, and on a shared 2-core machine
    OpenMP threads that spin-wait for a busy core made decoding ~100x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def no_tf32() -> Iterator[None]:
    """Plain fp32 matmuls and convolutions on CUDA for a module, so that batched and solo runs
    (and fused and eager steps) compare tightly."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture
def cuda_sovits_jobs(fixtures_dir: Path) -> tuple[Any, list[Any]]:
    """The tiny fixture SoVITS on CUDA and three decode jobs of unequal lengths (30, 11 and 24
    codes, their own speaker vectors), for the batched-decode tests."""
    from voiceseal_models.gpt_sovits.serving.vocoder import AudioJob
    from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn

    model = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", device="cuda")
    gen = torch.Generator().manual_seed(0)
    ge = torch.randn(3, model.config.gin_channels, 1, generator=gen)
    jobs = [
        AudioJob(
            torch.randint(0, 1024, (n,), generator=gen),
            torch.randint(1, 300, (n // 2 + 1,), generator=gen),
            ge[i : i + 1],
        )
        for i, n in enumerate((30, 11, 24))
    ]
    return model, jobs


SubmitTogether = Callable[..., tuple[Any, list[Future[Any]]]]


def _submit_together(model: Any, jobs: list[Any], **settings: Any) -> tuple[Any, list[Future[Any]]]:
    """A `VocoderWorker` of `model` given all `jobs`, which starts decoding only once every one
    waits (its `incoming` hint counts those not submitted yet, and `min_batch` is all of them),
    so that the batches it forms are certain; returns it and the jobs' futures."""
    from voiceseal_models.gpt_sovits.serving.vocoder import VocoderWorker

    coming = [len(jobs)]
    worker = VocoderWorker(
        model, min_batch=len(jobs), max_wait_s=60.0, incoming=lambda: coming[0], **settings
    )
    futures = []
    for job in jobs:
        coming[0] -= 1
        futures.append(worker.submit(job))
    return worker, futures


@pytest.fixture(scope="session")
def submit_together() -> SubmitTogether:
    return _submit_together
