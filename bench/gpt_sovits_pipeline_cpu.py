"""End-to-end speed and memory of the ``gpt-sovits`` engine: text -> T2S -> SoVITS -> 32 kHz audio.

Two model sizes: the tiny fixture checkpoints, and full-size random models (GPT 512-d x 24
layers; SoVITS v2 as ``manifest_s2_v2.json``) written to official-format files first (by the
writers of ``bench/gpt_sovits_cpu.py`` and ``bench/sovits_cpu.py``). HuBERT is a tiny random
model in both cases (the real chinese-hubert-base is not available here; it only runs once per
voice, at registration). Each configuration runs in its own subprocess so that its peak RSS is
its own.

Usage (from the repository root):

    .venv/bin/python bench/gpt_sovits_pipeline_cpu.py [--threads 1] [--tokens 100]

Prints per size: load + prompt time (``prepare_voice``), resident memory added by one prepared
voice (its two models and prompt), and for one sentence decoded in one piece and streamed: time,
audio seconds, real-time factor (time / audio) and, streamed, the time to the first chunk.
The random GPT's EOS logit is zeroed in the full-size file, so it speaks exactly ``--tokens``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "gpt_sovits"
TEXT = "The birch canoe slid on the smooth planks, and the juice of lemons makes fine punch."


def _bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def tiny_hubert(folder: Path) -> Path:
    """A random HuBERT saved like chinese-hubert-base (768 wide, as SoVITS's ssl_proj needs):
    it only builds each voice's prompt; the real one cannot be downloaded here."""
    import transformers

    torch.manual_seed(0)
    config = transformers.HubertConfig(
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=8,
    )
    transformers.HubertModel(config).save_pretrained(folder)
    return folder


def _child(args: dict[str, Any]) -> dict[str, Any]:
    from voiceseal.contracts import ReferenceClip, SynthesisOptions, VoiceAssets
    from voiceseal_plugins.gpt_sovits.engine import SAMPLE_RATE, GPTSoVITSEngine
    from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings

    torch.set_num_threads(args["threads"])
    settings = GPTSoVITSSettings(hubert_dir=args["hubert"], max_tokens=args["tokens"])
    engine = GPTSoVITSEngine(settings, device="cpu")
    rate = 32000
    t = np.arange(6 * rate) / rate
    clip = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )
    reference = ReferenceClip(clip, rate, "It is easy to tell the depth of a well.", "en")
    before = _rss_mib("VmRSS")
    t0 = time.perf_counter()
    voice = engine.prepare_voice(
        VoiceAssets(
            "bench", (reference,), {"gpt": Path(args["gpt"]), "sovits": Path(args["sovits"])}
        )
    )
    prepare_s = time.perf_counter() - t0
    voice_mib = _rss_mib("VmRSS") - before
    out: dict[str, Any] = {"prepare_s": prepare_s, "voice_mib": voice_mib}
    for stream in (False, True):
        options = SynthesisOptions(seed=1, extra={"stream": stream})
        t0 = time.perf_counter()
        first = None
        samples = 0
        for chunk in engine.synthesize(TEXT, voice, options):
            first = first if first is not None else time.perf_counter() - t0
            samples += chunk.samples.size
        elapsed = time.perf_counter() - t0
        seconds = samples / SAMPLE_RATE
        key = "stream" if stream else "whole"
        out[key] = {"s": elapsed, "audio_s": seconds, "rtf": elapsed / seconds, "first_s": first}
    out["peak_mib"] = _rss_mib("VmHWM")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        print(json.dumps(_child(json.loads(ns.child))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tiny_hubert(folder / "hubert")
        pairs = {"tiny": (FIXTURES / "t2s_tiny.ckpt", FIXTURES / "s2_v2_tiny.pth")}
        if "full" in ns.sizes:
            _bench_module("gpt_sovits_cpu")._write_full_size_checkpoint(folder / "full.ckpt")
            _bench_module("sovits_cpu")._write_full_size_checkpoint(folder / "full.pth", "v2")
            pairs["full"] = (folder / "full.ckpt", folder / "full.pth")
        print(f"threads={ns.threads} tokens<={ns.tokens} text={len(TEXT)} chars, CPU")
        print(
            "size  prepare_s  voice_MiB  peak_MiB  whole_s  audio_s  RTF    "
            "stream_s  RTF    first_chunk_s"
        )
        for size in ns.sizes.split(","):
            gpt, sovits = pairs[size]
            args = {
                "threads": ns.threads,
                "tokens": ns.tokens,
                "hubert": str(folder / "hubert"),
                "gpt": str(gpt),
                "sovits": str(sovits),
            }
            run = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(args)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(run.stdout.strip().splitlines()[-1])
            w, s = r["whole"], r["stream"]
            print(
                f"{size:<5} {r['prepare_s']:9.2f} {r['voice_mib']:10.0f} {r['peak_mib']:9.0f} "
                f"{w['s']:8.2f} {w['audio_s']:8.2f} {w['rtf']:6.3f} {s['s']:9.2f} "
                f"{s['rtf']:6.3f} {s['first_s']:13.2f}"
            )


if __name__ == "__main__":
    main()
