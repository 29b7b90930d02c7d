"""The Triton decode step on the CPU, through Triton's interpreter (no GPU needed).

The interpreter is chosen when Triton is imported (`TRITON_INTERPRET=1`), so the checks run in
a child process. They compare the kernels with the eager step on small random models: float32
logits and cache writes within rounding of the eager ones (GEMV and tl.dot row counts, span
chunks with and without a partial last block), and the fused sampler's tokens, EOS flags and
state updates identical to `sample_and_advance` for random parameters, with given and with
counter-based noise. The same kernels on a GPU are covered by test_serving_cuda.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip(
    "triton",
    reason="Triton is not installed (it comes with CUDA builds of torch; CPU installs do without it)",
)

pytestmark = pytest.mark.slow

CHECK = textwrap.dedent(
    """
    import torch
    from voiceseal_models.gpt_sovits.serving import triton_step
    from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool, sample_and_advance
    from voiceseal_models.gpt_sovits.t2s_network import T2SConfig, Text2SemanticDecoder

    torch.manual_seed(0)
    config = T2SConfig(
        hidden_dim=64, n_head=2, n_layer=2, vocab_size=65, phoneme_vocab_size=20, eos=64
    )
    net = Text2SemanticDecoder(config).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.5)  # biases and norms that are not 0 / 1
    # 1 and 3 rows: GEMV form; 17: tl.dot tiles. Capacity 96: a partial last span chunk.
    error = triton_step.self_check(net, row_counts=(1, 3, 17), capacity=96)
    assert error < 1e-5, error

    gen = torch.Generator().manual_seed(1)
    rows, vocab, cpu = 16, config.vocab_size, torch.device("cpu")
    for trial in range(4):
        pools = [SlotPool.allocate(net, rows, 64, device=cpu, dtype=torch.float32) for _ in "ab"]
        logits = torch.randn(rows, vocab, generator=gen) * 3
        if trial == 1:
            logits[:, -1] = 40.0  # EOS wins where it is allowed
        state = {
            "top_k": torch.randint(1, 30, (rows,), generator=gen),
            "top_p": torch.where(
                torch.rand(rows, generator=gen) < 0.5, 1.0, torch.rand(rows, generator=gen)
            ),
            "temperature": torch.rand(rows, generator=gen) + 0.3,
            "penalty": torch.rand(rows, generator=gen) + 1.0,
            "ignore_eos": torch.rand(rows, generator=gen) < 0.3,
            "seed": torch.randint(0, 2**32, (rows,), generator=gen),
            "step": torch.randint(0, 30, (rows,), generator=gen),
            "seen": torch.rand(rows, vocab, generator=gen) < 0.2,
        }
        fresh = torch.rand(rows, generator=gen) < 0.3
        prompt_logits = torch.randn(rows, vocab, generator=gen)
        noise = -torch.log(torch.rand(rows, vocab, generator=gen)) if trial % 2 else None
        for pool in pools:
            for name, value in state.items():
                getattr(pool.sampling, name).copy_(value)
            pool.fresh.copy_(fresh)
            pool.fresh_logits.copy_(prompt_logits)
            pool.slot.copy_(torch.arange(rows) + 40)
        want = sample_and_advance(net, pools[0], rows, logits.clone(), noise).clone()
        got = triton_step.sample_and_advance(net, pools[1], rows, logits.clone(), noise)
        assert torch.equal(got, want), (trial, got, want)
        for name in ("seen", "step"):
            assert torch.equal(getattr(pools[1].sampling, name), getattr(pools[0].sampling, name))
        for name in ("tokens", "pos", "slot", "fresh"):
            assert torch.equal(getattr(pools[1], name), getattr(pools[0], name)), name
    print("ok")
    """
)


def test_kernels_match_eager_in_the_interpreter() -> None:
    env = os.environ | {"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
