"""Single-query attention over per-row lengths, for decode steps with many rows.

A continuous batch runs every row over one span bucket (the longest row's), and
`scaled_dot_product_attention` with an additive mask reads all `span` keys of every row, free
rows included. At 128 rows the keys and values are most of the bytes a step moves (24 layers x
2 x 512 values x 2 bytes = 49 kB per slot and row), so reading only each row's own
`slot + 1` keys cuts the step's traffic to what the rows really hold.

`ragged_attention` runs one Triton program per (row, head): a loop over that row's keys in
blocks with an online softmax (float32), the same arithmetic as SDPA up to summation order.
`ragged_attention_reference` is the plain PyTorch form (any device), used on the CPU and in
the tests.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from voiceseal_models.gpt_sovits.serving.kernel_launch import launch

try:  # Triton ships with CUDA builds of PyTorch only.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None


def ragged_attention_reference(q: Tensor, keys: Tensor, values: Tensor, lengths: Tensor) -> Tensor:
    """q (R, H, D); keys/values (R, H, S, D) (any strides); lengths (R,) int in [1, S].

    Returns (R, H, D): row r attends to its first `lengths[r]` keys."""
    span = keys.shape[2]
    index = torch.arange(span, device=q.device)
    allowed = index[None, :] < lengths[:, None]
    bias = torch.zeros(q.shape[0], 1, 1, span, dtype=q.dtype, device=q.device)
    bias.masked_fill_(~allowed[:, None, None, :], float("-inf"))
    out = F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=bias)
    return out[:, :, 0]


if triton is not None:

    @triton.jit
    def _ragged_kernel(  # type: ignore[no-untyped-def]
        q_ptr,
        k_ptr,
        v_ptr,
        len_ptr,
        out_ptr,
        stride_qr,
        stride_qh,
        stride_kr,
        stride_kh,
        stride_ks,
        stride_vr,
        stride_vh,
        stride_vs,
        stride_or,
        stride_oh,
        span,
        scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):  # pragma: no cover - runs on the GPU
        row = tl.program_id(0)
        head = tl.program_id(1)
        n = tl.load(len_ptr + row).to(tl.int32)
        n = tl.where(n < span, n, span)
        d = tl.arange(0, HEAD_DIM)
        q = tl.load(q_ptr + row * stride_qr + head * stride_qh + d).to(tl.float32) * scale
        k_base = k_ptr + row.to(tl.int64) * stride_kr + head * stride_kh
        v_base = v_ptr + row.to(tl.int64) * stride_vr + head * stride_vh
        m_i = tl.full([1], float("-inf"), tl.float32)
        l_i = tl.zeros([1], tl.float32)
        acc = tl.zeros([HEAD_DIM], tl.float32)
        for start in range(0, n, BLOCK_N):
            offs = start + tl.arange(0, BLOCK_N)
            valid = offs < n
            k = tl.load(
                k_base + offs[:, None] * stride_ks + d[None, :], mask=valid[:, None], other=0.0
            ).to(tl.float32)
            s = tl.sum(k * q[None, :], 1)
            s = tl.where(valid, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 0))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new)
            l_i = l_i * alpha + tl.sum(p, 0)
            v = tl.load(
                v_base + offs[:, None] * stride_vs + d[None, :], mask=valid[:, None], other=0.0
            ).to(tl.float32)
            acc = acc * alpha + tl.sum(p[:, None] * v, 0)
            m_i = m_new
        out = acc / l_i
        tl.store(out_ptr + row * stride_or + head * stride_oh + d, out.to(out_ptr.dtype.element_ty))


def ragged_attention(
    q: Tensor, keys: Tensor, values: Tensor, lengths: Tensor, *, block: int = 64
) -> Tensor:
    """As `ragged_attention_reference`, through the Triton kernel on CUDA tensors.

    `keys`/`values` may be strided views of a cache (the last axis must be contiguous);
    lengths above `S` are clamped to `S`. Fixed launch shape and no host synchronisation, so
    it can be captured in a CUDA graph."""
    rows, heads, dim = q.shape
    if keys.shape[:2] != (rows, heads) or keys.shape[3] != dim or values.shape != keys.shape:
        raise ValueError(
            f"keys/values must be ({rows}, {heads}, S, {dim}), got {tuple(keys.shape)} and "
            f"{tuple(values.shape)}"
        )
    if lengths.shape != (rows,):
        raise ValueError(f"lengths must be ({rows},), got {tuple(lengths.shape)}")
    if triton is None or q.device.type != "cuda":
        return ragged_attention_reference(q, keys, values, lengths.clamp(max=keys.shape[2]))
    if keys.stride(3) != 1 or values.stride(3) != 1 or q.stride(2) != 1 or dim & (dim - 1):
        raise ValueError("the head axis must be contiguous and a power of two")
    out = torch.empty(rows, heads, dim, dtype=q.dtype, device=q.device)
    launch(_ragged_kernel, (rows, heads),
        q, keys, values, lengths, out,
        q.stride(0), q.stride(1),
        keys.stride(0), keys.stride(1), keys.stride(2),
        values.stride(0), values.stride(1), values.stride(2),
        out.stride(0), out.stride(1),
        keys.shape[2], 1.0 / math.sqrt(dim),
        HEAD_DIM=dim, BLOCK_N=block, num_warps=2,
    )  # fmt: skip
    return out
