"""The SoVITS waveform generator (`sovits.generator.Generator`) for serving on a GPU.

Same function as `Generator.forward`, computed faster for batches:

- the weight-normed kernels (`g * v / ||v||`) are computed once, not on every call;
- activations may run channels-last (`(B, C, 1, T)` seen by cuDNN as NHWC): cuDNN's
  fp16 convolutions are NHWC kernels, and NCW input costs a layout transform around every
  convolution (on an H100 these transforms took a quarter of a padded batch's GPU time);
- the pointwise work between convolutions (leaky ReLU, the padded-batch mask, residual adds,
  the average over the residual blocks) runs in a few fused Triton kernels instead of one
  broadcasting PyTorch kernel per operation: on an H100 those kernels took about half of
  the generator's time at batch 32.

The results equal `Generator.forward` up to fp16 rounding (the fused kernels keep the
intermediate values in fp32 between the roundings that the eager path does), see
tests/gpt_sovits/test_vocoder_cuda.py. Without Triton or off CUDA the same fused operations run
as PyTorch code, which the CPU tests compare with the eager generator.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voiceseal_models.gpt_sovits.serving.kernel_launch import compile_only, launch
from voiceseal_models.gpt_sovits.sovits.generator import LRELU_SLOPE, Generator, ResBlock1
from voiceseal_models.gpt_sovits.sovits.weight_norm import (
    WeightNormConv1d,
    WeightNormConvTranspose1d,
    weight_from_direction,
)

try:  # Triton ships with CUDA builds of PyTorch only.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None

FINAL_SLOPE = 0.01  # torch's default leaky ReLU slope, which the last activation uses
_MAX_ELEMENTS = 2**31 - 1  # int32 indexing in the kernels
# Tiles (rows, columns) over the activation seen as a matrix: channels-last memory is
# (B*T, C) (a row is one frame, the mask is per row, the bias per column), NCW memory is
# (B*C, T) (a row is one channel of one item, the bias is per row). Channels-last columns are
# few (24..384 here): 32-wide tiles use whole 32-byte sectors for every channel count.
_TILES = {True: (128, 32), False: (4, 1024)}

# Residual-kernel modes: what `t + y` feeds.
_NEXT_UNIT = 0  # the next unit: store t + y and its activation
_FIRST_BLOCK = 1  # the block sum: acc = t + y
_LATER_BLOCK = 2  # the block sum: acc += t + y


if triton is not None:
    # Flags and sizes are run-time arguments and sizes are not specialised, so each kernel
    # compiles once per layout and dtype (Triton compiles at first launch; every variant adds
    # to a server's cold start).
    _RUNTIME = ("n_rows", "n_cols", "C", "has_bias", "has_mask", "mode")

    @triton.jit
    def _tile(n_rows, n_cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):  # type: ignore[no-untyped-def]  # pragma: no cover
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        inside = (rows < n_rows)[:, None] & (cols < n_cols)[None, :]
        return rows, cols, rows[:, None] * n_cols + cols[None, :], inside

    @triton.jit
    def _add_bias(v, b_ptr, rows, cols, C, CL: tl.constexpr):  # type: ignore[no-untyped-def]  # pragma: no cover - GPU
        # The eager convolution adds its bias to the rounded product and rounds again.
        if CL:
            bias = tl.load(b_ptr + cols, mask=cols < C, other=0.0).to(tl.float32)[None, :]
        else:
            bias = tl.load(b_ptr + rows % C).to(tl.float32)[:, None]
        return v + bias

    @triton.jit
    def _apply_mask(v, m_ptr, rows, cols, n_rows, n_cols, C, inside, CL: tl.constexpr):  # type: ignore[no-untyped-def]  # pragma: no cover
        # The mask is (B, T) in memory: one value per item and frame.
        if CL:
            m = tl.load(m_ptr + rows, mask=rows < n_rows, other=0.0)[:, None]
        else:
            m = tl.load(
                m_ptr + (rows // C)[:, None] * n_cols + cols[None, :], mask=inside, other=0.0
            )
        return v * m

    @triton.jit(do_not_specialize=_RUNTIME[:5])
    def _activate_kernel(  # type: ignore[no-untyped-def]
        x_ptr, b_ptr, m_ptr, out_ptr, n_rows, n_cols, C, has_bias, has_mask, slope, scale,
        CL: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip  # pragma: no cover - GPU
        dtype = out_ptr.dtype.element_ty
        rows, cols, offs, inside = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
        v = tl.load(x_ptr + offs, mask=inside, other=0.0).to(tl.float32)
        if has_bias != 0:
            v = _add_bias(v, b_ptr, rows, cols, C, CL).to(dtype).to(tl.float32)
        # The block average: rounded like the eager `acc / k` (exact when scale is 1).
        v = (v * scale).to(dtype).to(tl.float32)
        v = tl.where(v >= 0, v, v * slope).to(dtype)
        if has_mask != 0:
            v = _apply_mask(v, m_ptr, rows, cols, n_rows, n_cols, C, inside, CL)
        tl.store(out_ptr + offs, v, mask=inside)

    @triton.jit(do_not_specialize=_RUNTIME)
    def _residual_kernel(  # type: ignore[no-untyped-def]
        t_ptr, y_ptr, b_ptr, m_ptr, t_out_ptr, act_out_ptr, acc_ptr, n_rows, n_cols, C,
        has_bias, has_mask, mode, slope,
        CL: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip  # pragma: no cover - GPU
        dtype = t_out_ptr.dtype.element_ty
        rows, cols, offs, inside = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
        t = tl.load(t_ptr + offs, mask=inside, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + offs, mask=inside, other=0.0).to(tl.float32)
        if has_bias != 0:
            y = _add_bias(y, b_ptr, rows, cols, C, CL).to(dtype).to(tl.float32)
        s = (t + y).to(dtype)
        if mode == 0:
            tl.store(t_out_ptr + offs, s, mask=inside)
            v = s.to(tl.float32)
            v = tl.where(v >= 0, v, v * slope).to(dtype)
            if has_mask != 0:
                v = _apply_mask(v, m_ptr, rows, cols, n_rows, n_cols, C, inside, CL)
            tl.store(act_out_ptr + offs, v, mask=inside)
        elif mode == 1:
            tl.store(acc_ptr + offs, s, mask=inside)
        else:
            acc = tl.load(acc_ptr + offs, mask=inside, other=0.0).to(tl.float32)
            tl.store(acc_ptr + offs, (acc + s.to(tl.float32)).to(dtype), mask=inside)


def _use_triton(x: Tensor, *others: Tensor) -> bool:
    """The kernels index flat memory: every operand must share one dense layout."""
    if triton is None or not x.is_cuda or x.numel() > _MAX_ELEMENTS:
        return False
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        return False
    return all(o.shape == x.shape and o.stride() == x.stride() for o in others)


def _grid(x: Tensor) -> tuple[int, int, int, bool, tuple[int, int]]:
    """(rows, columns, channels, channels-last, grid) of a (B, C, [1,] T) activation in one of
    the two memory orders the kernels index."""
    b, c, t = x.shape[0], x.shape[1], x.shape[-1]
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and c > 1
    n_rows, n_cols = (b * t, c) if channels_last else (b * c, t)
    tile_r, tile_c = _TILES[channels_last]
    grid = (triton.cdiv(n_rows, tile_r), triton.cdiv(n_cols, tile_c))
    return n_rows, n_cols, c, channels_last, grid


def _with_bias(v: Tensor, bias: Tensor | None) -> Tensor:
    if bias is None:
        return v
    return v + bias.view(1, -1, *([1] * (v.dim() - 2)))


def activate(
    x: Tensor,
    mask: Tensor | None,
    slope: float,
    *,
    scale: float = 1.0,
    bias: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """leaky_relu((x + bias) * scale, slope) * mask; bias (C,) or None, mask (B, 1, [1,] T)
    or None."""
    if not _use_triton(x, *(() if out is None else (out,))):
        v = _with_bias(x, bias)
        v = v if scale == 1.0 else v * scale
        v = F.leaky_relu(v, slope)
        return v if mask is None else v * mask
    out = torch.empty_like(x) if out is None else out
    n_rows, n_cols, c, channels_last, grid = _grid(x)
    tile_r, tile_c = _TILES[channels_last]
    launch(_activate_kernel, grid,
        x, x if bias is None else bias, x if mask is None else mask, out, n_rows, n_cols, c,
        int(bias is not None), int(mask is not None), slope, scale,
        CL=channels_last, BLOCK_R=tile_r, BLOCK_C=tile_c, num_warps=4,
    )  # fmt: skip
    return out


def residual(
    t: Tensor,
    y: Tensor,
    mask: Tensor | None,
    mode: int,
    acc: Tensor | None = None,
    *,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """`s = t + (y + bias)`, then by mode: (s, leaky_relu(s) * mask) for the next unit;
    (acc := s) or (acc += s) for the block sum. Returns (s or acc, activation or acc)."""
    if not _use_triton(t, y, *(() if acc is None else (acc,))):
        s = t + _with_bias(y, bias)
        if mode == _NEXT_UNIT:
            a = F.leaky_relu(s, LRELU_SLOPE)
            return s, (a if mask is None else a * mask)
        if mode == _FIRST_BLOCK:
            return s, s
        assert acc is not None
        acc.add_(s)
        return acc, acc
    n_rows, n_cols, c, channels_last, grid = _grid(t)
    tile_r, tile_c = _TILES[channels_last]
    if mode == _NEXT_UNIT:
        s_out, act_out, acc_out = torch.empty_like(t), torch.empty_like(t), t
    elif mode == _FIRST_BLOCK:
        s_out = act_out = acc_out = torch.empty_like(t)
    else:
        assert acc is not None
        s_out = act_out = acc_out = acc
    launch(_residual_kernel, grid,
        t, y, t if bias is None else bias, t if mask is None else mask, s_out, act_out, acc_out,
        n_rows, n_cols, c, int(bias is not None), int(mask is not None), mode, LRELU_SLOPE,
        CL=channels_last, BLOCK_R=tile_r, BLOCK_C=tile_c, num_warps=4,
    )  # fmt: skip
    return (s_out, act_out) if mode == _NEXT_UNIT else (acc_out, acc_out)


class _Conv:
    """One convolution of the generator with its kernel computed once, for either layout."""

    def __init__(self, module: nn.Module, channels_last: bool) -> None:
        if isinstance(module, (WeightNormConv1d, WeightNormConvTranspose1d)):
            weight = weight_from_direction(module.weight_g, module.weight_v)
        elif isinstance(module, nn.Conv1d):
            weight = module.weight
        else:
            raise TypeError(f"not a generator convolution: {type(module).__name__}")
        self.transposed = isinstance(module, WeightNormConvTranspose1d)
        self.bias: Tensor | None = module.bias
        self.stride = _single(getattr(module, "stride", 1))
        self.padding = _single(module.padding)
        self.dilation = _single(getattr(module, "dilation", 1))
        self.channels_last = channels_last
        if channels_last:
            weight = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        self.weight = weight.detach()

    def __call__(self, x: Tensor, *, bias: bool = True) -> Tensor:
        """The convolution; `bias=False` leaves the bias to the caller (a fused kernel:
        PyTorch adds a cuDNN convolution's bias in a separate broadcasting kernel)."""
        b = self.bias if bias else None
        if not self.channels_last:
            if self.transposed:
                return F.conv_transpose1d(
                    x, self.weight, b, stride=self.stride, padding=self.padding
                )
            return F.conv1d(x, self.weight, b, padding=self.padding, dilation=self.dilation)
        if self.transposed:
            return F.conv_transpose2d(
                x, self.weight, b, stride=(1, self.stride), padding=(0, self.padding)
            )
        return F.conv2d(x, self.weight, b, padding=(0, self.padding), dilation=(1, self.dilation))


def _single(value: int | Sequence[int] | str) -> int:
    if isinstance(value, str):
        raise ValueError(f"string padding {value!r} is not used by the generator")
    return value if isinstance(value, int) else int(value[0])


class FastGenerator:
    """`Generator.forward` with frozen kernels, an optional channels-last layout and fused
    pointwise kernels (see the module doc). Holds references to `dec`'s biases and its own
    copies of the effective kernels (about the generator's size again).

    Args:
        dec: the synthesizer's generator (eval mode; its weights must not change afterwards).
        channels_last: run the activations as (B, C, 1, T) channels-last. None picks per call:
            channels-last for batches of `channels_last_from` items or more (on an H100,
            cuDNN's NHWC kernels were slower than NCW for a single long item).
    """

    def __init__(
        self,
        dec: Generator,
        *,
        channels_last: bool | None = None,
        channels_last_from: int = 2,
    ) -> None:
        self.dec = dec
        self.num_kernels = dec.num_kernels
        self.upsample_rates = dec.upsample_rates
        self.channels_last = channels_last
        self.channels_last_from = channels_last_from
        self._convs: dict[bool, dict[nn.Module, _Conv]] = {}
        self._lock = threading.Lock()

    def _kernels(self, channels_last: bool) -> dict[nn.Module, _Conv]:
        # Under a lock: a generator shared by threads must freeze each layout's kernels once. A
        # second copy replacing the first could free kernels that a CUDA graph captured.
        with self._lock:
            convs = self._convs.get(channels_last)
            if convs is None:
                convs = {
                    m: _Conv(m, channels_last)
                    for m in self.dec.modules()
                    if isinstance(m, (WeightNormConv1d, WeightNormConvTranspose1d, nn.Conv1d))
                }
                weight = self.dec.conv_pre.weight
                if weight.is_cuda:
                    # The kernels were computed on this thread's stream; threads on other
                    # streams (the other worker, the window graphs) read them from now on.
                    torch.cuda.current_stream(weight.device).synchronize()
                self._convs[channels_last] = convs
            return convs

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Compile the fused kernels now (Triton compiles at first launch: ~1 s per kernel and
        layout on a fresh machine, nothing once its on-disk cache holds them), for both layouts,
        side by side on threads."""
        weight = self.dec.conv_pre.weight
        x = torch.zeros(2, 4, 1, 3, device=weight.device, dtype=weight.dtype)
        mask = torch.ones(2, 1, 1, 3, device=weight.device, dtype=weight.dtype)
        bias = torch.zeros(4, device=weight.device, dtype=weight.dtype)
        with compile_only():  # the variants side by side (kernel_launch)
            for t in (x, x.contiguous(memory_format=torch.channels_last)):
                activate(t, mask, LRELU_SLOPE, bias=bias)
                residual(t, t.clone(), mask, _NEXT_UNIT, bias=bias)

    @torch.inference_mode()
    def __call__(self, x: Tensor, g: Tensor, x_mask: Tensor | None = None) -> Tensor:
        """``x [B, inter, T]``, ``g [B|1, gin, 1]``, optional ``x_mask [B, 1, T]`` ->
        ``[B, 1, T*hop]``, as `Generator.forward`."""
        channels_last = self.channels_last
        if channels_last is None:
            channels_last = x.size(0) >= self.channels_last_from
        convs = self._kernels(channels_last)
        dec = self.dec
        if channels_last:
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            g = g.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            x_mask = None if x_mask is None else x_mask.unsqueeze(2)
        # Mask values per (item, frame), contiguous, as the kernels read them.
        mask = None if x_mask is None else x_mask.contiguous()
        if mask is not None:
            x = x * mask
        x = convs[dec.conv_pre](x) + convs[dec.cond](g)
        scale = 1.0
        for stage, (up, rate) in enumerate(zip(dec.ups, self.upsample_rates, strict=True)):
            x = activate(x, mask, LRELU_SLOPE, scale=scale)
            if mask is not None:
                mask = mask.repeat_interleave(rate, dim=-1)
            x = convs[up](x)
            blocks = dec.resblocks[stage * self.num_kernels : (stage + 1) * self.num_kernels]
            # Every block's first unit activates the same stage input: do it once.
            act = activate(x, mask, LRELU_SLOPE)
            acc: Tensor | None = None
            for index, block in enumerate(blocks):
                assert isinstance(block, ResBlock1)
                acc = self._block(block, convs, x, act, mask, acc, first=index == 0)
            assert acc is not None
            x = acc
            scale = 1.0 / self.num_kernels
        x = activate(x, mask, FINAL_SLOPE, scale=scale)
        audio = torch.tanh(convs[dec.conv_post](x))
        if mask is not None:
            audio = audio * mask
        return audio[:, :, 0] if channels_last else audio

    @staticmethod
    def _block(
        block: ResBlock1,
        convs: dict[nn.Module, _Conv],
        x: Tensor,
        act: Tensor,
        mask: Tensor | None,
        acc: Tensor | None,
        *,
        first: bool,
    ) -> Tensor:
        """One ResBlock1 on the stage input `x` (`act` = its activation); the block's output is
        stored in (or added to) acc."""
        t = x
        units = list(zip(block.convs1, block.convs2, strict=True))
        for index, (conv1, conv2) in enumerate(units):
            c1, c2 = convs[conv1], convs[conv2]
            hidden = c1(act, bias=False)
            hidden = activate(hidden, mask, LRELU_SLOPE, bias=c1.bias, out=hidden)
            y = c2(hidden, bias=False)
            if index < len(units) - 1:
                t, act = residual(t, y, mask, _NEXT_UNIT, bias=c2.bias)
            else:
                mode = _FIRST_BLOCK if first else _LATER_BLOCK
                acc, _ = residual(t, y, mask, mode, acc, bias=c2.bias)
        assert acc is not None
        return acc
