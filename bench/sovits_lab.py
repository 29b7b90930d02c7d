"""Lab for the SoVITS / wide-batch work (issue 6): profiles and variant timings on one GPU.

    PYTHONUNBUFFERED=1 python3 bench/sovits_lab.py --out $OUT \
        [--sections sovits,step,compile,fastgen]

sovits: the stock generator against frozen-kernel / channels-last variants, kernel profiles;
step: the decode step at 1-128 rows (masked SDPA, wide, fused), attention alone; compile:
torch.compile of the channels-last generator; fastgen: serving's FastGenerator against the
stock generator. Writes lab.json and profile tables under --out and prints a table last.
"""

# The timing lambdas run inside the loop that binds their variables (B023 does not apply).
# ruff: noqa: B023

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool, StepGraphs, decode_and_sample
from voiceseal_models.gpt_sovits.serving.ragged_attention import (
    ragged_attention,
    ragged_attention_reference,
)
from voiceseal_models.gpt_sovits.serving.vocoder import AudioJob, decode_batch
from voiceseal_models.gpt_sovits.serving.wide_step import decode_and_sample_wide
from voiceseal_models.gpt_sovits.sovits import SoVITSConfig, SynthesizerTrn
from voiceseal_models.gpt_sovits.sovits.generator import LRELU_SLOPE, Generator, ResBlock1
from voiceseal_models.gpt_sovits.sovits.weight_norm import (
    WeightNormConv1d,
    WeightNormConvTranspose1d,
    weight_from_direction,
)
from voiceseal_models.gpt_sovits.t2s import T2SConfig, Text2SemanticDecoder

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpt_sovits"
R: dict[str, Any] = {}
LOG: list[str] = []


def log(msg: str) -> None:
    print(msg, flush=True)
    LOG.append(msg)


def cuda_time(fn: Callable[[], Any], reps: int = 5, warm: int = 1) -> float:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


# ---------------------------------------------------------------- SoVITS variants


def synth_model() -> SynthesizerTrn:
    s2 = json.loads((FIX / "manifest_s2_v2ProPlus.json").read_text())["config"]
    torch.manual_seed(0)
    m = SynthesizerTrn(SoVITSConfig.from_hparams(s2, version="v2ProPlus"))
    m = m.to("cuda", torch.float16).eval().requires_grad_(False)
    m.ssl_proj.float()
    m.quantizer.float()
    return m


def freeze(dec: Generator) -> dict[torch.nn.Module, torch.Tensor]:
    """Effective kernels of every conv in the generator, computed once."""
    out: dict[torch.nn.Module, torch.Tensor] = {}
    for m in dec.modules():
        if isinstance(m, (WeightNormConv1d, WeightNormConvTranspose1d)):
            out[m] = weight_from_direction(m.weight_g, m.weight_v)
        elif isinstance(m, torch.nn.Conv1d):
            out[m] = m.weight
    return out


Conv = Callable[[Any, torch.Tensor], torch.Tensor]


def _generator_pass(
    dec: Generator, conv: Conv, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Generator.forward with each convolution done by ``conv`` (any layout it handles)."""

    def block(b: ResBlock1, t: torch.Tensor, xm: torch.Tensor | None) -> torch.Tensor:
        for c1, c2 in zip(b.convs1, b.convs2, strict=True):
            xt = F.leaky_relu(t, LRELU_SLOPE)
            if xm is not None:
                xt = xt * xm
            xt = F.leaky_relu(conv(c1, xt), LRELU_SLOPE)
            if xm is not None:
                xt = xt * xm
            t = t + conv(c2, xt)
        return t

    if mask is not None:
        x = x * mask
    x = conv(dec.conv_pre, x) + conv(dec.cond, g)
    for stage, (up, rate) in enumerate(zip(dec.ups, dec.upsample_rates, strict=True)):
        x = F.leaky_relu(x, LRELU_SLOPE)
        if mask is not None:
            x = x * mask
            mask = mask.repeat_interleave(rate, dim=-1)
        x = conv(up, x)
        blocks = dec.resblocks[stage * dec.num_kernels : (stage + 1) * dec.num_kernels]
        acc = block(blocks[0], x, mask)
        for b in blocks[1:]:
            acc = acc + block(b, x, mask)
        x = acc / dec.num_kernels
    x = F.leaky_relu(x)
    if mask is not None:
        x = x * mask
    audio = torch.tanh(conv(dec.conv_post, x))
    return audio if mask is None else audio * mask


def gen_frozen(
    dec: Generator, W: dict, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None
):
    """Generator.forward with precomputed kernels (NCW conv1d)."""

    def conv(m: Any, t: torch.Tensor) -> torch.Tensor:
        if isinstance(m, WeightNormConvTranspose1d):
            return F.conv_transpose1d(t, W[m], m.bias, stride=m.stride, padding=m.padding)
        return F.conv1d(t, W[m], m.bias, padding=m.padding, dilation=m.dilation)

    return _generator_pass(dec, conv, x, g, mask)


def freeze4(dec: Generator) -> dict[torch.nn.Module, torch.Tensor]:
    """Kernels as 2-D (H=1) channels-last weights."""
    return {
        m: w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        for m, w in freeze(dec).items()
    }


def gen_nhwc(dec: Generator, W: dict, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None):
    """Generator.forward as conv2d over (B, C, 1, T) channels-last tensors."""
    cl = torch.channels_last

    def conv(m: Any, t: torch.Tensor) -> torch.Tensor:
        if isinstance(m, WeightNormConvTranspose1d):
            return F.conv_transpose2d(t, W[m], m.bias, stride=(1, m.stride), padding=(0, m.padding))
        pad = m.padding if isinstance(m.padding, int) else m.padding[0]
        dil = m.dilation if isinstance(m.dilation, int) else m.dilation[0]
        return F.conv2d(t, W[m], m.bias, padding=(0, pad), dilation=(1, dil))

    x = x.unsqueeze(2).contiguous(memory_format=cl)
    g = g.unsqueeze(2).contiguous(memory_format=cl)
    mask = None if mask is None else mask.unsqueeze(2)
    return _generator_pass(dec, conv, x, g, mask)[:, :, 0]


def sovits_inputs(model: SynthesizerTrn, batch: int, tokens: int, gen: torch.Generator) -> dict:
    """Intermediates up to the generator for `batch` items of `tokens` codes (unequal if
    `batch` > 1: the padded batch path with masks)."""
    jobs = [
        AudioJob(
            torch.randint(0, 1024, (tokens,), generator=gen),
            torch.randint(1, 300, (tokens // 2,), generator=gen),
            torch.randn(1, model.config.gin_channels, 1, generator=gen).cuda().half(),
        )
        for _ in range(batch)
    ]
    return {"jobs": jobs}


def kernel_table(prof: Any, path: Path, title: str, steps: int = 1) -> dict[str, float]:
    events = [e for e in prof.events() if e.device_type.name == "CUDA"]
    total = sum(e.device_time for e in events) / steps
    cats: dict[str, float] = {}
    for e in events:
        n = e.name.lower()
        if any(
            k in n
            for k in ("conv", "xmma", "implicit", "cudnn", "sm90", "gemm", "cutlass", "wgmma")
        ):
            c = "conv/gemm"
        elif "nchwtonhwc" in n or "nhwctonchw" in n or "transpose" in n or "copy" in n:
            c = "layout/copy"
        elif "flash" in n or "attention" in n or "fmha" in n or "_ragged" in n or "softmax" in n:
            c = "attention"
        elif "elementwise" in n or "vectorized" in n or "reduce" in n or "triton" in n:
            c = "elementwise/reduce"
        else:
            c = "other"
        cats[c] = cats.get(c, 0.0) + e.device_time / steps
    with path.open("a") as f:
        f.write(f"=== {title}: {len(events) / steps:.0f} kernels, {total / 1e3:.2f} ms GPU ===\n")
        f.write(json.dumps({k: round(v / 1e3, 3) for k, v in cats.items()}) + "\n")
        f.write(prof.key_averages().table(sort_by="cuda_time_total", row_limit=22))
        f.write("\n")
    return {
        "kernels": len(events) / steps,
        "gpu_ms": total / 1e3,
        **{k: v / 1e3 for k, v in cats.items()},
    }


def section_sovits(out: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    model = synth_model()
    torch.cuda.synchronize()
    R["sovits_build_s"] = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    dec = model.dec
    tokens = 250  # 10 s
    audio_s = tokens / 25
    # first call cost (cuDNN handles, lazy module load)
    jobs1 = sovits_inputs(model, 1, tokens, gen)["jobs"]
    t0 = time.perf_counter()
    decode_batch(model, jobs1)
    torch.cuda.synchronize()
    R["sovits_first_call_s"] = time.perf_counter() - t0
    W = freeze(dec)
    W4 = freeze4(dec)
    for batch in (1, 8, 32):
        jobs = sovits_inputs(model, batch, tokens, gen)["jobs"]
        # unequal lengths inside a batch, as a server sees them
        if batch > 1:
            for i, j in enumerate(jobs):
                n = tokens - (i * 97) % 125
                jobs[i] = AudioJob(j.codes[:n], j.phones[: n // 2], j.ge)
        torch.manual_seed(1)
        t_full = cuda_time(lambda: decode_batch(model, jobs), reps=3)
        items_audio = sum(j.codes.numel() for j in jobs) / 25
        R[f"sovits_eager_b{batch}_ms"] = t_full * 1e3
        R[f"sovits_eager_b{batch}_audio_s_per_s"] = items_audio / t_full
        # generator-only inputs from one detailed decode
        n_codes = torch.tensor([j.codes.numel() for j in jobs])
        width = -(-int(n_codes.max()) // 25) * 25
        codes = torch.zeros(len(jobs), width, dtype=torch.int64)
        nph = torch.tensor([j.phones.numel() for j in jobs])
        phones = torch.zeros(len(jobs), -(-int(nph.max()) // 8) * 8, dtype=torch.int64)
        for i, j in enumerate(jobs):
            codes[i, : j.codes.numel()] = j.codes
            phones[i, : j.phones.numel()] = j.phones
        ge = torch.cat([j.ge for j in jobs])
        padded = batch > 1
        res = model.decode_detailed(
            codes.cuda(), phones.cuda(), ge=ge, noise_scale=0.5,
            code_lengths=n_codes.cuda() if padded else None,
            text_lengths=nph.cuda() if padded else None,
        )  # fmt: skip
        inter = res.intermediates
        mask = inter.y_mask if padded else None
        z, ge_ = inter.dec_in, inter.ge
        ref = dec(z, ge_, mask)
        t_dec = cuda_time(lambda: dec(z, ge_, mask), reps=3)
        R[f"gen_eager_b{batch}_ms"] = t_dec * 1e3
        R[f"pre_gen_share_b{batch}"] = 1 - t_dec / t_full
        variants: dict[str, Callable[[], torch.Tensor]] = {
            "frozen": lambda: gen_frozen(dec, W, z, ge_, mask),
            "nhwc": lambda: gen_nhwc(dec, W4, z, ge_, mask),
        }
        for bench_flag in (False, True):
            torch.backends.cudnn.benchmark = bench_flag
            for name, fn in variants.items():
                key = f"gen_{name}{'_bm' if bench_flag else ''}_b{batch}"
                got = fn()
                R[f"{key}_rel"] = rel(got, ref)
                R[f"{key}_ms"] = cuda_time(fn, reps=3) * 1e3
            key = f"gen_eager{'_bm' if bench_flag else ''}_b{batch}_ms"
            R[key] = cuda_time(lambda: dec(z, ge_, mask), reps=3) * 1e3
        # whole-generator CUDA graph of the best guess (nhwc, benchmark on)
        torch.backends.cudnn.benchmark = True
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                gen_nhwc(dec, W4, z, ge_, mask)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            t0 = time.perf_counter()
            with torch.cuda.graph(graph):
                gout = gen_nhwc(dec, W4, z, ge_, mask)
            R[f"gen_nhwc_graph_capture_b{batch}_s"] = time.perf_counter() - t0
            graph.replay()
            R[f"gen_nhwc_graph_b{batch}_rel"] = rel(gout, ref)
            R[f"gen_nhwc_graph_b{batch}_ms"] = cuda_time(graph.replay, reps=5) * 1e3
            del graph, gout
        except Exception as exc:
            R[f"gen_nhwc_graph_b{batch}_error"] = repr(exc)
        R[f"gen_best_audio_s_per_s_b{batch}"] = items_audio / (
            min(R.get(f"gen_nhwc_graph_b{batch}_ms", 1e9), R[f"gen_nhwc_bm_b{batch}_ms"]) / 1e3
            + (t_full - t_dec)
        )
        torch.backends.cudnn.benchmark = False
        if batch in (1, 32):
            for name, fn in (("eager", lambda: dec(z, ge_, mask)),
                             ("nhwc_bm", lambda: gen_nhwc(dec, W4, z, ge_, mask))):  # fmt: skip
                torch.backends.cudnn.benchmark = name.endswith("bm")
                fn()
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    fn()
                    torch.cuda.synchronize()
                R[f"prof_gen_{name}_b{batch}"] = kernel_table(
                    prof, out / "sovits_prof.txt", f"generator {name} batch {batch}"
                )
            torch.backends.cudnn.benchmark = False
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                decode_batch(model, jobs)
                torch.cuda.synchronize()
            R[f"prof_decode_batch_b{batch}"] = kernel_table(
                prof, out / "sovits_prof.txt", f"decode_batch eager batch {batch}"
            )
        log(f"sovits batch {batch} done: eager {t_full * 1e3:.1f} ms, gen {t_dec * 1e3:.1f} ms")
        R[f"sovits_audio_b{batch}"] = items_audio
    R["sovits_audio_s_10s_item"] = audio_s


# ---------------------------------------------------------------- wide decode step


def t2s_network() -> Text2SemanticDecoder:
    s1 = json.loads((FIX / "manifest_s1_v2.json").read_text())["config"]
    torch.manual_seed(0)
    net = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(s1))
    return net.to("cuda", torch.float16).eval().requires_grad_(False)


def section_step(out: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    net = t2s_network()
    capacity = 1024
    net.ar_audio_position.ensure(capacity + 1)
    pool = SlotPool.allocate(net, 128, capacity, device=torch.device("cuda"), dtype=torch.float16)
    pool.kv.normal_()
    g = torch.Generator(device="cuda").manual_seed(0)
    base_slot = torch.randint(210, 560, (128,), generator=g, device="cuda")

    def reset() -> None:
        pool.slot.copy_(base_slot)
        pool.pos.copy_(base_slot - 60)
        pool.tokens.copy_(torch.arange(128, device="cuda") % 1000)
        pool.fresh.fill_(False)

    # attention micro-benchmark on one layer
    c = net.config
    for rows, span in ((128, 640), (128, 1024), (32, 640)):
        q = torch.randn(rows, c.n_head, c.head_dim, device="cuda", dtype=torch.float16)
        keys, values = pool.kv[0, 0, :rows, :, :span], pool.kv[0, 1, :rows, :, :span]
        lengths = (base_slot[:rows] + 1).clamp(max=span)
        ref = ragged_attention_reference(q.float(), keys.float(), values.float(), lengths)
        got = ragged_attention(q, keys, values, lengths)
        R[f"attn_ragged_rel_r{rows}_s{span}"] = rel(got, ref)
        bias = torch.zeros(rows, 1, 1, span, dtype=torch.float16, device="cuda")
        bias.masked_fill_(
            ~(torch.arange(span, device="cuda")[None] < lengths[:, None])[:, None, None],
            float("-inf"),
        )
        fns = {
            "sdpa_bias": lambda: F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=bias),
            "sdpa_nomask": lambda: F.scaled_dot_product_attention(q[:, :, None], keys, values),
            "ragged": lambda: ragged_attention(q, keys, values, lengths),
            "ragged_b128": lambda: ragged_attention(q, keys, values, lengths, block=128),
            "ragged_b32": lambda: ragged_attention(q, keys, values, lengths, block=32),
        }  # fmt: skip
        for name, fn in fns.items():
            R[f"attn_{name}_r{rows}_s{span}_us"] = cuda_time(fn, reps=20, warm=3) * 1e6
        kv_bytes = int(lengths.sum()) * c.n_head * c.head_dim * 2 * 2
        R[f"attn_bytes_r{rows}_s{span}"] = kv_bytes
    # whole step: graphs of both variants
    results: dict[str, float] = {}
    from voiceseal_models.gpt_sovits.serving.batch_decode import fused_step

    variants = [("sdpa", decode_and_sample), ("wide", decode_and_sample_wide)]
    try:
        variants.append(("fused", fused_step(net)))
    except Exception as exc:
        R["fused_error"] = repr(exc)
    for name, fn in variants:
        reset()
        graphs = StepGraphs(net, pool, fn)
        for rows, span in ((128, 640), (128, 1024), (64, 640), (32, 640), (8, 640), (1, 640)):
            reset()
            t0 = time.perf_counter()
            graphs.capture(rows, span)
            torch.cuda.synchronize()
            R[f"capture_{name}_r{rows}_s{span}_s"] = time.perf_counter() - t0
            reset()
            t = cuda_time(lambda: graphs.replay(rows, span), reps=30, warm=3)
            results[f"{name}_r{rows}_s{span}"] = t * 1e3
            R[f"step_{name}_r{rows}_s{span}_ms"] = t * 1e3
            if rows == 128 and span == 640:
                # the tail of a run: a quarter of the rows busy, the rest freed (slot 0)
                reset()
                pool.slot[32:].zero_()
                t = cuda_time(lambda: graphs.replay(rows, span), reps=30, warm=3)
                R[f"step_{name}_r128_s640_quarter_busy_freed_ms"] = t * 1e3
        graphs = None  # type: ignore[assignment]
    # token agreement of one eager step from the same state, fixed noise
    noise = torch.empty(128, c.vocab_size, device="cuda").exponential_(generator=g)
    outs = []
    for _, fn in variants:
        reset()
        kv0 = pool.kv.clone()
        outs.append(fn(net, pool, 128, 640, noise).clone())
        pool.kv.copy_(kv0)
        del kv0
    R["wide_vs_sdpa_token_agree"] = float((outs[0][:, 0] == outs[1][:, 0]).float().mean())
    if len(outs) > 2:
        R["fused_vs_sdpa_token_agree"] = float((outs[0][:, 0] == outs[2][:, 0]).float().mean())
    # kernel shares of one eager step at 128 rows
    for name, fn in variants:
        reset()
        fn(net, pool, 128, 640, None)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                fn(net, pool, 128, 640, None)
            torch.cuda.synchronize()
        R[f"prof_step_{name}_r128"] = kernel_table(
            prof, out / "step_prof.txt", f"step {name} 128x640", 3
        )
    log("step done")


def section_compile(out: Path) -> None:
    model = synth_model()
    dec = model.dec
    W4 = freeze4(dec)
    torch.backends.cudnn.benchmark = True
    gen = torch.Generator().manual_seed(5)
    for batch in (8,):
        z = torch.randn(batch, 192, 500, generator=gen).cuda().half()
        ge = torch.randn(batch, 1024, 1, generator=gen).cuda().half()
        mask = torch.ones(batch, 1, 500, device="cuda", dtype=torch.float16)
        mask[1:, :, 400:] = 0
        ref = gen_nhwc(dec, W4, z, ge, mask)
        compiled = torch.compile(lambda a, b, m: gen_nhwc(dec, W4, a, b, m), dynamic=False)
        t0 = time.perf_counter()
        got = compiled(z, ge, mask)
        torch.cuda.synchronize()
        R[f"compile_nhwc_b{batch}_compile_s"] = time.perf_counter() - t0
        R[f"compile_nhwc_b{batch}_rel"] = rel(got, ref)
        R[f"compile_nhwc_b{batch}_ms"] = cuda_time(lambda: compiled(z, ge, mask), reps=5) * 1e3
        R[f"nhwc_b{batch}_ms_same_inputs"] = (
            cuda_time(lambda: gen_nhwc(dec, W4, z, ge, mask), reps=5) * 1e3
        )
    log("compile done")


def section_fastgen(out: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator

    model = synth_model()
    dec = model.dec
    gen = torch.Generator().manual_seed(3)
    fast = {cl: FastGenerator(dec, channels_last=cl) for cl in (False, True)}
    t0 = time.perf_counter()
    fast[True](torch.randn(2, 192, 3, device="cuda", dtype=torch.float16),
               torch.randn(2, 1024, 1, device="cuda", dtype=torch.float16))  # fmt: skip
    torch.cuda.synchronize()
    R["fastgen_first_call_s"] = time.perf_counter() - t0
    for batch in (1, 32, 128):
        frames = 500
        z = torch.randn(batch, 192, frames, generator=gen).cuda().half()
        ge = torch.randn(batch, 1024, 1, generator=gen).cuda().half()
        mask = None
        if batch > 1:
            lengths = torch.randint(frames // 2, frames + 1, (batch,), generator=gen)
            lengths[0] = frames
            mask = (torch.arange(frames)[None] < lengths[:, None]).half()[:, None].cuda()
        audio_s = (frames / 50) * batch if mask is None else float(mask.sum()) / 50
        ref = dec(z, ge, mask)
        R[f"fg_eager_b{batch}_ms"] = cuda_time(lambda: dec(z, ge, mask), reps=3) * 1e3
        for cl, f in fast.items():
            key = f"fg_{'cl' if cl else 'ncw'}_b{batch}"
            got = f(z, ge, mask)
            R[f"{key}_rel"] = rel(got, ref)
            R[f"{key}_maxabs"] = float((got.float() - ref.float()).abs().max())
            R[f"{key}_ms"] = cuda_time(lambda: f(z, ge, mask), reps=3) * 1e3
            R[f"{key}_audio_s_per_s"] = audio_s / (R[f"{key}_ms"] / 1e3)
        R[f"fg_eager_b{batch}_audio_s_per_s"] = audio_s / (R[f"fg_eager_b{batch}_ms"] / 1e3)
        if batch == 32:
            f = fast[True]
            f(z, ge, mask)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                f(z, ge, mask)
                torch.cuda.synchronize()
            R["prof_fastgen_cl_b32"] = kernel_table(prof, out / "sovits_prof.txt", "fastgen cl b32")
        del ref
        torch.cuda.empty_cache()
        log(f"fastgen batch {batch} done")
    log("fastgen done")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("lab_out"))
    p.add_argument("--sections", default="sovits,step,compile")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    t_all = time.perf_counter()
    with torch.inference_mode():
        for name in a.sections.split(","):
            t0 = time.perf_counter()
            try:
                {
                    "sovits": section_sovits,
                    "step": section_step,
                    "compile": section_compile,
                    "fastgen": section_fastgen,
                }[name](a.out)
            except Exception:
                import traceback

                R[f"{name}_error"] = traceback.format_exc()
                log(R[f"{name}_error"])
            R[f"section_{name}_s"] = time.perf_counter() - t0
            (a.out / "lab.json").write_text(json.dumps(R, indent=1, default=str))
            torch.cuda.empty_cache()
    R["total_s"] = time.perf_counter() - t_all
    (a.out / "lab.json").write_text(json.dumps(R, indent=1, default=str))
    for k, v in R.items():
        if not k.startswith("prof_") and not k.endswith("_error"):
            print(f"{k:48} {v:.4g}" if isinstance(v, float) else f"{k:48} {v}")
    for k, v in R.items():
        if k.startswith("prof_"):
            print(k, {kk: round(vv, 3) for kk, vv in v.items()})


if __name__ == "__main__":
    main()
