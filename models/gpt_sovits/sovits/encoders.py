"""Prior encoder ``enc_p``: semantic tokens + phonemes + style -> prior mean and log-scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attentions import RelativeTransformerEncoder
from .config import ATTENTION_WINDOW, MRTE_HEADS, MRTE_HIDDEN, SSL_DIM, SoVITSConfig
from .mrte import MRTE


def sequence_mask(lengths: Tensor, max_length: int, dtype: torch.dtype) -> Tensor:
    """``lengths [B]`` -> ``[B, 1, max_length]`` with 1 on the first ``lengths[b]`` frames."""
    steps = torch.arange(max_length, device=lengths.device)
    return (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(dtype)


class TextEncoder(nn.Module):
    """Content branch (``ssl_proj`` + ``encoder_ssl``), text branch (``text_embedding`` +
    ``encoder_text``), their MRTE fusion, ``encoder2`` and the ``proj`` to prior statistics.

    The SSL and post-fusion encoders have ``n_layers // 2`` layers, the text encoder
    ``n_layers``.
    """

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        hidden = config.hidden_channels
        self.out_channels = config.inter_channels

        def encoder(n_layers: int) -> RelativeTransformerEncoder:
            return RelativeTransformerEncoder(
                hidden,
                config.filter_channels,
                config.n_heads,
                n_layers,
                config.kernel_size,
                ATTENTION_WINDOW,
            )

        self.ssl_proj = nn.Conv1d(SSL_DIM, hidden, 1)
        self.encoder_ssl = encoder(config.n_layers // 2)
        self.encoder_text = encoder(config.n_layers)
        self.text_embedding = nn.Embedding(config.n_symbols, hidden)
        self.mrte = MRTE(hidden, MRTE_HIDDEN, MRTE_HEADS)
        self.encoder2 = encoder(config.n_layers // 2)
        self.proj = nn.Conv1d(hidden, 2 * config.inter_channels, 1)

    def forward(
        self,
        content: Tensor,
        content_lengths: Tensor,
        phones: Tensor,
        phone_lengths: Tensor,
        ge_text: Tensor,
        speed: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode one batch.

        Args:
            content: codebook vectors at latent rate, ``[B, 768, Ty]``.
            content_lengths: valid frames per item, ``[B]``.
            phones: phoneme ids, ``[B, Tt]``.
            phone_lengths: valid phonemes per item, ``[B]``.
            ge_text: style vector for MRTE, ``[B|1, 512, 1]``.
            speed: > 1 shortens the latent (faster speech) by linear interpolation.

        Returns:
            ``x [B, H, Ty']``, ``m_p [B, inter, Ty']``, ``logs_p [B, inter, Ty']`` and
            ``y_mask [B, 1, Ty']``. At speed 1 ``Ty' = Ty``; otherwise each item's length ``n``
            becomes ``int(n / speed) + 1`` and ``Ty'`` is the longest.
        """
        y_mask = sequence_mask(content_lengths, content.size(2), content.dtype)
        y = self.ssl_proj(content * y_mask) * y_mask
        y = self.encoder_ssl(y, y_mask)

        text_mask = sequence_mask(phone_lengths, phones.size(1), y.dtype)
        text = self.text_embedding(phones).transpose(1, 2)
        text = self.encoder_text(text * text_mask, text_mask)

        y = self.mrte(y, y_mask, text, text_mask, ge_text)
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            y, y_mask = _change_speed(y, content_lengths, speed)
        stats = self.proj(y) * y_mask
        m_p, logs_p = stats.split(self.out_channels, dim=1)
        return y, m_p, logs_p, y_mask


def _change_speed(y: Tensor, lengths: Tensor, speed: float) -> tuple[Tensor, Tensor]:
    """Linearly resample each item's valid frames to ``int(length / speed) + 1`` frames.

    For an unpadded item this is exactly the official whole-tensor interpolation. Items of a
    padded batch are stretched one by one (the official batched decode stretches the padded
    tensor as a whole), so every item matches its solo decode.
    """
    sizes = [int(n / speed) + 1 for n in lengths.tolist()]
    if all(n == y.size(-1) for n in lengths.tolist()):
        out = F.interpolate(y, size=sizes[0], mode="linear")
    else:
        out = y.new_zeros(y.size(0), y.size(1), max(sizes))
        for item, (n, size) in enumerate(zip(lengths.tolist(), sizes, strict=True)):
            out[item, :, :size] = F.interpolate(
                y[item : item + 1, :, :n], size=size, mode="linear"
            )[0]
    new_lengths = torch.tensor(sizes, device=y.device)
    return out, sequence_mask(new_lengths, out.size(-1), y.dtype)
