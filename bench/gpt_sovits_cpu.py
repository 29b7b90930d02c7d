"""Speed of GPT-SoVITS text-to-semantic decoding (our implementation), batch 1, CPU or CUDA.

Two models: the tiny fixture checkpoint and a full-size random model (512-d, 24 layers,
16 heads, as `manifest_s1_v2.json`) written to a temporary official-format `.ckpt` first, so
that loading goes through the same safe loader as real files. Each configuration runs in its
own subprocess so that its peak RSS is its own.

Usage (from the repository root):

    .venv/bin/python bench/gpt_sovits_cpu.py [--threads 1] [--steps 200] [--device cuda]

Prints: load time, peak RSS (and peak CUDA memory on a GPU), prefill time, decode tokens/s and
the real-time factor (total time / audio duration, one token = 40 ms of audio at 25 Hz).
Cache modes: "eager" attends to the filled slots only, "static" to the whole preallocated cache
with a mask (fixed shapes), "graph" replays the static step from a CUDA graph (CUDA only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from voiceseal_models.gpt_sovits.t2s import T2SConfig, Text2Semantic, Text2SemanticDecoder

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpt_sovits"
TOKENS_PER_SECOND_OF_AUDIO = 25
PROMPT_TOKENS = 150  # a 6 s reference
PHONES = 60  # prompt text + one sentence


def _write_full_size_checkpoint(path: Path) -> None:
    """Random full-size GPT in the official file layout (fp16, `model.` prefix)."""
    manifest = json.loads((FIXTURES / "manifest_s1_v2.json").read_text())
    config = manifest["config"]
    torch.manual_seed(0)
    network = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(config))
    with torch.no_grad():
        # Random weights would emit EOS at an arbitrary step; silence it to time fixed lengths.
        network.ar_predict_layer.weight[network.config.eos].zero_()
    weights = OrderedDict((f"model.{k}", v.half()) for k, v in network.state_dict().items())
    torch.save(OrderedDict(weight=weights, config=config, info="GPT-e0"), path)


def _peak_rss_mib() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child
    # would report the parent's peak (the parent held the full-size model while writing it).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


MODES: dict[str, dict[str, bool]] = {
    "eager": {},
    "static": {"static_cache": True},
    "graph": {"cuda_graph": True},
}


def _run_one(ckpt: str, threads: int, steps: int, mode: str, device: str) -> dict[str, Any]:
    torch.set_num_threads(threads)
    base = _peak_rss_mib()
    t0 = time.perf_counter()
    model = Text2Semantic.from_checkpoint(ckpt, device=device)
    load_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    phones = torch.randint(0, model.config.phoneme_vocab_size, (PHONES,), generator=gen)
    bert = torch.randn(1024, PHONES, generator=gen)
    prompt = torch.randint(0, model.config.eos, (PROMPT_TOKENS,), generator=gen)
    kwargs: dict[str, Any] = {"top_k": 15, "seed": 0, **MODES[mode]}
    model.generate(phones, bert, prompt, max_steps=12, **kwargs)  # warm-up
    t0 = time.perf_counter()
    model.generate(phones, bert, prompt, max_steps=1, **kwargs)
    prefill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = model.generate(phones, bert, prompt, max_steps=steps, **kwargs)
    total_s = time.perf_counter() - t0
    n = result.generated.shape[0]
    decode_s = max(total_s - prefill_s, 1e-9)
    return {
        "params_M": sum(p.numel() for p in model.network.parameters()) / 1e6,
        "load_s": load_s,
        "peak_rss_MiB": _peak_rss_mib(),
        "model_peak_MiB": _peak_rss_mib() - base,
        "cuda_peak_MiB": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0,
        "prefill_ms": prefill_s * 1e3,
        "tokens": n,
        "stop": result.stop,
        "tok_per_s": (n - 1) / decode_s,
        "rtf": total_s / (n / TOKENS_PER_SECOND_OF_AUDIO),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--one", nargs=2, metavar=("CKPT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = _run_one(args.one[0], args.threads, args.steps, args.one[1], args.device)
        print(json.dumps(result))
        return
    modes = ["eager", "static"] + (["graph"] if args.device == "cuda" else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "s1_full_random.ckpt"
        _write_full_size_checkpoint(full)
        for label, ckpt in (("tiny fixture", FIXTURES / "t2s_tiny.ckpt"), ("full-size", full)):
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--threads", str(args.threads), "--steps",
                     str(args.steps), "--device", args.device, "--one", str(ckpt), mode],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                rows.append((label, mode, json.loads(out.stdout)))
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.threads} thread(s)"
    print(f"torch {torch.__version__}, {args.device} ({where}), batch 1, fp32, prompt "
          f"{PROMPT_TOKENS} tokens, {PHONES} phones, up to {args.steps} steps, top_k 15")  # fmt: skip
    header = ("model", "cache", "params M", "load s", "peak RSS MiB", "of which model MiB",
              "CUDA peak MiB", "prefill ms", "tokens", "tok/s", "RTF")  # fmt: skip
    print(" | ".join(header))
    for label, cache, r in rows:
        print(" | ".join([
            label, cache, f"{r['params_M']:.1f}", f"{r['load_s']:.2f}", f"{r['peak_rss_MiB']:.0f}",
            f"{r['model_peak_MiB']:.0f}", f"{r['cuda_peak_MiB']:.0f}", f"{r['prefill_ms']:.1f}", str(r["tokens"]), f"{r['tok_per_s']:.1f}", f"{r['rtf']:.3f}",
        ]))  # fmt: skip


if __name__ == "__main__":
    main()
