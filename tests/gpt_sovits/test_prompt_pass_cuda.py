"""The prompt pass (text and prompt through every layer at once) on a CUDA device keeps off
cuDNN's attention, which builds a plan for every new shape (see
``t2s_network.FULL_SEQUENCE_ATTENTION``), and gives the default kernels' result. Opt-in:
`pytest -m gpu` on a machine with a GPU."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend
from torch.profiler import ProfilerActivity, profile

from voiceseal_models.gpt_sovits import t2s_network
from voiceseal_models.gpt_sovits.t2s import T2SConfig, Text2SemanticDecoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def network(fixtures_dir: Path) -> Text2SemanticDecoder:
    """The full-size architecture (random weights) in fp16, where cuDNN's attention applies."""
    torch.manual_seed(0)
    config = json.loads((fixtures_dir / "manifest_s1_v2.json").read_text())["config"]
    net = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(config))
    return net.half().cuda().eval()


def _prompt_pass(net: Text2SemanticDecoder, rows: int, width: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator(device="cuda").manual_seed(rows * 1000 + width)
    x = torch.randn(rows, width, 512, device="cuda", dtype=torch.float16, generator=gen)
    valid = torch.ones(rows, width, dtype=torch.bool, device="cuda")
    valid[0, :3] = False  # one left-padded row, as the scheduler's groups have
    prompt = torch.randint(0, 1000, (rows, 150), device="cuda", generator=gen)
    with torch.inference_mode():
        cache, logits = net.prefill(x, valid, prompt, width + 151)
    return logits, cache.k[:, :, :, : width + 150], cache.v[:, :, :, : width + 150]


def _kernels(fn: object) -> list[str]:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()  # type: ignore[operator]
        torch.cuda.synchronize()
    return [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]


def test_prompt_pass_keeps_off_cudnn_attention(network: Text2SemanticDecoder) -> None:
    names = _kernels(lambda: _prompt_pass(network, 3, 77))
    assert names, "the profiler saw no kernels"
    # On an H100 with torch 2.11 the default picks "cudnn_generated_fort_native_sdpa_sm90_...".
    assert not [n for n in names if "cudnn" in n.lower() and "sdpa" in n.lower()], names


def test_prompt_pass_matches_the_default_kernels(
    network: Text2SemanticDecoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = _prompt_pass(network, 3, 81)
    # The default choice (cuDNN first where PyTorch prefers it) for the same inputs.
    monkeypatch.setattr(
        t2s_network,
        "FULL_SEQUENCE_ATTENTION",
        (SDPBackend.CUDNN_ATTENTION, *t2s_network.FULL_SEQUENCE_ATTENTION),
    )
    default = _prompt_pass(network, 3, 81)
    for a, b in zip(ours, default, strict=True):
        scale = float(b.float().abs().max())
        assert float((a.float() - b.float()).abs().max()) <= 2e-2 * scale


def test_prompt_passes_in_threads_leave_the_kernel_flags_as_they_were(
    network: Text2SemanticDecoder,
) -> None:
    """The switch is process-wide: passes of several schedulers' threads take turns, so none
    puts back another's setting."""
    before = torch.backends.cuda.cudnn_sdp_enabled()
    errors: list[BaseException] = []

    def passes(rows: int) -> None:
        try:
            for width in range(40, 72, 4):
                _prompt_pass(network, rows, width)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=passes, args=(rows,)) for rows in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
