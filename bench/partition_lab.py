"""Lab (issue 6): the decode steps and SoVITS each confined to their own share of the SMs.

At 128 concurrent requests the two stages share one GPU and their costs add up (README). An
earlier experiment confined SoVITS alone to part of the SMs (a CUDA green context) and left the
decode steps free to use all of them: no gain. Here both are confined, to disjoint partitions
(the decode steps, small latency-bound kernels, ran about as fast on 40 of the 132 SMs as on
all of them), and for each split the lab measures, with a scheduler captured inside the decode
partition: the decode alone (128 requests of 5-15 s), SoVITS alone (the same 128 finished
requests submitted at once to a worker inside the SoVITS partition, with each batch's time, in
padded batches and packed, `serving/packing.py`),
and the one-wave run of `bench/gpu.py` twice (each SoVITS batch's size and time, and when the
decode finished). A split of 0 is the same run without partitions; list it first twice, the
first pass warms things up.

    PYTHONPATH=... python3 bench/partition_lab.py --splits 0 0 40 56 --json out.json

Result on the H100 (README): no split beat the unpartitioned run, and SoVITS alone on mixed
lengths decoded 930 audio-s/s in padded batches, which led to `serving/packing.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gpu
import torch

from voiceseal_models.gpt_sovits.serving import AudioJob, Scheduler, VocoderWorker
from voiceseal_models.gpt_sovits.serving.vocoder import decode_batch
from voiceseal_models.gpt_sovits.t2s import Text2Semantic

TOKENS_PER_SECOND = 25
SETTINGS = {"max_batch": 64, "min_batch": 16, "max_wait_s": 0.05}


def green(num_sms: int) -> Any:
    from torch.cuda.green_contexts import GreenContext

    return GreenContext.create(num_sms=num_sms, device_id=0)


@contextmanager
def inside(ctx: Any) -> Iterator[torch.cuda.Stream | None]:
    """Make `ctx` current on this thread and run on its stream (None: no partition)."""
    if ctx is None:
        yield None
        return
    ctx.set_context()
    try:
        stream = ctx.Stream() if hasattr(ctx, "Stream") else torch.cuda.Stream()
        with torch.cuda.stream(stream):
            yield stream
    finally:
        ctx.pop_context()


def confined_worker(
    ctx: Any, timings: list[tuple[int, float, float]], pack: bool = True
) -> type[VocoderWorker]:
    """A `VocoderWorker` whose thread runs inside `ctx` and records, per batch: jobs, seconds
    until `decode_batch` returned, seconds until the audio was on the host. `pack`: as
    `decode_batch`'s (False: the padded batches of before `serving/packing.py`)."""

    class ConfinedWorker(VocoderWorker):
        def _serve(self) -> None:
            with inside(ctx) as stream:
                if stream is not None:
                    self._stream = stream
                super()._serve()

        def _decode(self, jobs: list[AudioJob]) -> list[torch.Tensor]:
            with torch.inference_mode(), torch.cuda.stream(self._stream):
                t0 = time.perf_counter()
                audio = decode_batch(
                    self.model, jobs, noise_scale=self.noise_scale, dec=self.dec, pack=pack
                )
                t1 = time.perf_counter()
                host = [a.float().cpu() for a in audio]
                timings.append((len(jobs), t1 - t0, time.perf_counter() - t0))
                return host

    return ConfinedWorker


def probe(n_sms: int) -> dict[str, float]:
    """A large matmul inside a green context of n_sms against the whole GPU (does it bind?)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.half)

    def timed() -> float:
        s = torch.cuda.current_stream()
        for _ in range(3):
            a @ a
        s.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            a @ a
        s.synchronize()
        return (time.perf_counter() - t0) / 10 * 1e3

    full = timed()
    with inside(green(n_sms)):
        part = timed()
    return {"matmul_full_ms": full, f"matmul_{n_sms}sm_ms": part}


def split(
    bench: gpu.Bench, t2s: Text2Semantic, synth: Any, voice: Any, dec_sms: int, total: int
) -> dict[str, Any]:
    dec_ctx = green(dec_sms) if dec_sms else None
    sov_ctx = green(total - dec_sms) if dec_sms else None
    timings: list[tuple[int, float, float]] = []
    worker_type = confined_worker(sov_ctx, timings)
    # `Bench._pipeline` makes its worker through the bench module's name.
    gpu.VocoderWorker = worker_type  # type: ignore[misc]
    out: dict[str, Any] = {}
    with inside(dec_ctx):
        sched = Scheduler(t2s, bench.scheduler_config())
        sched.warm_up()
        lengths = torch.randint(125, 376, (128,), generator=bench.gen).tolist()
        reqs = [bench.request(t2s, voice, int(k), seed=i)[0] for i, k in enumerate(lengths)]
        audio_s = sum(lengths) / TOKENS_PER_SECOND
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for r in reqs:
            sched.submit(r)
        sched.run_until_idle()
        torch.cuda.synchronize()
        out["decode_alone_audio_s_per_s"] = audio_s / (time.perf_counter() - t0)
        tokens = [torch.randint(0, 1024, (int(k),), generator=bench.gen) for k in lengths]
        for pack in (False, True):
            worker = confined_worker(sov_ctx, timings, pack)(synth, **SETTINGS)
            warm = [
                worker.submit(AudioJob(t, bench.sovits_phones(len(t)), voice.ge))
                for t in tokens[:64]
            ]
            for f in warm:
                f.result()
            timings.clear()
            t0 = time.perf_counter()
            futures = [
                worker.submit(AudioJob(t, bench.sovits_phones(len(t)), voice.ge)) for t in tokens
            ]
            for f in futures:
                f.result()
            name = "packed" if pack else "padded"
            out[f"sovits_alone_{name}_audio_s_per_s"] = audio_s / (time.perf_counter() - t0)
            out[f"sovits_alone_{name}_batches"] = list(timings)
            worker.close()
        for _ in range(2):
            timings.clear()
            bench.results = {}
            bench._pipeline(t2s, synth, sched, voice, 128, SETTINGS, False, "")
            out.setdefault("wave", []).append(bench.results["ours_audio_s_per_s_c128"])
            out.setdefault("wave_ar_done_s", []).append(bench.results["ours_ar_done_s_c128"])
            out.setdefault("wave_batches", []).append(list(timings))
        del sched
        torch.cuda.empty_cache()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"sms": torch.cuda.get_device_properties(0).multi_processor_count}
    out |= probe(32)
    print(out, flush=True)
    bench = gpu.Bench(
        argparse.Namespace(
            device="cuda",
            dtype="float16",
            small=False,
            vocoder_batch=SETTINGS["max_batch"],
            vocoder_min_batch=SETTINGS["min_batch"],
            vocoder_wait=SETTINGS["max_wait_s"],
            decode_priority=False,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        gpt, sovits = bench.write_models(Path(tmp))
        t2s = Text2Semantic.from_checkpoint(gpt, device=bench.device, dtype=bench.dtype)
        side: dict[str, Any] = {}
        bench.sovits_side(sovits, side)
        synth = side["model"]
        voice = bench.voice(t2s, synth)
        for i, dec_sms in enumerate(args.splits):
            label = f"{i}_split{dec_sms}"
            try:
                out[label] = split(bench, t2s, synth, voice, dec_sms, out["sms"])
            except Exception as exc:  # a lab: report and go on with the next split
                out[label] = {"error": repr(exc)}
            print(label, out[label], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 0, 40, 56])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.setswitchinterval(5e-4)  # as bench/gpu.py
    with torch.inference_mode():
        out = run(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
