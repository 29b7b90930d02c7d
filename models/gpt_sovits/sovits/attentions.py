"""Transformer encoder of the SoVITS text encoder: relative-position self-attention (VITS style).

Activations are channel-first ``[B, C, T]`` throughout, masks are ``[B, 1, T]`` floats (1 keeps a
frame). Layer and parameter names follow the official files (``attn_layers.N.conv_q``,
``norm_layers_1.N.gamma``, ``ffn_layers.N.conv_1`` ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Masked scores are set to this finite value, not -inf: a fully padded query row then still
# yields a finite (uniform) softmax, as in the official code.
_MASKED_SCORE = -1e4


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, T]`` (parameters ``gamma``/``beta``)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, C, T]`` -> ``[B, C, T]``."""
        y = F.layer_norm(x.transpose(1, -1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with 1x1-conv projections and optional relative positions.

    With ``window_size`` set, keys and values get learned embeddings for relative offsets in
    ``[-window, window]`` shared by all heads (``emb_rel_k``/``emb_rel_v`` of shape
    ``[1, 2*window+1, C/heads]``); offsets outside the window contribute nothing. That variant is
    self-attention only.
    """

    def __init__(
        self, channels: int, out_channels: int, n_heads: int, window_size: int | None = None
    ) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.emb_rel_k: nn.Parameter | None = None
        self.emb_rel_v: nn.Parameter | None = None
        if window_size is not None:
            std = self.k_channels**-0.5
            span = 2 * window_size + 1
            self.emb_rel_k = nn.Parameter(torch.randn(1, span, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, span, self.k_channels) * std)

    def forward(self, x: Tensor, c: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Queries from ``x [B, C, Tq]``, keys/values from ``c [B, C, Tk]``.

        ``attn_mask [B, 1, Tq, Tk]`` (0 = blocked) is optional. Returns ``[B, out, Tq]``.
        """
        batch, _, t_q = x.shape
        t_k = c.size(2)
        # [B, C, T] -> [B, heads, T, d]
        q = self.conv_q(x).view(batch, self.n_heads, self.k_channels, t_q).transpose(2, 3)
        k = self.conv_k(c).view(batch, self.n_heads, self.k_channels, t_k).transpose(2, 3)
        v = self.conv_v(c).view(batch, self.n_heads, self.k_channels, t_k).transpose(2, 3)

        q = q / math.sqrt(self.k_channels)
        scores = q @ k.transpose(-2, -1)
        if self.emb_rel_k is not None:
            if t_q != t_k:
                raise ValueError("relative-position attention needs equal query and key lengths")
            scores = scores + self._relative_key_scores(q)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, _MASKED_SCORE)
        weights = torch.softmax(scores, dim=-1)
        out = weights @ v
        if self.emb_rel_v is not None:
            out = out + self._relative_value_mix(weights)
        out = out.transpose(2, 3).reshape(batch, self.n_heads * self.k_channels, t_q)
        return self.conv_o(out)

    def _relative_key_scores(self, q: Tensor) -> Tensor:
        """``scores[i, j] = q_i . emb_rel_k[j - i + w]`` inside the window, else 0."""
        assert self.emb_rel_k is not None and self.window_size is not None
        w = self.window_size
        length = q.size(2)
        rel_logits = q @ self.emb_rel_k.unsqueeze(0).transpose(-2, -1)  # [B, h, T, 2w+1]
        pos = torch.arange(length, device=q.device)
        offset = pos.unsqueeze(0) - pos.unsqueeze(1)  # [T(i), T(j)] = j - i
        index = (offset.clamp(-w, w) + w).expand(*rel_logits.shape[:2], length, length)
        local = rel_logits.gather(-1, index)
        return local.masked_fill(offset.abs() > w, 0.0)

    def _relative_value_mix(self, weights: Tensor) -> Tensor:
        """``out_i = sum_r weights[i, i + r - w] * emb_rel_v[r]`` over in-range offsets."""
        assert self.emb_rel_v is not None and self.window_size is not None
        w = self.window_size
        length = weights.size(-1)
        pos = torch.arange(length, device=weights.device)
        column = pos.unsqueeze(1) + torch.arange(-w, w + 1, device=weights.device)  # [T, 2w+1]
        in_range = (column >= 0) & (column < length)
        index = column.clamp(0, length - 1).expand(*weights.shape[:2], length, 2 * w + 1)
        banded = weights.gather(-1, index).masked_fill(~in_range, 0.0)  # [B, h, T, 2w+1]
        return banded @ self.emb_rel_v.unsqueeze(0)


class FeedForward(nn.Module):
    """Two "same"-padded convolutions with ReLU between, masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        # Even kernels pad one more on the right, matching the official "same" padding.
        self._pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: Tensor, x_mask: Tensor) -> Tensor:
        """``x [B, C, T]``, ``x_mask [B, 1, T]`` -> ``[B, C, T]``."""
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self._pad)))
        return self.conv_2(F.pad(x * x_mask, self._pad)) * x_mask


class RelativeTransformerEncoder(nn.Module):
    """Post-norm transformer encoder with windowed relative-position self-attention."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        window_size: int,
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, n_heads, window_size)
            for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(
            ChannelLayerNorm(hidden_channels) for _ in range(n_layers)
        )
        self.ffn_layers = nn.ModuleList(
            FeedForward(hidden_channels, filter_channels, kernel_size) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(
            ChannelLayerNorm(hidden_channels) for _ in range(n_layers)
        )

    def forward(self, x: Tensor, x_mask: Tensor) -> Tensor:
        """``x [B, C, T]``, ``x_mask [B, 1, T]`` -> ``[B, C, T]`` (padding zeroed)."""
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # [B, 1, T, T]
        x = x * x_mask
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + attn(x, x, attn_mask))
            x = norm_2(x + ffn(x, x_mask))
        return x * x_mask
