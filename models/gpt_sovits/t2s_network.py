"""The GPT-SoVITS text-to-semantic transformer ("GPT", s1), written from its published shapes.

Module and parameter names follow the official `Text2SemanticDecoder` so that an official
state dict (with its `model.` prefix removed) loads with `strict=True`:

    bert_proj                      Linear(1024 -> D)
    ar_text_embedding.word_embeddings / ar_audio_embedding.word_embeddings
    ar_text_position.alpha / ar_audio_position.alpha      learnable scale of the sine table
    h.layers.N.{self_attn.in_proj_weight [3D, D], self_attn.in_proj_bias,
                self_attn.out_proj, linear1 [4D, D], linear2, norm1, norm2}
    ar_predict_layer               Linear(D -> vocab), no bias

The network is a post-LayerNorm, ReLU transformer over the sequence `[text ; audio]`: text
positions attend to all (valid) text, audio positions attend to all text and causally to
audio. Decoding keeps keys/values in a preallocated `KVCache`; `decode_step` only uses fixed
shapes so that it can be captured in a CUDA graph.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BERT_DIM = 1024
LAYER_NORM_EPS = 1e-5
#: Attention kernels for full-sequence passes on CUDA (the prompt pass of every request).
#: cuDNN's, which PyTorch prefers on an H100, builds a plan for every new (rows, length) shape,
#: and each request's text gives a new length: on the full-size model (fp16, torch 2.11, H100)
#: a prompt pass of a new shape took 63-150 ms with it (the process's first two 613 and 957 ms)
#: and 7-16 ms without it; 7.4-10.0 ms against 5.5-6.4 ms once the shape was seen. The pass
#: runs on the scheduler's thread, so a plan also holds up every other request's decode steps.
#: Decode steps keep the default: their shapes are fixed and captured in graphs at warm-up.
FULL_SEQUENCE_ATTENTION: tuple[SDPBackend, ...] = (
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
)
#: `sdpa_kernel` switches process-wide flags and puts back what it found on exit, so passes in
#: several threads (one scheduler per GPT file) take turns: otherwise one could put back
#: another's setting and leave cuDNN off, or on, for good. (Attention elsewhere that runs
#: during a pass gets the same kernels as the pass: a choice of kernel, not of result.)
_ATTENTION_SWITCH = threading.Lock()


@dataclass(frozen=True)
class T2SConfig:
    """Shapes of a text-to-semantic model, read from a checkpoint's `config["model"]`."""

    hidden_dim: int
    n_head: int
    n_layer: int
    vocab_size: int
    phoneme_vocab_size: int
    eos: int
    max_sec: int = 54

    def __post_init__(self) -> None:
        if self.hidden_dim % self.n_head:
            raise ValueError(
                f"hidden_dim {self.hidden_dim} is not divisible by {self.n_head} heads"
            )
        if self.eos != self.vocab_size - 1:
            raise ValueError(f"EOS must be the last id ({self.vocab_size - 1}), got {self.eos}")
        if min(self.hidden_dim, self.n_head, self.n_layer, self.phoneme_vocab_size) <= 0:
            raise ValueError(f"non-positive model size in {self}")

    @property
    def ffn_dim(self) -> int:
        # The official class ignores `linear_units`: its feed-forward is always 4x wide.
        return 4 * self.hidden_dim

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.n_head

    @classmethod
    def from_checkpoint_config(cls, config: Mapping[str, Any]) -> T2SConfig:
        """Build from the whole checkpoint config (`model` section plus `data.max_sec`)."""
        model = config.get("model")
        if not isinstance(model, Mapping):
            raise ValueError("GPT config has no 'model' section")
        try:
            hidden, embedding = int(model["hidden_dim"]), int(model["embedding_dim"])
            values = {
                "hidden_dim": hidden,
                "n_head": int(model["head"]),
                "n_layer": int(model["n_layer"]),
                "vocab_size": int(model["vocab_size"]),
                "phoneme_vocab_size": int(model["phoneme_vocab_size"]),
                "eos": int(model["EOS"]),
            }
        except KeyError as exc:
            raise ValueError(f"GPT config 'model' section lacks {exc.args[0]!r}") from None
        if embedding != hidden:
            # Text/audio embeddings feed the transformer directly, so the two must agree.
            raise ValueError(f"embedding_dim {embedding} != hidden_dim {hidden} is not supported")
        data = config.get("data")
        max_sec = int(data.get("max_sec", 54)) if isinstance(data, Mapping) else 54
        return cls(**values, max_sec=max_sec)


class TokenEmbedding(nn.Module):
    """Lookup table; wrapped so the parameter is named `<module>.word_embeddings.weight`."""

    def __init__(self, dim: int, vocab: int) -> None:
        super().__init__()
        # Passing the weight skips Embedding's own normal_ init, whose meta-device version
        # costs seconds of lazy torch imports when the model is built on "meta" for loading.
        weight = torch.empty(vocab, dim)
        if not weight.is_meta:
            nn.init.normal_(weight)
        self.word_embeddings = nn.Embedding(vocab, dim, _weight=weight)

    def forward(self, ids: Tensor) -> Tensor:
        """(...) int64 -> (..., D)"""
        return self.word_embeddings(ids)


class SinePosition(nn.Module):
    """`x + alpha * pe[pos]`, pe with sin on even and cos on odd channels (no x scaling)."""

    def __init__(self, dim: int, initial_len: int = 4096) -> None:
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("pe", self._table(initial_len), persistent=False)
        self.pe: Tensor

    def _table(self, length: int) -> Tensor:
        # Float32 throughout, as in the official table, so large positions round the same way.
        # Always computed on the CPU: under a meta-device context these ops would pull in
        # torch's decomposition machinery (seconds of imports) for a table we rebuild anyway.
        cpu = torch.device("cpu")
        position = torch.arange(length, dtype=torch.float32, device=cpu).unsqueeze(1)
        steps = torch.arange(0, self.dim, 2, dtype=torch.float32, device=cpu)
        div = torch.exp(steps * -(math.log(10000.0) / self.dim))
        table = torch.zeros(length, self.dim, device=cpu)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div)
        return table

    def rebuild(self, device: torch.device | str) -> None:
        """Recompute the table on `device` (after building the module on the meta device)."""
        self.pe = self._table(self.pe.shape[0]).to(device)

    def ensure(self, length: int) -> None:
        """Grow the table so that positions < `length` exist (outside any captured graph)."""
        if length > self.pe.shape[0]:
            self.pe = self._table(max(length, 2 * self.pe.shape[0])).to(self.pe.device)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D), positions 0..T-1."""
        self.ensure(x.shape[1])
        return x + self.alpha * self.pe[: x.shape[1]].to(x.dtype)

    def at(self, x: Tensor, pos: Tensor) -> Tensor:
        """(B, 1, D) at the single position `pos` (0-dim int64 tensor) -> (B, 1, D)."""
        return x + self.alpha * self.pe.index_select(0, pos.view(1)).to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head attention with the fused `in_proj` layout of `nn.MultiheadAttention`.

    `in_proj_weight` rows are [query; key; value]; heads are contiguous slices of D/H.
    """

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T, D) -> three (B, H, T, D/H)."""
        b, t, _ = x.shape
        fused = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        # (B, T, 3, H, D/H) -> (3, B, H, T, D/H): the three projections, heads split out.
        q, k, v = fused.view(b, t, 3, self.n_head, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def merge(self, attn: Tensor) -> Tensor:
        """(B, H, T, D/H) -> out_proj -> (B, T, D)."""
        b, _, t, _ = attn.shape
        return self.out_proj(attn.transpose(1, 2).reshape(b, t, -1))


class EncoderLayer(nn.Module):
    """Post-norm transformer layer: x = LN1(x + attn(x)); x = LN2(x + FFN(x))."""

    def __init__(self, dim: int, n_head: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, n_head)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def finish(self, x: Tensor, attn: Tensor) -> Tensor:
        """Residual, norms and feed-forward after attention. (B, T, D) -> (B, T, D)."""
        x = self.norm1(x + self.self_attn.merge(attn))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class Encoder(nn.Module):
    """Holds the layers under the official name `h.layers`."""

    def __init__(self, config: T2SConfig) -> None:
        super().__init__()
        self.blocks = [
            EncoderLayer(config.hidden_dim, config.n_head, config.ffn_dim)
            for _ in range(config.n_layer)
        ]
        # Registered once under the official name; `blocks` keeps the precise type for callers.
        self.layers = nn.ModuleList(self.blocks)


@dataclass
class KVCache:
    """Preallocated keys/values for every layer, plus which slots may be attended to.

    Slot layout per row: `[text (text_len slots, left-padded) ; audio prompt ; generated]`.
    A token at audio position p lives in slot `text_len + p`.

    Attributes:
        k, v: (L, B, H, capacity, D/H).
        key_valid: (B, capacity) bool, False for left padding of shorter texts.
        text_len: 0-dim int64 tensor on the cache's device (padded text length).
    """

    k: Tensor
    v: Tensor
    key_valid: Tensor
    text_len: Tensor

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    def select_rows(self, rows: Tensor) -> KVCache:
        """Keep only `rows` (int64 indices), e.g. when finished sequences leave the batch."""
        return KVCache(
            k=self.k.index_select(1, rows),
            v=self.v.index_select(1, rows),
            key_valid=self.key_valid.index_select(0, rows),
            text_len=self.text_len,
        )


class Text2SemanticDecoder(nn.Module):
    """The AR model. Inputs: phoneme ids (B, Tx), BERT features (B, 1024, Tx), semantic ids."""

    def __init__(self, config: T2SConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.bert_proj = nn.Linear(BERT_DIM, d)
        self.ar_text_embedding = TokenEmbedding(d, config.phoneme_vocab_size)
        self.ar_text_position = SinePosition(d)
        self.ar_audio_embedding = TokenEmbedding(d, config.vocab_size)
        self.ar_audio_position = SinePosition(d)
        self.h = Encoder(config)
        self.ar_predict_layer = nn.Linear(d, config.vocab_size, bias=False)

    def load_official_state(
        self, state: dict[str, Tensor], *, device: torch.device | str, dtype: torch.dtype
    ) -> None:
        """Load an official state dict (names without `model.`) with `strict=True`.

        Tensors are copied to `device`/`dtype` and assigned in place of the current parameters,
        so the module may have been built on the meta device (no random init to pay for).
        """
        converted = {k: v.to(device=device, dtype=dtype, copy=True) for k, v in state.items()}
        self.load_state_dict(converted, strict=True, assign=True)
        self.ar_text_position.rebuild(device)
        self.ar_audio_position.rebuild(device)

    # ------------------------------------------------------------------ inputs

    def embed_text(self, phones: Tensor, bert: Tensor) -> Tensor:
        """Phones (B, Tx) int64 and BERT (B, 1024, Tx) -> (B, Tx, D) with positions 0..Tx-1."""
        if phones.dim() != 2 or bert.dim() != 3 or bert.shape[0] != phones.shape[0]:
            raise ValueError(
                f"expected phones (B, T) and bert (B, 1024, T), got "
                f"{tuple(phones.shape)} and {tuple(bert.shape)}"
            )
        if bert.shape[1] != BERT_DIM or bert.shape[2] != phones.shape[1]:
            raise ValueError(
                f"bert must be (B, {BERT_DIM}, {phones.shape[1]}) to match the phones, "
                f"got {tuple(bert.shape)}"
            )
        if phones.numel() and (
            int(phones.min()) < 0 or int(phones.max()) >= self.config.phoneme_vocab_size
        ):
            raise ValueError(
                f"phoneme ids must lie in [0, {self.config.phoneme_vocab_size}), "
                f"got [{int(phones.min())}, {int(phones.max())}]"
            )
        x = self.ar_text_embedding(phones) + self.bert_proj(
            bert.transpose(1, 2).to(self.bert_proj.weight.dtype)
        )
        return self.ar_text_position(x)

    def embed_audio(self, semantic: Tensor) -> Tensor:
        """Semantic ids (B, Ty) -> (B, Ty, D) with positions 0..Ty-1."""
        return self.ar_audio_position(self.ar_audio_embedding(semantic))

    # ------------------------------------------------------------------ full sequence

    @staticmethod
    def sequence_mask(text_len: int, audio_len: int, device: torch.device) -> Tensor:
        """(S, S) bool, True = may attend: text->text, audio->text, audio->earlier audio."""
        s = text_len + audio_len
        allowed = torch.ones(s, s, dtype=torch.bool, device=device)
        allowed[:text_len, text_len:] = False
        allowed[text_len:, text_len:] = torch.tril(
            torch.ones(audio_len, audio_len, dtype=torch.bool, device=device)
        )
        return allowed

    def run_layers(self, xy: Tensor, allowed: Tensor, cache: KVCache | None = None) -> Tensor:
        """Full-sequence pass. xy (B, S, D), allowed (B|1, 1, S, S) bool -> (B, S, D).

        With `cache`, keys/values of slots 0..S-1 are written into it.
        """
        if not xy.is_cuda:
            return self._full_sequence(xy, allowed, cache)
        # Every request brings a new (rows, length) shape here; see FULL_SEQUENCE_ATTENTION.
        with _ATTENTION_SWITCH, sdpa_kernel(list(FULL_SEQUENCE_ATTENTION)):
            return self._full_sequence(xy, allowed, cache)

    def _full_sequence(self, xy: Tensor, allowed: Tensor, cache: KVCache | None) -> Tensor:
        s = xy.shape[1]
        for i, layer in enumerate(self.h.blocks):
            q, k, v = layer.self_attn.qkv(xy)
            if cache is not None:
                cache.k[i, :, :, :s] = k
                cache.v[i, :, :, :s] = v
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            xy = layer.finish(xy, attn)
        return xy

    def teacher_forced_logits(
        self,
        phones: Tensor,
        phone_lens: Tensor,
        bert: Tensor,
        semantic: Tensor,
        semantic_lens: Tensor,
    ) -> Tensor:
        """Training-style logits for right-padded batches.

        Args:
            phones: (B, Tx) int64, right-padded; phone_lens: (B,).
            bert: (B, 1024, Tx).
            semantic: (B, Ty) int64, right-padded; semantic_lens: (B,).
        Returns:
            (B, Ty + 1, vocab): column j is predicted at sequence position Tx - 1 + j, i.e. the
            logits for target j of `semantic` followed by EOS (padding positions included, fed
            EOS as input, exactly like the official training path).
        """
        tx, ty = phones.shape[1], semantic.shape[1]
        device = phones.device
        x = self.embed_text(phones, bert)
        y_pad = torch.arange(ty, device=device)[None, :] >= semantic_lens[:, None]
        y_in = semantic.masked_fill(y_pad, self.config.eos)
        xy = torch.cat([x, self.embed_audio(y_in)], dim=1)
        x_valid = torch.arange(tx, device=device)[None, :] < phone_lens[:, None]
        key_valid = torch.cat([x_valid, ~y_pad], dim=1)
        allowed = self.sequence_mask(tx, ty, device)[None] & key_valid[:, None, :]
        out = self.run_layers(xy, allowed[:, None])
        return self.ar_predict_layer(out[:, tx - 1 :])

    # ------------------------------------------------------------------ decoding

    def new_cache(
        self, batch: int, capacity: int, *, device: torch.device, dtype: torch.dtype
    ) -> KVCache:
        c = self.config
        shape = (c.n_layer, batch, c.n_head, capacity, c.head_dim)
        return KVCache(
            k=torch.zeros(shape, device=device, dtype=dtype),
            v=torch.zeros(shape, device=device, dtype=dtype),
            key_valid=torch.zeros(batch, capacity, dtype=torch.bool, device=device),
            text_len=torch.zeros((), dtype=torch.int64, device=device),
        )

    def prefill(
        self, x: Tensor, x_valid: Tensor | None, prompt: Tensor | None, capacity: int
    ) -> tuple[KVCache, Tensor]:
        """Run `[text ; prompt]` once and fill a fresh cache.

        Args:
            x: (B, Tx, D) text embeddings (`embed_text`), left-padded with zero rows if needed.
            x_valid: (B, Tx) bool, False on padding; None when no row is padded.
            prompt: (B, Ty) semantic ids, or None for reference-free decoding.
            capacity: cache slots to allocate (>= Tx + Ty + number of decode steps).
        Returns:
            The cache and the logits (B, vocab) of the last position.
        """
        b, tx, _ = x.shape
        ty = 0 if prompt is None else prompt.shape[1]
        if capacity < tx + ty + 1:
            raise ValueError(f"cache capacity {capacity} < text {tx} + prompt {ty} + 1")
        xy = x if prompt is None else torch.cat([x, self.embed_audio(prompt)], dim=1)
        cache = self.new_cache(b, capacity, device=x.device, dtype=x.dtype)
        cache.text_len.fill_(tx)
        valid = (
            x_valid if x_valid is not None else torch.ones(b, tx, dtype=torch.bool, device=x.device)
        )
        cache.key_valid[:, :tx] = valid
        cache.key_valid[:, tx:] = True  # later slots are gated by position in decode_step
        allowed = self.sequence_mask(tx, ty, x.device)[None] & cache.key_valid[:, None, : tx + ty]
        out = self.run_layers(xy, allowed[:, None], cache)
        self.ar_audio_position.ensure(capacity)
        return cache, self.ar_predict_layer(out[:, -1])

    def decode_step(
        self, cache: KVCache, tokens: Tensor, pos: Tensor, kv_len: int | None = None
    ) -> Tensor:
        """Feed one token per row and return the next logits.

        Args:
            cache: filled by `prefill` (and earlier steps); updated in place.
            tokens: (B,) int64, the token at audio position `pos`.
            pos: 0-dim int64 tensor on the cache's device: the audio position of `tokens`
                (prompt length + step index). Its slot is `cache.text_len + pos`.
            kv_len: eager-mode shortcut: attend only to the first `kv_len` slots (must be
                slot + 1). None attends over the whole capacity with a mask, so every shape is
                fixed and the step can be captured in a CUDA graph.
        Returns:
            (B, vocab) logits.
        """
        slot = cache.text_len + pos
        xy = self.ar_audio_position.at(self.ar_audio_embedding(tokens[:, None]), pos)
        span = cache.capacity if kv_len is None else kv_len
        positions = torch.arange(span, device=tokens.device)
        allowed = (cache.key_valid[:, :span] & (positions <= slot))[:, None, None, :]
        index = slot.view(1)
        for i, layer in enumerate(self.h.blocks):
            q, k, v = layer.self_attn.qkv(xy)
            cache.k[i].index_copy_(2, index, k)
            cache.v[i].index_copy_(2, index, v)
            keys, values = cache.k[i, :, :, :span], cache.v[i, :, :, :span]
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
            xy = layer.finish(xy, attn)
        return self.ar_predict_layer(xy[:, -1])
