"""Normalising flow between the prior latent and the generator latent (inference direction).

``flow.flows`` alternates coupling layers and channel flips, so the coupling layers sit at the
even indices ``0, 2, 4, 6`` of the official state dict; the flips carry no parameters but keep
their slots so the numbering matches.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .weight_norm import WeightNormConv1d


class WaveNet(nn.Module):
    """Non-causal WaveNet stack with gated activations and a global condition (``modules.WN``).

    ``in_layers`` are dilated convs to ``2*hidden`` channels, ``res_skip_layers`` 1x1 convs
    (the last one emits only skip channels), ``cond_layer`` projects the global condition to
    ``2*hidden`` channels per layer. All three are weight-normed in the official files.
    """

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WaveNet kernel size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.cond_layer = WeightNormConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                WeightNormConv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=(kernel_size * dilation - dilation) // 2,
                )
            )
            last = i == n_layers - 1
            out = hidden_channels if last else 2 * hidden_channels
            self.res_skip_layers.append(WeightNormConv1d(hidden_channels, out, 1))

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        """``x [B, H, T]``, ``x_mask [B, 1, T]``, ``g [B|1, gin, 1]`` -> skip sum ``[B, H, T]``."""
        hidden = self.hidden_channels
        cond = self.cond_layer(g)
        output = torch.zeros_like(x)
        n_layers = len(self.in_layers)
        for i, (in_layer, res_skip) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            pre = in_layer(x) + cond[:, 2 * hidden * i : 2 * hidden * (i + 1)]
            acts = torch.tanh(pre[:, :hidden]) * torch.sigmoid(pre[:, hidden:])
            res_skip_acts = res_skip(acts)
            if i < n_layers - 1:
                x = (x + res_skip_acts[:, :hidden]) * x_mask
                output = output + res_skip_acts[:, hidden:]
            else:
                output = output + res_skip_acts
        return output * x_mask


class MeanOnlyCouplingLayer(nn.Module):
    """Affine coupling with unit scale: the second half is shifted by a WaveNet of the first."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)

    def _shift(self, x0: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        h = self.pre(x0) * x_mask
        return self.post(self.enc(h, x_mask, g)) * x_mask

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        """Data -> prior direction. ``x [B, C, T]`` -> ``[B, C, T]``."""
        x0, x1 = x.split(self.half_channels, dim=1)
        x1 = self._shift(x0, x_mask, g) + x1 * x_mask
        return torch.cat([x0, x1], dim=1)

    def inverse(self, x: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        """Prior -> data direction (what synthesis runs). ``[B, C, T]`` -> ``[B, C, T]``."""
        x0, x1 = x.split(self.half_channels, dim=1)
        x1 = (x1 - self._shift(x0, x_mask, g)) * x_mask
        return torch.cat([x0, x1], dim=1)


class ChannelFlip(nn.Module):
    """Reverses the channel order so the next coupling layer transforms the other half."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.flip(x, [1])


class CouplingFlow(nn.Module):
    """``n_flows`` mean-only coupling layers, each followed by a channel flip."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        n_flows: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                MeanOnlyCouplingLayer(
                    channels, hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels
                )
            )
            self.flows.append(ChannelFlip())

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        """Posterior latent -> prior latent. ``x [B, C, T]`` -> ``[B, C, T]``."""
        for flow in self.flows:
            x = flow(x, x_mask, g) if isinstance(flow, MeanOnlyCouplingLayer) else flow(x)
        return x

    def inverse(self, z_p: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        """Prior sample -> generator latent. ``z_p [B, C, T]`` -> ``[B, C, T]``."""
        x = z_p
        for flow in reversed(self.flows):
            x = flow.inverse(x, x_mask, g) if isinstance(flow, MeanOnlyCouplingLayer) else flow(x)
        return x
