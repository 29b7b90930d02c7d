"""The text-to-semantic decoder on a CUDA device: eager, static-cache and CUDA-graph decoding
against the official outputs. Opt-in: `pytest -m gpu` on a machine with a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.t2s import Text2Semantic
from voiceseal_models.gpt_sovits.t2s_graph import CUDAGraphStep

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ATOL = RTOL = 1e-4
SINGLE = [
    "greedy_single",
    "greedy_single_early_stop",
    "greedy_single_rep1",
    "greedy_single_no_prompt",
]
MODES: dict[str, dict[str, Any]] = {
    "eager": {},
    "static": {"static_cache": True},
    "graph": {"cuda_graph": True},
}


@pytest.fixture(scope="module")
def io(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = torch.load(fixtures_dir / "t2s_tiny_io.pt", weights_only=True)
    return data


@pytest.fixture(scope="module")
def model(fixtures_dir: Path) -> Text2Semantic:
    # Plain fp32 matmuls, as on the CPU the fixtures came from.
    torch.backends.cuda.matmul.allow_tf32 = False
    return Text2Semantic.from_checkpoint(fixtures_dir / "t2s_tiny.ckpt", device="cuda")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("entry", SINGLE)
def test_single_decodes(model: Text2Semantic, io: dict[str, Any], entry: str, mode: str) -> None:
    ref, inputs = io[entry], io["inputs"]
    args = ref["args"]
    result = model.generate(
        inputs["phones"],
        inputs["bert_feature"],
        inputs["prompt_semantic"] if ref["prompt_given"] else None,
        top_k=args["top_k"],
        top_p=args["top_p"],
        temperature=args["temperature"],
        repetition_penalty=args["repetition_penalty"],
        early_stop_num=args["early_stop_num"],
        record_logits=True,
        **MODES[mode],
    )
    assert torch.equal(result.y.cpu(), ref["y_returned"].long())
    assert result.idx == ref["idx_returned"]
    if "step_logits_raw" in ref:
        assert result.step_logits is not None
        torch.testing.assert_close(
            result.step_logits.cpu(), ref["step_logits_raw"], atol=ATOL, rtol=RTOL
        )


def test_batch_decode(model: Text2Semantic, io: dict[str, Any]) -> None:
    ref, inputs = io["greedy_batch_infer"], io["inputs"]
    results = model.generate_batch(
        [inputs["phones"], inputs["phones_b"]],
        [inputs["bert_feature"], inputs["bert_feature_b"]],
        inputs["prompt_semantic"],
        top_k=1,
        early_stop_num=2700,
        pad_to=24,
    )
    assert [r.idx for r in results] == ref["idx_list"]
    assert all(torch.equal(r.y.cpu(), y) for r, y in zip(results, ref["y_list"], strict=True))


def test_streaming_with_graph(model: Text2Semantic, io: dict[str, Any]) -> None:
    inputs = io["inputs"]
    tokens = list(
        model.iter_tokens(
            inputs["phones"],
            inputs["bert_feature"],
            inputs["prompt_semantic"],
            top_k=1,
            cuda_graph=True,
        )
    )
    assert tokens == io["greedy_single"]["generated_tts_slice"].tolist()


def test_graph_refuses_another_cache(model: Text2Semantic) -> None:
    net = model.network
    x = torch.zeros(1, 4, net.config.hidden_dim, device="cuda")
    cache, _ = net.prefill(x, None, None, 16)
    other, _ = net.prefill(x, None, None, 16)
    step = CUDAGraphStep(net, cache)
    with pytest.raises(ValueError, match="captured for another KV cache"):
        step(
            other,
            torch.zeros(1, dtype=torch.int64, device="cuda"),
            torch.zeros((), dtype=torch.int64, device="cuda"),
        )
