"""HiFi-GAN style waveform generator (``dec``) conditioned on the global style vector."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .weight_norm import WeightNormConv1d, WeightNormConvTranspose1d

LRELU_SLOPE = 0.1


class ResBlock1(nn.Module):
    """Three residual units; each is a dilated conv (``convs1``) then a plain conv (``convs2``)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WeightNormConv1d(
                channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
            for _ in dilations
        )

    def forward(self, x: Tensor, x_mask: Tensor | None = None) -> Tensor:
        """``x [B, C, T]``, optional ``x_mask [B, 1, T]`` -> ``[B, C, T]``.

        With a mask, every conv sees zeros past each item's end, exactly like the zero padding
        an unpadded item gets, so padded batches reproduce per-item results.
        """
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            xt = F.leaky_relu(conv1(xt), LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = x + conv2(xt)
        return x


class Generator(nn.Module):
    """Latent frames -> waveform, ``prod(upsample_rates)`` samples per frame.

    Each stage upsamples with a weight-normed transposed conv, then averages a bank of
    multi-receptive-field residual blocks (``resblocks`` is stage-major).
    """

    def __init__(
        self,
        initial_channel: int,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.upsample_rates = tuple(upsample_rates)
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = upsample_initial_channel
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            self.ups.append(
                WeightNormConvTranspose1d(
                    channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2
                )
            )
            channels //= 2
            for k, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock1(channels, k, dilations))
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3, bias=False)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: Tensor, g: Tensor, x_mask: Tensor | None = None) -> Tensor:
        """``x [B, inter, T]``, ``g [B|1, gin, 1]`` -> audio in [-1, 1], ``[B, 1, T*hop]``.

        ``x_mask [B, 1, T]`` marks valid frames of a padded batch: activations past each item's
        end are zeroed before every convolution (and in the output), so each item's audio
        equals what it would get decoded alone. Leave it out for unpadded input.
        """
        if x_mask is not None:
            x = x * x_mask
        x = self.conv_pre(x) + self.cond(g)
        for stage, (up, rate) in enumerate(zip(self.ups, self.upsample_rates, strict=True)):
            x = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                x = x * x_mask
                x_mask = x_mask.repeat_interleave(rate, dim=-1)
            x = up(x)
            blocks = self.resblocks[stage * self.num_kernels : (stage + 1) * self.num_kernels]
            acc = blocks[0](x, x_mask)
            for block in blocks[1:]:
                acc = acc + block(x, x_mask)
            x = acc / self.num_kernels
        # The last activation uses torch's default slope (0.01), not LRELU_SLOPE, as trained.
        x = F.leaky_relu(x)
        if x_mask is not None:
            x = x * x_mask
        audio = torch.tanh(self.conv_post(x))
        return audio if x_mask is None else audio * x_mask
