"""The platform's gpt-sovits engine on a GPU: what a tenant's requests get through it.

`bench/gpu.py` measures the serving pieces (scheduler, SoVITS worker) directly; this drives the
engine the API calls (`GPTSoVITSEngine.synthesize`), with its text front end, prompt cache,
continuous-batching scheduler and, for whole-file requests, SoVITS batching across requests
(`VOICESEAL_GPT_SOVITS_SOVITS_BATCHING`), measured on and off in the same run.

Models: the full-size v2 architecture with random weights (shapes from the fixture manifests,
written in the official formats and loaded by the engine's loaders; v2 by default, or with
`--version v2ProPlus` the architecture `bench/gpu.py` measures, whose voices also load a random
ERes2NetV2 speaker model) and a tiny random HuBERT (it only builds each voice's prompt once). EOS is silenced in the GPT's weights and the engine's
token cap is 250, so every request is one sentence of exactly 10 s of audio.

Usage (repository root, on the GPU machine; `voiceseal`, `voiceseal_models` and
`voiceseal_plugins` importable with the platform's dependencies):

    python bench/engine_gpu.py --json out.json
    python bench/engine_gpu.py --version v2ProPlus --levels 1 8 32 128 --sovits-batch 64
    python bench/engine_gpu.py --device cpu --small --levels 1 2   # smoke test, tiny models

Prints a table: audio-seconds per wall-second for N concurrent whole-file requests with SoVITS
batching off and on (and their ratio), the time to the first streamed chunk of one request
on a warm engine (the same text again, and 20 texts never seen before) and of the first
stream after start-up, and with `--streams N ...` the
aggregate rate and first-chunk p50/p95 of N concurrent streamed requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The same tiny HuBERT as the CPU pipeline bench (this folder is on sys.path when run).
from gpt_sovits_pipeline_cpu import tiny_hubert

from voiceseal.contracts import ReferenceClip, SynthesisOptions, VoiceAssets, VoiceHandle
from voiceseal_models.gpt_sovits.sovits import SoVITSConfig, SynthesizerTrn
from voiceseal_models.gpt_sovits.sovits.sv import ERes2NetV2
from voiceseal_models.gpt_sovits.t2s import T2SConfig, Text2SemanticDecoder
from voiceseal_plugins.gpt_sovits.engine import GPTSoVITSEngine
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpt_sovits"
TOKENS = 250  # forced length: 10 s of audio per request
TEXT = "The weather is calm today, and the harbour boats are waiting for the morning tide."
RATE = 32000


def write_models(folder: Path, small: bool, version: str = "v2") -> Path | None:
    """Full-size GPT and SoVITS (`version`) files with random weights, in the official formats
    (or, with `small`, the tiny fixture models, EOS silenced likewise). For v2ProPlus also a
    random ERes2NetV2 speaker model, whose path is returned (None otherwise)."""
    if small:
        gpt = torch.load(FIXTURES / "t2s_tiny.ckpt", map_location="cpu", weights_only=True)
        eos = int(gpt["config"]["model"]["EOS"])
        gpt["weight"]["model.ar_predict_layer.weight"][eos].zero_()
        torch.save(gpt, folder / "bench.ckpt")
        (folder / "bench.pth").write_bytes((FIXTURES / "s2_v2_tiny.pth").read_bytes())
        return None
    torch.manual_seed(0)
    s1 = json.loads((FIXTURES / "manifest_s1_v2.json").read_text())["config"]
    network = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(s1))
    with torch.no_grad():
        network.ar_predict_layer.weight[network.config.eos].zero_()  # never stops on its own
    weights = OrderedDict((f"model.{k}", v.half()) for k, v in network.state_dict().items())
    torch.save(OrderedDict(weight=weights, config=s1, info="GPT-e0"), folder / "bench.ckpt")
    s2 = json.loads((FIXTURES / f"manifest_s2_{version}.json").read_text())["config"]
    synth = SynthesizerTrn(SoVITSConfig.from_hparams(s2, version=version))
    sweights = OrderedDict((k, v.half()) for k, v in synth.state_dict().items())
    torch.save(
        OrderedDict(weight=sweights, config=s2, info="0epoch_0iteration"), folder / "bench.pth"
    )
    if version == "v2":
        return None
    # The speaker model only shapes each voice's style vector once (prompt building).
    sv = folder / "eres2netv2_random.ckpt"
    torch.save(ERes2NetV2().state_dict(), sv)
    return sv


def reference(seconds: float = 4.0, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * tone + 0.02 * noise).astype(np.float32)


def say(engine: GPTSoVITSEngine, voice: VoiceHandle, seed: int) -> float:
    """One whole-file request; returns its audio seconds."""
    chunks = engine.synthesize(TEXT, voice, SynthesisOptions(seed=seed))
    return sum(len(c.samples) for c in chunks) / RATE


def concurrent(engine: GPTSoVITSEngine, voice: VoiceHandle, n: int) -> tuple[float, float]:
    """n whole-file requests at once, each on its own thread (as the API's worker threads
    are); returns (audio-seconds per wall-second, wall seconds)."""
    audio = [0.0] * n

    def run(i: int) -> None:
        audio[i] = say(engine, voice, 1000 + i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(audio) / wall, wall


def concurrent_streams(
    engine: GPTSoVITSEngine, voice: VoiceHandle, n: int
) -> tuple[float, list[float]]:
    """n streamed requests at once, each read on its own thread; returns (audio-seconds per
    wall-second, each stream's time to its first chunk in ms)."""
    audio = [0.0] * n
    first = [0.0] * n
    start = time.perf_counter()

    def run(i: int) -> None:
        options = SynthesisOptions(seed=2000 + i, extra={"stream": True})
        for chunk in engine.synthesize(TEXT, voice, options):
            if audio[i] == 0.0:
                first[i] = (time.perf_counter() - start) * 1e3
            audio[i] += len(chunk.samples) / RATE

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(audio) / (time.perf_counter() - start), first


#: Words of the texts never seen before (`new_text`).
WORDS = [
    "harbour",
    "morning",
    "tide",
    "weather",
    "calm",
    "boats",
    "waiting",
    "river",
    "lantern",
    "garden",
    "window",
    "quiet",
    "silver",
    "letter",
    "yellow",
    "forest",
    "station",
    "travel",
    "winter",
    "summer",
    "market",
]


def new_text(i: int) -> str:
    """The i-th of a series of sentences of 6-22 words: the length of the phones, and so the
    shape of the prompt pass, changes from one to the next as in real traffic."""
    n = 6 + (i * 7) % 17
    return " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(n)).capitalize() + "."


def first_chunk_ms(
    engine: GPTSoVITSEngine, voice: VoiceHandle, seed: int, text: str = TEXT
) -> float:
    start = time.perf_counter()
    chunks = engine.synthesize(text, voice, SynthesisOptions(seed=seed, extra={"stream": True}))
    next(iter(chunks))
    elapsed = (time.perf_counter() - start) * 1e3
    for _ in chunks:  # finish it, so that its rows are free for the next measurement
        pass
    return elapsed


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "torch": torch.__version__,
        "device": args.device,
        "models": "tiny fixture models"
        if args.small
        else f"full-size {args.version}, random weights",
    }
    if args.device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "models").mkdir()
        sv_model = write_models(folder / "models", args.small, args.version)
        settings = GPTSoVITSSettings(
            hubert_dir=tiny_hubert(folder / "hubert"),
            model_dir=folder / "models",
            sv_model=sv_model,
            device=args.device,
            dtype=args.dtype,
            max_tokens=TOKENS,
            batch_max_rows=max(args.levels + args.streams),
            batch_max_queue=4 * max(args.levels + args.streams),
            sovits_batching=False,
            sovits_batch_max=args.sovits_batch,
        )
        engine = GPTSoVITSEngine(settings, device=args.device)
        clip = ReferenceClip(reference(), 24000, "A calm voice reads this short line.", "en")
        assets = VoiceAssets("bench", (clip,), {}, {"gpt": "bench.ckpt", "sovits": "bench.pth"}, {})
        t0 = time.perf_counter()
        voice = engine.prepare_voice(assets)
        results["prepare_voice_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say(engine, voice, 1)  # scheduler, graphs and kernels: the cold start
        results["first_request_s"] = time.perf_counter() - t0
        # The first stream after start-up: it meets whatever is still made on first use.
        results["first_stream_first_chunk_ms"] = first_chunk_ms(engine, voice, 49)
        try:
            for batching in (False, True):
                engine.settings.sovits_batching = batching
                concurrent(engine, voice, max(args.levels))  # warm: new shapes, the worker
                label = "on" if batching else "off"
                for n in args.levels:
                    rates = [concurrent(engine, voice, n)[0] for _ in range(args.repeats)]
                    results[f"audio_s_per_s_c{n}_sovits_batching_{label}"] = max(rates)
            ttfc = [first_chunk_ms(engine, voice, 50 + i) for i in range(5)]
            results["first_chunk_ms_median"] = statistics.median(ttfc)
            results["first_chunk_ms_all"] = ttfc
            # A text never seen before: the text front end and the prompt pass meet it first.
            fresh = sorted(first_chunk_ms(engine, voice, 60 + i, new_text(i)) for i in range(20))
            results["first_chunk_new_text_ms_median"] = statistics.median(fresh)
            results["first_chunk_new_text_ms_max"] = fresh[-1]
            for n in args.streams:
                concurrent_streams(engine, voice, n)  # warm: window shapes at this load
                rate, first = concurrent_streams(engine, voice, n)
                first.sort()
                results[f"stream_audio_s_per_s_c{n}"] = rate
                results[f"stream_first_chunk_ms_p50_c{n}"] = first[len(first) // 2]
                results[f"stream_first_chunk_ms_p95_c{n}"] = first[
                    min(len(first) - 1, int(0.95 * len(first)))
                ]
        finally:
            engine.close()
    return results


def table(r: dict[str, Any], levels: list[int]) -> str:
    lines = [
        f"torch {r['torch']} on {r.get('gpu', r['device'])}; {r['models']}, "
        f"{TOKENS} tokens (10 s) per request",
        "concurrent | SoVITS batching off | on | ratio",
    ]
    for n in levels:
        off = r[f"audio_s_per_s_c{n}_sovits_batching_off"]
        on = r[f"audio_s_per_s_c{n}_sovits_batching_on"]
        lines.append(f"{n:10d} | {off:19.1f} | {on:6.1f} | {on / off:5.2f}")
    lines.append(
        f"first streamed chunk, warm engine: {r['first_chunk_ms_median']:.1f} ms (median of 5); "
        f"texts never seen before: median {r['first_chunk_new_text_ms_median']:.1f} ms, max "
        f"{r['first_chunk_new_text_ms_max']:.1f} ms (20 texts)"
    )
    for n in r.get("streams", []):
        lines.append(
            f"{n} concurrent streams: {r[f'stream_audio_s_per_s_c{n}']:.1f} audio-s/s, first "
            f"chunk p50 {r[f'stream_first_chunk_ms_p50_c{n}']:.1f} ms, "
            f"p95 {r[f'stream_first_chunk_ms_p95_c{n}']:.1f} ms"
        )
    lines.append(
        f"first streamed chunk of the first stream after start-up: "
        f"{r['first_stream_first_chunk_ms']:.1f} ms"
    )
    lines.append(
        f"prepare voice {r['prepare_voice_s']:.2f} s; first request {r['first_request_s']:.2f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=2, help="runs per level (the best counts)")
    parser.add_argument("--sovits-batch", type=int, default=32, help="SoVITS batch limit")
    parser.add_argument("--small", action="store_true", help="tiny fixture models (smoke test)")
    parser.add_argument(
        "--streams",
        type=int,
        nargs="*",
        default=[],
        help="also N concurrent streamed requests: aggregate rate, first-chunk p50/p95",
    )
    parser.add_argument(
        "--version",
        default="v2",
        choices=("v2", "v2ProPlus"),
        help="SoVITS architecture (v2ProPlus: the one bench/gpu.py measures; its voices also "
        "load a random ERes2NetV2 speaker model)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if args.device == "cpu":
        args.dtype = "float32"
        torch.set_num_threads(1)
    results = run(args)
    results["streams"] = args.streams
    print(table(results, args.levels))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
