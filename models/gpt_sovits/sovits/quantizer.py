"""Residual vector quantiser that turns projected HuBERT features into semantic tokens.

Inference only: encode is a nearest-codeword search, decode a codebook lookup. The EMA
statistics (``cluster_size``, ``embed_avg``) and the k-means flag (``inited``) are kept as
buffers solely so the official state dict ``quantizer.vq.layers.N._codebook.*`` loads strictly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EuclideanCodebook(nn.Module):
    """``bins`` codewords of size ``dim`` (buffer ``embed [bins, dim]``)."""

    embed: Tensor

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        # Random codewords only serve randomly built models; checkpoints overwrite them.
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.randn(bins, dim))
        self.register_buffer("embed_avg", self.embed.clone())

    def encode(self, x: Tensor) -> Tensor:
        """``x [N, dim]`` -> index of the nearest codeword (squared L2), ``[N]`` int64.

        The search runs in ``x``'s dtype (the codebook is cast to it).
        """
        embed = self.embed.to(x.dtype)
        # ||x||^2 - 2 x.e + ||e||^2, the same expansion the official code uses so that
        # near-ties resolve identically.
        dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1).unsqueeze(0)
        return dist.argmin(dim=-1)

    def decode(self, codes: Tensor) -> Tensor:
        """``codes [...]`` -> ``[..., dim]``."""
        return nn.functional.embedding(codes, self.embed)


class VectorQuantizationLayer(nn.Module):
    """One residual stage; holds its codebook under the official name ``_codebook``."""

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self._codebook = EuclideanCodebook(dim, bins)

    @property
    def codebook(self) -> EuclideanCodebook:
        return self._codebook


class _LayerStack(nn.Module):
    def __init__(self, dim: int, bins: int, n_q: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantizationLayer(dim, bins) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    """``n_q`` residual codebooks over ``dim``-channel features."""

    def __init__(self, dim: int, bins: int, n_q: int) -> None:
        super().__init__()
        self.dim = dim
        self.bins = bins
        self.vq = _LayerStack(dim, bins, n_q)

    @property
    def n_q(self) -> int:
        return len(self.vq.layers)

    def encode(self, x: Tensor) -> Tensor:
        """Features ``x [B, dim, T]`` -> codes ``[n_q, B, T]`` (int64)."""
        batch, _, length = x.shape
        residual = x.transpose(1, 2).reshape(batch * length, self.dim)
        codes = []
        for layer in self.vq.layers:
            assert isinstance(layer, VectorQuantizationLayer)
            idx = layer.codebook.encode(residual)
            residual = residual - layer.codebook.decode(idx).to(residual.dtype)
            codes.append(idx.view(batch, length))
        return torch.stack(codes)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[n_q', B, T]`` (``n_q' <= n_q``) -> summed codewords ``[B, dim, T]``."""
        if codes.dim() != 3 or codes.size(0) > self.n_q:
            raise ValueError(
                f"codes must be [n_q<={self.n_q}, B, T], got shape {tuple(codes.shape)}"
            )
        out: Tensor | None = None
        for layer_codes, layer in zip(codes, self.vq.layers, strict=False):
            assert isinstance(layer, VectorQuantizationLayer)
            part = layer.codebook.decode(layer_codes)
            out = part if out is None else out + part
        assert out is not None
        return out.transpose(1, 2)
