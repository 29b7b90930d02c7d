"""Speed of the SoVITS synthesizer (our implementation) decoding 10 s of audio, CPU or CUDA.

A full-size random model (v2ProPlus by default, shapes from `manifest_s2_<version>.json`) is
written to a temporary official-format `.pth` first, so that loading goes through the same safe
loader as real files. The measurement runs in a subprocess so that its peak RSS is its own.

Usage (from the repository root):

    .venv/bin/python bench/sovits_cpu.py [--threads 2] [--seconds 10] [--batch 1]
        [--version v2ProPlus] [--device cuda] [--dtype float16]

Prints: load time, peak RSS (and peak CUDA memory), the reference-embedding time (once per
voice, cacheable), the decode time for `--batch` items of `--seconds` each and the real-time
factor (decode time / seconds of audio produced).
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

from voiceseal_models.gpt_sovits.sovits import SoVITSConfig, SynthesizerTrn

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpt_sovits"
REFERENCE_SECONDS = 6.0
PHONES_PER_SECOND = 12  # ~4 syllables/s of speech, ~3 phones each


def _write_full_size_checkpoint(path: Path, version: str) -> None:
    """Random full-size SoVITS in the official file layout (fp16 weights, config tree)."""
    manifest = json.loads((FIXTURES / f"manifest_s2_{version}.json").read_text())
    config = manifest["config"]
    torch.manual_seed(0)
    network = SynthesizerTrn(SoVITSConfig.from_hparams(config, version=version))
    weights = OrderedDict((k, v.half()) for k, v in network.state_dict().items())
    torch.save(OrderedDict(weight=weights, config=config, info="0epoch_0iteration"), path)


def _peak_rss_mib() -> float:
    # VmHWM rather than ru_maxrss, which Linux carries over fork+exec from the parent.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _run_one(
    pth: str, threads: int, seconds: float, batch: int, device: str, dtype: torch.dtype
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    base = _peak_rss_mib()
    t0 = time.perf_counter()
    model = SynthesizerTrn.from_checkpoint(pth, device=device, dtype=dtype)
    load_s = time.perf_counter() - t0
    config = model.config
    gen = torch.Generator().manual_seed(0)
    frames_per_code = config.latent_upsampling
    n_codes = round(seconds * config.sampling_rate / config.samples_per_frame / frames_per_code)
    codes = torch.randint(0, 1024, (batch, n_codes), generator=gen)
    phones = torch.randint(0, config.n_symbols, (batch, round(seconds * PHONES_PER_SECOND)),
                           generator=gen)  # fmt: skip
    spec = torch.rand(1, config.spec_channels, round(REFERENCE_SECONDS * 50), generator=gen)
    sv = torch.randn(1, 20480, generator=gen) if config.is_pro else None

    model.decode(codes[:, :25], phones[:, :10], [spec], sv_emb=sv)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    ge = model.reference_embedding([spec], sv)
    _sync(device)
    ge_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    audio = model.decode(codes, phones, ge=ge, generator=None)
    _sync(device)
    decode_s = time.perf_counter() - t0
    produced = audio.size(0) * audio.size(-1) / config.sampling_rate
    return {
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "load_s": load_s,
        "peak_rss_MiB": _peak_rss_mib(),
        "model_peak_MiB": _peak_rss_mib() - base,
        "cuda_peak_MiB": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0,
        "ge_ms": ge_s * 1e3,
        "decode_s": decode_s,
        "audio_s": produced,
        "rtf": decode_s / produced,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--version", default="v2ProPlus", choices=("v2", "v2Pro", "v2ProPlus"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--one", metavar="PTH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.one:
        result = _run_one(args.one, args.threads, args.seconds, args.batch, args.device, dtype)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        pth = Path(tmp) / f"s2_{args.version}_full_random.pth"
        _write_full_size_checkpoint(pth, args.version)
        out = subprocess.run(
            [sys.executable, __file__, "--threads", str(args.threads), "--seconds",
             str(args.seconds), "--batch", str(args.batch), "--device", args.device,
             "--dtype", args.dtype, "--one", str(pth)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    r = json.loads(out.stdout)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.threads} thread(s)"
    print(f"torch {torch.__version__}, {args.device} ({where}), SoVITS {args.version}, "
          f"{args.dtype}, batch {args.batch} x {args.seconds:g} s, noise_scale 0.5")  # fmt: skip
    header = ("params M", "load s", "peak RSS MiB", "of which model MiB", "CUDA peak MiB",
              "ge ms", "decode s", "audio s", "RTF")  # fmt: skip
    print(" | ".join(header))
    print(" | ".join([
        f"{r['params_M']:.1f}", f"{r['load_s']:.2f}", f"{r['peak_rss_MiB']:.0f}",
        f"{r['model_peak_MiB']:.0f}", f"{r['cuda_peak_MiB']:.0f}", f"{r['ge_ms']:.1f}",
        f"{r['decode_s']:.2f}", f"{r['audio_s']:.1f}", f"{r['rtf']:.3f}",
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
