"""Convolutions with the legacy weight-norm parametrisation (``weight_g`` / ``weight_v``).

Official SoVITS files store every weight-normed layer as a magnitude ``weight_g`` and a
direction ``weight_v``; the effective kernel is ``g * v / ||v||`` with the norm taken over every
axis except axis 0. We keep that storage (so the files load unchanged) and compute the kernel on
the fly instead of calling ``torch.nn.utils.weight_norm``, which is deprecated and warns.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def weight_from_direction(weight_g: Tensor, weight_v: Tensor) -> Tensor:
    """``g * v / ||v||`` with the norm over all axes but 0 (as torch's legacy ``weight_norm``)."""
    dims = tuple(range(1, weight_v.dim()))
    return weight_v * (weight_g / torch.linalg.vector_norm(weight_v, dim=dims, keepdim=True))


def _init_direction(weight_v: Tensor, fan_in: int) -> None:
    # Only matters for randomly built models (benchmarks, manifest checks): a loaded checkpoint
    # overwrites it. Same scale as nn.Conv1d's default initialisation.
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight_v, -bound, bound)


class WeightNormConv1d(nn.Module):
    """``Conv1d`` stored as ``weight_g [out,1,1]``, ``weight_v [out,in,k]`` and ``bias [out]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        dilation: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.dilation = dilation
        self.padding = padding
        # Registration order (bias, g, v) reproduces the official state-dict order.
        self.bias = nn.Parameter(torch.zeros(out_channels))
        direction = torch.empty(out_channels, in_channels, kernel_size)
        _init_direction(direction, in_channels * kernel_size)
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(direction, dim=(1, 2), keepdim=True))
        self.weight_v = nn.Parameter(direction)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, in, T]`` -> ``[B, out, T']``."""
        weight = weight_from_direction(self.weight_g, self.weight_v)
        return F.conv1d(x, weight, self.bias, padding=self.padding, dilation=self.dilation)


class WeightNormConvTranspose1d(nn.Module):
    """``ConvTranspose1d`` stored as ``weight_g [in,1,1]``, ``weight_v [in,out,k]``, ``bias``.

    A transposed convolution's kernel has the *input* channels on axis 0, so the magnitude is
    per input channel.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channels))
        direction = torch.empty(in_channels, out_channels, kernel_size)
        _init_direction(direction, out_channels * kernel_size)
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(direction, dim=(1, 2), keepdim=True))
        self.weight_v = nn.Parameter(direction)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, in, T]`` -> ``[B, out, (T-1)*stride - 2*padding + k]``."""
        weight = weight_from_direction(self.weight_g, self.weight_v)
        return F.conv_transpose1d(x, weight, self.bias, stride=self.stride, padding=self.padding)
