"""Triton kernels for the continuous-batch decode step: about 5 launches per layer instead of ~15.

The eager step (`batch_decode.step_logits`) launches, per post-norm layer, a QKV matmul, an
indexed cache write, attention with an additive mask, the output projection, a residual add,
LayerNorm, two FFN matmuls with ReLU, another add and another LayerNorm. At batch 1 every one of
those kernels moves a few kilobytes and the step is bound by launch latency, not by the 0.06 ms
it takes to read the weights. Here one layer is:

    K1 `_linear`  (IN_LN, OUT_QKV)   qkv = W_qkv . LN_prev(s) + b; q to a buffer, k and v
                                     straight into each row's cache slot
    K2 `_attend`                     one query per (row, head, span chunk): partial softmax sums
    K3 `_linear`  (X_MODE=1, RES=2)  s1 = LN_prev(s) + W_o . combine(partials) + b_o
    K4 `_linear`  (IN_LN, RELU)      h = relu(W_1 . LN1(s1) + b_1)
    K5 `_linear`  (RES=2)            s = LN1(s1) + W_2 . h + b_2

The residual stream is kept *before* its LayerNorm (float32, one row of D per decode row); each
consumer recomputes the row's mean and variance (D values, cheap) and applies the norm while
loading, so no kernel writes a normalised copy. The next layer's K1 applies this layer's norm2,
and the final norm is applied while loading the input of the logits projection.

Matmuls: few rows read every weight once per step, so the output dimension is split over many
programs (GEMV-style, a broadcast multiply-add in registers); more rows use `tl.dot` tiles.
Attention splits each row's span into chunks so that even one row keeps many SMs busy; K3
merges the chunks' (max, sum, weighted values) while loading its input.

`_sample` replaces the ~100 small kernels of `sampler.sample_rows` and the position updates
with one program per row (top-k / top-p cut-offs by bisection instead of a vocabulary sort).
On Hopper the kernels use programmatic dependent launch: each starts while its predecessor
finishes and loads its weights before `gdc_wait` (H100, batch 1, span 512: 422 instead of 482
us per step). Measured there (bench/gpu.py --only fused): 124 kernels and 0.47 ms of GPU time
per batch-1 step against 377 and 1.06 ms for the graphed eager step; from 4 rows up cuBLAS is
faster for the network, so `batch_decode.fused_step` keeps these kernels for narrow buckets
(`TUNING.network_rows`) and the fused sampler for all.

Everything is launched with fixed shapes and reads positions/slots from device memory, so the
step can be captured in a CUDA graph like the eager one. Without a GPU the kernels run under
Triton's interpreter (`TRITON_INTERPRET=1`, tests/gpt_sovits/test_triton_step.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from voiceseal_models.gpt_sovits.serving import sampler
from voiceseal_models.gpt_sovits.serving.batch_decode import SlotPool
from voiceseal_models.gpt_sovits.serving.kernel_launch import compile_only, launch
from voiceseal_models.gpt_sovits.t2s_network import LAYER_NORM_EPS, Text2SemanticDecoder

# ----------------------------------------------------------------------------------- kernels

# The counter-noise hash of `sampler`, as compile-time constants of the kernels.
HASH_MUL: tl.constexpr = tl.constexpr(sampler._HASH_MUL)
SEED_MUL: tl.constexpr = tl.constexpr(sampler._SEED_MUL)
ID_MUL: tl.constexpr = tl.constexpr(sampler._ID_MUL)


@triton.jit
def _row_stats(ptr, stride, rows, n_rows, eps, D: tl.constexpr, BM: tl.constexpr):  # type: ignore[no-untyped-def]
    """Mean and 1/std of rows `rows` of a (n_rows, D) matrix. Small row blocks load the rows
    once and reduce twice in registers; larger ones make two passes over D in chunks (the
    second re-reads from cache) so that they fit in registers."""
    mask = (rows < n_rows)[:, None]
    if BM * D <= 8192:
        cols = tl.arange(0, D)
        x = tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0)
        x = x.to(tl.float32)
        mean = tl.sum(x, 1) / D
        diff = tl.where(mask, x - mean[:, None], 0.0)
        sq = tl.sum(diff * diff, 1)
    else:
        CH: tl.constexpr = 128 if D > 128 else D
        total = tl.sum(tl.zeros((BM, CH), tl.float32), 1)
        for c0 in range(0, D, CH):
            cols = c0 + tl.arange(0, CH)
            x = tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0)
            total += tl.sum(x.to(tl.float32), 1)
        mean = total / D
        sq = tl.sum(tl.zeros((BM, CH), tl.float32), 1)
        for c0 in range(0, D, CH):
            cols = c0 + tl.arange(0, CH)
            x = tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0)
            diff = tl.where(mask, x.to(tl.float32) - mean[:, None], 0.0)
            sq += tl.sum(diff * diff, 1)
    return mean, 1.0 / tl.sqrt(sq / D + eps)


@triton.jit
def _linear(  # type: ignore[no-untyped-def]
    x_ptr, stride_x,  # input (R, K), or attention partials (R, H, SPLITS, HD) when X_MODE == 1
    pm_ptr, pl_ptr,  # partial maxima / sums (R, H, SPLITS) for X_MODE == 1
    xg_ptr, xb_ptr,  # LayerNorm applied to the input (IN_LN)
    w_ptr, b_ptr,  # weight (N, K) row-major, bias (N,)
    z_ptr, stride_z, zg_ptr, zb_ptr,  # residual (R, N) and its LayerNorm (RES == 2)
    out_ptr, stride_out,  # output (R, N); with OUT_QKV only the first D columns (q)
    kv_ptr, slot_ptr, kv_part, kv_row, kv_head,  # cache of this layer (OUT_QKV)
    R, eps,
    N: tl.constexpr, K: tl.constexpr, D: tl.constexpr, HD: tl.constexpr, SPLITS: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    USE_DOT: tl.constexpr, PREC: tl.constexpr, X_MODE: tl.constexpr, IN_LN: tl.constexpr,
    RES: tl.constexpr, HAS_BIAS: tl.constexpr, RELU: tl.constexpr, OUT_QKV: tl.constexpr,
    PDL: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    rmask = rows < R
    cmask = cols < N
    both = rmask[:, None] & cmask[None, :]
    # Every load that does not depend on another is issued up front (one pass over K: the
    # weight tile too), so the program waits for memory about once, not once per stage.
    # Weights and parameters never change: with PDL they load while the previous kernel still
    # runs; everything it writes is read (and everything is written) after gdc_wait.
    if K == BK:
        w_all = tl.load(
            w_ptr + cols[:, None] * K + tl.arange(0, BK)[None, :], mask=cmask[:, None], other=0.0
        )
    if HAS_BIAS:
        bias = tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    if RES == 2:
        zg = tl.load(zg_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        zb = tl.load(zb_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    if PDL:
        gdc_wait()
    if RES != 0:
        z = tl.load(z_ptr + rows[:, None] * stride_z + cols[None, :], mask=both, other=0.0)
        z = z.to(tl.float32)
    if RES == 2:
        z_mean, z_rstd = _row_stats(z_ptr, stride_z, rows, R, eps, D, BM)
    if IN_LN:
        x_mean, x_rstd = _row_stats(x_ptr, stride_x, rows, R, eps, D, BM)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        if X_MODE == 0:
            x = tl.load(
                x_ptr + rows[:, None] * stride_x + ks[None, :], mask=rmask[:, None], other=0.0
            ).to(tl.float32)
            if IN_LN:
                g = tl.load(xg_ptr + ks).to(tl.float32)
                b = tl.load(xb_ptr + ks).to(tl.float32)
                x = (x - x_mean[:, None]) * x_rstd[:, None] * g[None, :] + b[None, :]
        else:
            # Merge the span chunks of every head: x = sum_s acc_s e^(m_s - M) / sum_s l_s e^(..)
            heads = ks // HD
            dims = ks % HD
            split = tl.arange(0, SPLITS)
            stat = (rows[:, None, None] * (K // HD) + heads[None, None, :]) * SPLITS + split[
                None, :, None
            ]
            valid = rmask[:, None, None]
            m = tl.load(pm_ptr + stat, mask=valid, other=0.0)
            l_part = tl.load(pl_ptr + stat, mask=valid, other=1.0)
            top = tl.max(m, 1)
            scale = tl.exp(m - top[:, None, :])
            part = tl.load(x_ptr + stat * HD + dims[None, None, :], mask=valid, other=0.0)
            x = tl.sum(part * scale, 1) / tl.sum(l_part * scale, 1)
        if K == BK:
            w = w_all
        else:
            w = tl.load(w_ptr + cols[:, None] * K + ks[None, :], mask=cmask[:, None], other=0.0)
        if USE_DOT:
            acc += tl.dot(x.to(w.dtype), tl.trans(w), input_precision=PREC)
        else:
            acc += tl.sum(x[:, None, :] * w.to(tl.float32)[None, :, :], 2)
    if PDL:
        # Let the next kernel start (and fetch its weights) while this one finishes. Not at
        # the top: kernels launched that early would pile up, each one's programs waiting on
        # the SMs, and slowed long-span steps down in a measurement.
        gdc_launch_dependents()
    if HAS_BIAS:
        acc += bias[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    if RES == 1:
        acc += z
    if RES == 2:
        acc += (z - z_mean[:, None]) * z_rstd[:, None] * zg[None, :] + zb[None, :]
    if OUT_QKV:
        # Columns [q | k | v], each D wide, heads of HD inside; k and v go to the row's slot.
        part = cols // D
        head = (cols % D) // HD
        dim = cols % HD
        is_q = part == 0
        tl.store(
            out_ptr + rows[:, None] * stride_out + cols[None, :],
            acc.to(out_ptr.dtype.element_ty),
            mask=both & is_q[None, :],
        )
        slot = tl.load(slot_ptr + rows, mask=rmask, other=0)
        dest = (
            tl.where(is_q, 0, part - 1)[None, :] * kv_part
            + rows[:, None] * kv_row
            + (head * kv_head + dim)[None, :]
            + slot[:, None] * HD
        )
        tl.store(kv_ptr + dest, acc.to(kv_ptr.dtype.element_ty), mask=both & (~is_q)[None, :])
    else:
        tl.store(
            out_ptr + rows[:, None] * stride_out + cols[None, :],
            acc.to(out_ptr.dtype.element_ty),
            mask=both,
        )


@triton.jit
def _attend(  # type: ignore[no-untyped-def]
    q_ptr, stride_q, kv_ptr, slot_ptr, kv_part, kv_row, kv_head,
    acc_ptr, pm_ptr, pl_ptr, scale, span,
    H: tl.constexpr, HD: tl.constexpr, SPLITS: tl.constexpr, CHUNK: tl.constexpr,
    BLOCK_S: tl.constexpr, PREFETCH: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """Program (row, head, split): keys/values of slots [split*CHUNK, (split+1)*CHUNK) that are
    <= the row's slot; writes the un-normalised weighted values, the max score and the sum of
    exp(score - max). An empty chunk writes (0, -inf, 0), which the merge weighs by 0.
    With PREFETCH the keys and values of the whole chunk are loaded without waiting for the
    row's slot (more bytes, one memory round trip less: for few rows)."""
    if PDL:
        gdc_wait()
    row = tl.program_id(0)
    head = tl.program_id(1)
    split = tl.program_id(2)
    last = tl.load(slot_ptr + row)
    dims = tl.arange(0, HD)
    q = tl.load(q_ptr + row * stride_q + head * HD + dims).to(tl.float32) * scale
    keys = kv_ptr + row * kv_row + head * kv_head
    m_run = tl.max(tl.full((BLOCK_S,), float("-inf"), tl.float32), 0)
    l_run = tl.sum(tl.zeros((BLOCK_S,), tl.float32), 0)
    acc = tl.zeros((HD,), tl.float32)
    for off in range(0, CHUNK, BLOCK_S):
        inside = off + tl.arange(0, BLOCK_S)
        pos = split * CHUNK + inside
        present = (inside < CHUNK) & (pos < span)
        valid = present & (pos <= last)
        fetch = present if PREFETCH else valid
        k = tl.load(keys + pos[:, None] * HD + dims[None, :], mask=fetch[:, None], other=0.0)
        scores = tl.sum(k.to(tl.float32) * q[None, :], 1)
        scores = tl.where(valid, scores, float("-inf"))
        m_new = tl.maximum(m_run, tl.max(scores, 0))
        # All-masked so far: keep exp() away from (-inf) - (-inf).
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(scores - m_safe)
        alpha = tl.exp(m_run - m_safe)
        v = tl.load(
            keys + kv_part + pos[:, None] * HD + dims[None, :], mask=fetch[:, None], other=0.0
        )
        v = tl.where(valid[:, None], v, 0.0)  # slots past the row's end may hold anything
        acc = acc * alpha + tl.sum(p[:, None] * v.to(tl.float32), 0)
        l_run = l_run * alpha + tl.sum(p, 0)
        m_run = m_new
    if PDL:
        gdc_launch_dependents()
    stat = (row * H + head) * SPLITS + split
    tl.store(acc_ptr + stat * HD + dims, acc)
    tl.store(pm_ptr + stat, m_run)
    tl.store(pl_ptr + stat, l_run)


@triton.jit
def _embed(  # type: ignore[no-untyped-def]
    tok_ptr, pos_ptr, emb_ptr, pe_ptr, alpha_ptr, out_ptr, D: tl.constexpr, PDL: tl.constexpr
):
    """s[row] = emb[token] + alpha * pe[pos], in float32. The step's first kernel: launched
    without PDL (it follows whatever ran before the step) but lets the next one start early."""
    if PDL:
        gdc_launch_dependents()
    row = tl.program_id(0)
    cols = tl.arange(0, D)
    token = tl.load(tok_ptr + row)
    pos = tl.load(pos_ptr + row)
    alpha = tl.load(alpha_ptr).to(tl.float32)
    e = tl.load(emb_ptr + token * D + cols).to(tl.float32)
    p = tl.load(pe_ptr + pos * D + cols).to(tl.float32)
    tl.store(out_ptr + row * D + cols, e + alpha * p)


@triton.jit
def _hash32(x):  # type: ignore[no-untyped-def]
    """`sampler._hash32` in uint32 arithmetic: its int64 products masked to 32 bits are the
    wrapped uint32 products, so the result is the same integer."""
    x = (x ^ (x >> 16)) * HASH_MUL
    x = (x ^ (x >> 16)) * HASH_MUL
    return x ^ (x >> 16)


@triton.jit
def _order_key(x):  # type: ignore[no-untyped-def]
    """int64 keys in the order of the float32 values (IEEE bits, negatives mirrored)."""
    bits = x.to(tl.int32, bitcast=True)
    return tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).to(tl.int64)


@triton.jit
def _sample(  # type: ignore[no-untyped-def]
    logits_ptr, fresh_logits_ptr, fresh_ptr, seen_ptr, penalty_ptr, ignore_eos_ptr, step_ptr,
    top_p_ptr, temperature_ptr, top_k_ptr, seed_ptr, noise_ptr,
    tokens_ptr, pos_ptr, slot_ptr, out_ptr, max_pos, max_slot,
    V: tl.constexpr, BLOCK_V: tl.constexpr, HAS_NOISE: tl.constexpr,
    MIN_STEPS: tl.constexpr, MIN_TEMPERATURE: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """`batch_decode.sample_and_advance` for one row per program (see `sampler.sample_rows`
    for the order of the filters). Top-p keeps the sorted prefix whose cumulative probability
    stays <= top_p (plus the best id): every score whose "mass at or above it" is <= top_p,
    found by bisection over the scores' keys (33 masked sums instead of a sort of the
    vocabulary; ids tied at the cut are all kept, where the eager sort keeps an arbitrary
    subset). Top-k likewise bisects for the k-th largest score."""
    if PDL:
        gdc_wait()
    row = tl.program_id(0)
    ids = tl.arange(0, BLOCK_V)
    inside = ids < V
    fresh = tl.load(fresh_ptr + row) != 0
    raw = tl.load(logits_ptr + row * V + ids, mask=inside, other=0.0)
    prompt = tl.load(fresh_logits_ptr + row * V + ids, mask=inside, other=0.0)
    scores = tl.where(fresh, prompt, raw)
    penalty = tl.load(penalty_ptr + row)
    seen = tl.load(seen_ptr + row * V + ids, mask=inside, other=0) != 0
    scores = tl.where(seen, tl.where(scores < 0, scores * penalty, scores / penalty), scores)
    step = tl.load(step_ptr + row)
    no_eos = (tl.load(ignore_eos_ptr + row) != 0) | (step < MIN_STEPS)
    eos = V - 1
    scores = tl.where(((ids == eos) & no_eos) | ~inside, float("-inf"), scores)
    argmax_eos = tl.argmax(scores, 0) == eos

    # Order-preserving integer keys of the float scores (+0.0 folds -0.0 into +0.0): the
    # filters below find their cut-off keys by bisection instead of sorting the vocabulary.
    key = _order_key(scores + 0.0)
    top_p = tl.load(top_p_ptr + row)
    cut = tl.min(key, 0).to(tl.int64)
    if top_p < 1.0:  # top_p >= 1 disables the filter (the cumulative sum may round above 1)
        weights = tl.exp(scores - tl.max(scores, 0))
        probs = weights / tl.sum(weights, 0)
        # Smallest key t whose mass above (sum of probs with key >= t) is <= top_p: the sorted
        # prefix with cumulative probability <= top_p, plus the best id.
        lo = cut
        hi = tl.max(key, 0).to(tl.int64) + 1
        for _ in range(33):
            mid = lo + (hi - lo) // 2
            light = tl.sum(tl.where(key >= mid, probs, 0.0), 0) <= top_p
            hi = tl.where(light, mid, hi)
            lo = tl.where(light, lo, mid)
        cut = tl.minimum(hi, tl.max(key, 0).to(tl.int64))
    temperature = tl.maximum(tl.load(temperature_ptr + row), MIN_TEMPERATURE)
    scores = tl.where(key < cut, float("-inf"), scores) / temperature + 0.0
    # Top-k: the k-th largest key (largest t with at least k keys >= t).
    key = _order_key(scores)
    usable = V - no_eos.to(tl.int64)
    k = tl.maximum(tl.minimum(tl.load(top_k_ptr + row), usable), 1)
    lo = tl.min(key, 0).to(tl.int64)
    hi = tl.max(key, 0).to(tl.int64) + 1
    for _ in range(33):
        mid = lo + (hi - lo) // 2
        enough = tl.sum((key >= mid).to(tl.int64), 0) >= k
        lo = tl.where(enough, mid, lo)
        hi = tl.where(enough, hi, mid)
    scores = tl.where(key < lo, float("-inf"), scores)
    weights = tl.exp(scores - tl.max(scores, 0))
    probs = weights / tl.sum(weights, 0)

    if HAS_NOISE:
        noise = tl.load(noise_ptr + row * V + ids, mask=inside, other=1.0)
    else:
        seed = tl.load(seed_ptr + row)
        key = _hash32(seed.to(tl.uint32) * SEED_MUL + step.to(tl.uint32))
        bits = _hash32(key ^ (ids.to(tl.uint32) * ID_MUL))
        uniform = ((bits >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
        noise = -tl.log(uniform)
    token = tl.argmax(probs / noise, 0).to(tl.int64)
    # NaN logits (a broken model) can make argmax land on the padding past the vocabulary:
    # end the row with EOS rather than index the embedding out of range, which would kill the
    # CUDA context and every other request with it.
    token = tl.where(token < V, token, eos)
    hit_eos = (argmax_eos | (token == eos)) & ~no_eos

    tl.store(seen_ptr + row * V + token, 1)
    tl.store(step_ptr + row, step + 1)
    advance = tl.where(fresh, 0, 1).to(tl.int64)
    tl.store(pos_ptr + row, tl.minimum(tl.load(pos_ptr + row) + advance, max_pos))
    tl.store(slot_ptr + row, tl.minimum(tl.load(slot_ptr + row) + advance, max_slot))
    tl.store(fresh_ptr + row, 0)
    tl.store(tokens_ptr + row, token)
    tl.store(out_ptr + row * 2, token)
    tl.store(out_ptr + row * 2 + 1, hit_eos.to(tl.int64))


# ----------------------------------------------------------------------------------- host side


@dataclass(frozen=True)
class Tiles:
    """Block sizes of one `_linear` launch."""

    bm: int
    bn: int
    bk: int
    use_dot: bool
    warps: int


@dataclass
class Tuning:
    """Launch parameters measured on an H100 (bench/decode_lab.py sweeps them).

    Attributes:
        gemv_rows: row counts up to this use the register (GEMV) form; more use tl.dot tiles.
        gemv_budget: products (bm x bn x bk) one GEMV program holds in registers.
        gemv_warps / attention_warps: warps per program.
        prefetch_rows: attention loads whole chunks without waiting for the slot up to here.
        network_rows: `batch_decode.fused_step` runs these kernels up to this many rows and
            the eager (cuBLAS) network above, with the fused sampler either way.
        pdl: programmatic dependent launch between the step's kernels (Hopper and later): a
            kernel starts, and loads its weights, while the previous one finishes.
    """

    gemv_rows: int = 4
    gemv_budget: int = 8192
    gemv_warps: int = 4
    attention_warps: int = 4
    prefetch_rows: int = 2
    network_rows: int = 2
    pdl: bool = True


TUNING = Tuning()


def linear_tiles(rows: int, n: int, k: int) -> Tiles:
    """Block sizes for `rows` x (n <- k): enough programs along n to cover every SM."""
    if rows <= TUNING.gemv_rows:
        bm = triton.next_power_of_2(rows)
        # Per program bm*bn*bk products in registers (the budget), with the whole of K in one
        # pass where it fits.
        budget = TUNING.gemv_budget
        bk = min(k, budget // bm)
        bn = max(1, budget // (bm * bk))
        # At least ~128 programs: a narrower n block.
        while bn > 1 and n // bn < 128:
            bn //= 2
        return Tiles(bm, bn, bk, use_dot=False, warps=TUNING.gemv_warps)
    bm = 16 if rows <= 16 else 32 if rows <= 64 else 64
    bn = 32 if n * ((rows + bm - 1) // bm) >= 32 * 128 else 16
    return Tiles(bm, bn, min(k, 64), use_dot=True, warps=4)


ATTENTION_BLOCK = 64


def attention_plan(rows: int, n_head: int, span: int) -> tuple[int, int]:
    """(splits, chunk): each (row, head) reads its span in `splits` chunks of `chunk` slots
    (a multiple of the 64-slot block), enough of them for ~1024 programs."""
    blocks = triton.next_power_of_2(triton.cdiv(span, ATTENTION_BLOCK))
    splits = 1
    while rows * n_head * splits < 1024 and splits < blocks:
        splits *= 2
    chunk = triton.cdiv(triton.cdiv(span, splits), ATTENTION_BLOCK) * ATTENTION_BLOCK
    return splits, chunk


class FusedStep:
    """Per-network launch plan for `step_logits` (weights are read from the live modules)."""

    def __init__(self, network: Text2SemanticDecoder) -> None:
        c = network.config
        d = c.hidden_dim
        if d & (d - 1) or c.head_dim & (c.head_dim - 1) or c.head_dim < 16:
            raise ValueError(
                f"fused step needs power-of-two hidden ({d}) and head ({c.head_dim} >= 16) sizes"
            )
        self.network = network
        self.eps = LAYER_NORM_EPS
        device = network.ar_predict_layer.weight.device
        self.pdl = (
            TUNING.pdl
            and device.type == "cuda"
            and torch.cuda.get_device_capability(device) >= (9, 0)
        )
        self.launch = {"launch_pdl": True} if self.pdl else {}
        for name, p in network.named_parameters():
            if not p.is_contiguous():
                raise ValueError(f"fused step needs contiguous weights; {name} is not")

    def _linear(
        self, x: Tensor, weight: Tensor, out: Tensor, *, bias: Tensor | None = None,
        norm: torch.nn.LayerNorm | None = None, residual: Tensor | None = None,
        residual_norm: torch.nn.LayerNorm | None = None, relu: bool = False,
        partials: tuple[Tensor, Tensor, int] | None = None,
        qkv: tuple[Tensor, Tensor] | None = None,
    ) -> None:  # fmt: skip
        rows = out.shape[0]
        n, k = weight.shape
        t = linear_tiles(rows, n, k)
        c = self.network.config
        if partials is not None:
            # Merging chunks holds (bm, splits, bk) values per tensor: a narrower k block.
            t = replace(t, bk=min(t.bk, max(c.head_dim, 2048 // (t.bm * partials[2]))))
        dummy = weight
        kv, slot = qkv if qkv is not None else (dummy, dummy)
        pm, pl, splits = partials if partials is not None else (dummy, dummy, 1)
        grid = (triton.cdiv(rows, t.bm), triton.cdiv(n, t.bn))
        launch(_linear, grid,
            x, x.stride(0) if partials is None else 0,
            pm, pl,
            norm.weight if norm is not None else dummy, norm.bias if norm is not None else dummy,
            weight, bias if bias is not None else dummy,
            residual if residual is not None else dummy,
            residual.stride(0) if residual is not None else 0,
            residual_norm.weight if residual_norm is not None else dummy,
            residual_norm.bias if residual_norm is not None else dummy,
            out, out.stride(0),
            kv, slot,
            kv.stride(0) if qkv is not None else 0,
            kv.stride(1) if qkv is not None else 0,
            kv.stride(2) if qkv is not None else 0,
            rows, self.eps,
            N=n, K=k, D=c.hidden_dim, HD=c.head_dim, SPLITS=splits,
            BM=t.bm, BN=t.bn, BK=t.bk, USE_DOT=t.use_dot,
            PREC="ieee" if weight.dtype == torch.float32 else "tf32",
            X_MODE=0 if partials is None else 1, IN_LN=norm is not None,
            RES=0 if residual is None else 1 if residual_norm is None else 2, HAS_BIAS=bias is not None, RELU=relu,
            OUT_QKV=qkv is not None,
            PDL=self.pdl, num_warps=t.warps, **self.launch,
        )  # fmt: skip

    def logits(self, pool: SlotPool, rows: int, span: int) -> Tensor:
        """Run the network for rows 0..rows-1 (their keys/values into the pool); (rows, V) fp32."""
        net, c = self.network, self.network.config
        d, heads, hd = c.hidden_dim, c.n_head, c.head_dim
        dev, dtype = pool.device, pool.kv.dtype
        if net.ar_predict_layer.weight.dtype != dtype:
            raise ValueError(f"network dtype {net.ar_predict_layer.weight.dtype} != pool {dtype}")
        f32 = torch.float32
        stream = torch.empty(rows, d, device=dev, dtype=f32)  # pre-norm residual stream
        mid = torch.empty(rows, d, device=dev, dtype=f32)  # after attention, before norm1
        q = torch.empty(rows, d, device=dev, dtype=dtype)
        hidden = torch.empty(rows, c.ffn_dim, device=dev, dtype=dtype)
        splits, chunk = attention_plan(rows, heads, span)
        part = torch.empty(rows, heads, splits, hd, device=dev, dtype=f32)
        pm = torch.empty(rows, heads, splits, device=dev, dtype=f32)
        pl = torch.empty(rows, heads, splits, device=dev, dtype=f32)
        slot = pool.slot[:rows]
        position = net.ar_audio_position
        launch(_embed, (rows,),
            pool.tokens, pool.pos, net.ar_audio_embedding.word_embeddings.weight, position.pe,
            position.alpha, stream, D=d, PDL=self.pdl, num_warps=4,
        )  # fmt: skip
        previous: torch.nn.LayerNorm | None = None
        for i, layer in enumerate(net.h.blocks):
            attention = layer.self_attn
            kv = pool.kv[i]  # (2, R, H, C, HD): strides (part, row, head, slot=HD, 1)
            self._linear(
                stream, attention.in_proj_weight, q, bias=attention.in_proj_bias,
                norm=previous, qkv=(kv, slot),
            )  # fmt: skip
            launch(_attend, (rows, heads, splits),
                q, q.stride(0), kv, slot, kv.stride(0), kv.stride(1), kv.stride(2),
                part, pm, pl, 1.0 / math.sqrt(hd), span,
                H=heads, HD=hd, SPLITS=splits, CHUNK=chunk, BLOCK_S=ATTENTION_BLOCK,
                PREFETCH=rows <= TUNING.prefetch_rows, PDL=self.pdl,
                num_warps=TUNING.attention_warps, **self.launch,
            )  # fmt: skip
            self._linear(
                part, attention.out_proj.weight, mid, bias=attention.out_proj.bias,
                residual=stream, residual_norm=previous, partials=(pm, pl, splits),
            )  # fmt: skip
            self._linear(mid, layer.linear1.weight, hidden, bias=layer.linear1.bias,
                         norm=layer.norm1, relu=True)  # fmt: skip
            self._linear(
                hidden, layer.linear2.weight, stream, bias=layer.linear2.bias,
                residual=mid, residual_norm=layer.norm1,
            )  # fmt: skip
            previous = layer.norm2
        logits = torch.empty(rows, c.vocab_size, device=dev, dtype=f32)
        self._linear(stream, net.ar_predict_layer.weight, logits, norm=previous)
        return logits


def sample_and_advance(
    network: Text2SemanticDecoder,
    pool: SlotPool,
    rows: int,
    logits: Tensor,
    noise: Tensor | None,
    pdl: bool = False,
) -> Tensor:
    """`batch_decode.sample_and_advance` in one launch (one program per row); `pdl` when it
    follows `FusedStep.logits` with PDL on (`FusedStep.pdl`)."""
    c = network.config
    st = pool.sampling
    if logits.shape != (rows, c.vocab_size) or logits.dtype != torch.float32:
        raise ValueError(f"logits must be ({rows}, {c.vocab_size}) float32, got {logits.shape}")
    if noise is not None and noise.shape != logits.shape:
        raise ValueError(f"noise must be {tuple(logits.shape)}, got {tuple(noise.shape)}")
    launch(_sample, (rows,),
        logits, pool.fresh_logits, pool.fresh, st.seen, st.penalty, st.ignore_eos, st.step,
        st.top_p, st.temperature, st.top_k, st.seed,
        noise.float().contiguous() if noise is not None else logits,
        pool.tokens, pool.pos, pool.slot, pool.out,
        network.ar_audio_position.pe.shape[0] - 1, pool.capacity - 1,
        V=c.vocab_size, BLOCK_V=triton.next_power_of_2(c.vocab_size), HAS_NOISE=noise is not None,
        MIN_STEPS=sampler.MIN_STEPS_BEFORE_EOS, MIN_TEMPERATURE=sampler.MIN_TEMPERATURE,
        PDL=pdl, num_warps=4, **({"launch_pdl": True} if pdl else {}),
    )  # fmt: skip
    return pool.out[:rows]


def self_check(
    network: Text2SemanticDecoder, row_counts: tuple[int, ...] = (1, 2), capacity: int = 96
) -> float:
    """Fused against eager logits (and written cache slots) on random cache contents, by default
    for the row counts that `batch_decode.fused_step` runs through these kernels (the tl.dot
    form for wider buckets is covered by the tests); returns the worst relative L2 logit error
    and raises RuntimeError above the tolerance (2e-3 in float32, 3e-2 in half precision)."""
    from voiceseal_models.gpt_sovits.serving.batch_decode import step_logits

    weight = network.ar_predict_layer.weight
    dev, dtype = weight.device, weight.dtype
    c = network.config
    tolerance = 2e-3 if dtype == torch.float32 else 3e-2
    gen = torch.Generator().manual_seed(0)
    plan = FusedStep(network)
    cases: list[tuple[int, list[SlotPool], Tensor]] = []
    for rows in row_counts:
        pools = [
            SlotPool.allocate(network, rows, capacity, device=dev, dtype=dtype) for _ in range(2)
        ]
        kv = torch.randn(pools[0].kv.shape, generator=gen).to(dev, dtype)
        pos = torch.randint(0, capacity // 2, (rows,), generator=gen)
        slot = pos + torch.randint(0, capacity // 2, (rows,), generator=gen)
        tokens = torch.randint(0, c.vocab_size, (rows,), generator=gen)
        for pool in pools:
            pool.kv.copy_(kv)
            pool.pos.copy_(pos)
            pool.slot.copy_(slot)
            pool.tokens.copy_(tokens)
        cases.append((rows, pools, kv))
    worst = 0.0
    with torch.inference_mode():
        with compile_only():  # every width's variants side by side (kernel_launch)
            for rows, pools, _ in cases:
                plan.logits(pools[1], rows, capacity)
        for rows, pools, kv in cases:
            ref = step_logits(network, pools[0], rows, capacity)
            got = plan.logits(pools[1], rows, capacity)
            error = float((got - ref).norm() / ref.norm())
            kv_error = float((pools[1].kv - pools[0].kv).float().norm() / kv.float().norm())
            if not (error <= tolerance and kv_error <= tolerance):  # NaN fails too
                raise RuntimeError(
                    f"fused step differs from the eager one at {rows} rows: relative logit "
                    f"error {error:.2e}, cache {kv_error:.2e} (tolerance {tolerance:.0e})"
                )
            worst = max(worst, error)
    return worst
