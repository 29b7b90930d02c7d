"""Multi-reference timbre encoder (MRTE): content frames attend to the phoneme sequence.

The content (SSL) stream queries the text stream with plain cross-attention at 512 channels,
adds the global style vector, and projects back to the encoder width.
"""

from __future__ import annotations

from torch import Tensor, nn

from .attentions import MultiHeadAttention


class MRTE(nn.Module):
    """``cross_attention`` + ``c_pre``/``text_pre`` (in) + ``c_post`` (out) projections."""

    def __init__(self, content_channels: int, hidden_channels: int, n_heads: int) -> None:
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden_channels, hidden_channels, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden_channels, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden_channels, 1)
        self.c_post = nn.Conv1d(hidden_channels, content_channels, 1)

    def forward(
        self, ssl_enc: Tensor, ssl_mask: Tensor, text: Tensor, text_mask: Tensor, ge: Tensor
    ) -> Tensor:
        """Fuse content and text.

        ``ssl_enc [B, C, Ty]``, ``ssl_mask [B, 1, Ty]``, ``text [B, C, Tt]``,
        ``text_mask [B, 1, Tt]``, ``ge [B|1, hidden, 1]`` -> ``[B, C, Ty]``.
        """
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # [B, 1, Ty, Tt]
        content = self.c_pre(ssl_enc * ssl_mask)
        text_enc = self.text_pre(text * text_mask)
        x = self.cross_attention(content * ssl_mask, text_enc * text_mask, attn_mask)
        x = x + content + ge
        return self.c_post(x * ssl_mask)
