"""Reference (style) encoder ``ref_enc``: spectrogram -> one global style vector.

A per-frame MLP, two gated temporal convolutions, one self-attention block and a projection,
then the mean over frames. The official code passes an all-ones mask at inference, which is a
no-op, so none is taken here. Dropout slots of the official ``nn.Sequential`` are kept as
``nn.Identity`` so that ``spectral.0`` and ``spectral.3`` keep their official indices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _Linear(nn.Module):
    """``nn.Linear`` under the attribute name ``fc`` (official ``LinearNorm``)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class _Conv(nn.Module):
    """``nn.Conv1d`` with "same" padding under the attribute name ``conv`` (``ConvNorm``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class GatedConv1d(nn.Module):
    """Residual gated linear unit: ``x + a * sigmoid(b)`` with ``[a; b] = conv(x)``."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = _Conv(channels, 2 * channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, C, T]`` -> ``[B, C, T]``."""
        a, b = self.conv1(x).split(self.channels, dim=1)
        return x + a * torch.sigmoid(b)


class StyleSelfAttention(nn.Module):
    """Multi-head self-attention over ``[B, T, C]`` with a residual connection.

    The scores are divided by ``sqrt(C)`` (the model width), not ``sqrt(C / heads)``: that is
    how the reference encoder was trained.
    """

    def __init__(self, n_heads: int, channels: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.temperature = math.sqrt(channels)
        self.w_qs = nn.Linear(channels, channels)
        self.w_ks = nn.Linear(channels, channels)
        self.w_vs = nn.Linear(channels, channels)
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, T, C]`` -> ``[B, T, C]``."""
        batch, length, channels = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.w_qs(x)), heads(self.w_ks(x)), heads(self.w_vs(x))
        scores = (q @ k.transpose(-2, -1)) / self.temperature  # [B, h, T, T]
        out = torch.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(batch, length, channels)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    """``[B, n_bins, T]`` spectrogram -> style vector ``[B, out_dim, 1]``."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden_dim: int, kernel_size: int, n_heads: int
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.spectral = nn.Sequential(
            _Linear(in_dim, hidden_dim),
            nn.Mish(),
            nn.Identity(),
            _Linear(hidden_dim, hidden_dim),
            nn.Mish(),
            nn.Identity(),
        )
        self.temporal = nn.Sequential(
            GatedConv1d(hidden_dim, kernel_size), GatedConv1d(hidden_dim, kernel_size)
        )
        self.slf_attn = StyleSelfAttention(n_heads, hidden_dim)
        self.fc = _Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """One unpadded spectrogram per item: ``x [B, in_dim, T]`` -> ``[B, out_dim, 1]``.

        There is deliberately no padding mask: the temporal convolutions of the trained model
        are unmasked, so a padded batch cannot reproduce per-reference results anyway. Encode
        references of different lengths one at a time.
        """
        if x.size(1) != self.in_dim:
            raise ValueError(f"style encoder expects {self.in_dim} bins, got {x.size(1)}")
        h = self.spectral(x.transpose(1, 2))  # [B, T, C]
        h = self.temporal(h.transpose(1, 2)).transpose(1, 2)
        h = self.fc(self.slf_attn(h))
        return h.mean(dim=1).unsqueeze(-1)
