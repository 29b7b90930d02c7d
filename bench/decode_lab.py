"""Sweep the launch parameters of the Triton decode step (`triton_step.TUNING`) on a GPU.

Full-size v2 T2S shapes with random fp16 weights; one graphed step per (rows, span bucket,
variant), rows at slots just past the middle of the bucket, timed over many replays with CUDA
events.
Also times the fused sampler alone (top-k only, then top-k + top-p).

    python3 bench/decode_lab.py [--rows 1 2] [--spans 512 1024] [--variants base no_pdl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from voiceseal_models.gpt_sovits.serving import triton_step
from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool, StepGraphs, fused_step
from voiceseal_models.gpt_sovits.t2s_network import T2SConfig, Text2SemanticDecoder

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpt_sovits"
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "budget4096": {"gemv_budget": 4096},
    "budget16384": {"gemv_budget": 16384},
    "gemv_warps2": {"gemv_warps": 2},
    "gemv_warps8": {"gemv_warps": 8},
    "attn_warps1": {"attention_warps": 1},
    "attn_warps4": {"attention_warps": 4},
    "no_prefetch": {"prefetch_rows": 0},
    "no_pdl": {"pdl": False},
    "no_pdl_attn_warps1": {"pdl": False, "attention_warps": 1},
}


def graph_us(run: Callable[[], None], reset: Callable[[], None], replays: int = 40) -> float:
    """Median GPU microseconds per call of `run` (already captured), over 5 timed bursts."""
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        reset()
        begin.record()
        for _ in range(replays):
            run()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) / replays * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--spans", type=int, nargs="+", default=[512])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    s1 = json.loads((FIXTURES / "manifest_s1_v2.json").read_text())["config"]
    net = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(s1))
    net = net.to("cuda", torch.float16).eval()
    results: dict[str, Any] = {}
    default = triton_step.TUNING
    for rows, span in [(r, s) for s in args.spans for r in args.rows]:
        net.ar_audio_position.ensure(span + 1)
        gen = torch.Generator().manual_seed(rows)
        pool = SlotPool.allocate(net, rows, span, device=torch.device("cuda"), dtype=torch.float16)
        pool.kv.copy_(torch.randn(pool.kv.shape, generator=gen).half())
        # Rows past the middle of the bucket (the scheduler takes the smallest span that fits).
        start = torch.randint(span // 2 + 50, span // 2 + 150, (rows,), generator=gen)
        pool.sampling.top_k.fill_(15)

        def reset(pool: SlotPool = pool, start: torch.Tensor = start) -> None:
            pool.slot.copy_(start)
            pool.pos.copy_(start - 60)

        # The first variant runs twice: its first timing also brings the clocks up.
        for i, name in enumerate([args.variants[0], *args.variants]):
            triton_step.TUNING = dataclasses.replace(default, **VARIANTS[name])
            graphs = StepGraphs(net, pool, fused_step(net, max_rows=max(args.rows)))
            reset()
            graphs.capture(rows, span)

            def replay(g: StepGraphs = graphs, r: int = rows, n: int = span) -> None:
                g.replay(r, n)

            us = graph_us(replay, reset)
            if i:
                results[f"step_us_rows{rows}_span{span}_{name}"] = us
            print(f"rows {rows} span {span} {name:20} {us:8.1f} us/step", flush=True)
        triton_step.TUNING = default
        logits = torch.randn(rows, net.config.vocab_size, device="cuda")
        for label, top_p in (("topk15", 1.0), ("topk15_topp0.8", 0.8)):
            pool.sampling.top_p.fill_(top_p)
            graph = torch.cuda.CUDAGraph()
            triton_step.sample_and_advance(net, pool, rows, logits, None)
            with torch.cuda.graph(graph):
                triton_step.sample_and_advance(net, pool, rows, logits, None)
            us = graph_us(graph.replay, reset, replays=100)
            results[f"sample_us_rows{rows}_{label}"] = us
            print(f"rows {rows} sampler {label:16} {us:8.1f} us", flush=True)
        del pool, graphs
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
