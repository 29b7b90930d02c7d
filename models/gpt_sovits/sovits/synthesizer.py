"""``SynthesizerTrn``: the SoVITS synthesizer of GPT-SoVITS v1/v2/v2Pro/v2ProPlus, inference only.

Data flow of :meth:`SynthesizerTrn.decode`::

    codes -> codebook lookup -> nearest x2 (25 -> 50 Hz) --\\
    phones ------------------------------------------------> enc_p (MRTE gets ge / ge_to512(ge))
    reference spectrograms -> ref_enc (+ sv_emb, prelu) -> ge
    enc_p -> m_p, logs_p -> z_p = m_p + noise * exp(logs_p) * noise_scale
          -> flow (inverse, conditioned on ge) -> z -> dec (conditioned on ge) -> 32 kHz audio

The posterior encoder ``enc_q`` only serves training and is not built: fine-tuned files do not
contain it, and pretrained files that do have it dropped on load.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import SoVITSCheckpoint, init_device, load_sovits_checkpoint
from ..errors import UnsupportedCheckpointError
from .config import (
    CODEBOOK_SIZE,
    FLOW_COUPLINGS,
    FLOW_WN_DILATION_RATE,
    FLOW_WN_KERNEL,
    FLOW_WN_LAYERS,
    N_QUANTIZERS,
    PRO_TEXT_CONDITION_DIM,
    SSL_DIM,
    STYLE_HEADS,
    STYLE_HIDDEN,
    STYLE_KERNEL,
    SV_EMBEDDING_DIM,
    SoVITSConfig,
)
from .encoders import TextEncoder
from .flow import CouplingFlow
from .generator import Generator
from .quantizer import ResidualVectorQuantizer
from .style_encoder import MelStyleEncoder

TRAINING_ONLY_PREFIX = "enc_q."
# The HuBERT -> token path stays float32 whatever the model dtype: semantic tokens are discrete,
# and bfloat16 weights would move some frames to another codeword.
FLOAT32_PREFIXES = ("ssl_proj.", "quantizer.")


class SoVITSInputError(ValueError):
    """An input tensor to the synthesizer has the wrong shape, dtype or range."""


@dataclass(frozen=True, slots=True)
class DecodeIntermediates:
    """Tensors along the decode path, for parity checks and debugging (shapes for ``B`` items).

    ``ge_per_ref`` is ``None`` when a precomputed ``ge`` was passed in.
    """

    ge_per_ref: tuple[Tensor, ...] | None  # each [1, gin, 1]
    ge: Tensor  # [B|1, gin, 1], conditions flow and generator
    ge_text: Tensor  # [B|1, 512, 1], conditions MRTE (== ge before v2Pro)
    quantized: Tensor  # codebook vectors at latent rate, [B, 768, Ty]
    enc_p_x: Tensor  # [B, hidden, Ty']
    m_p: Tensor  # [B, inter, Ty']
    logs_p: Tensor  # [B, inter, Ty']
    y_mask: Tensor  # [B, 1, Ty']
    z_p: Tensor  # [B, inter, Ty']
    z: Tensor  # [B, inter, Ty']
    dec_in: Tensor  # z * y_mask, [B, inter, Ty']


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """Audio ``[B, 1, N]``, valid samples per item ``[B]`` and the intermediates."""

    audio: Tensor
    audio_lengths: Tensor
    intermediates: DecodeIntermediates


class SynthesizerTrn(nn.Module):
    """SoVITS synthesizer with official state-dict names (``enc_p``, ``dec``, ``flow``, ...).

    Build it from a checkpoint with :meth:`from_checkpoint`, or from a :class:`SoVITSConfig`
    for random weights (benchmarks, shape checks). All public methods run under
    ``torch.inference_mode``.
    """

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        self.config = config
        gin = config.gin_channels
        self.enc_p = TextEncoder(config)
        self.dec = Generator(
            config.inter_channels,
            config.resblock_kernel_sizes,
            config.resblock_dilation_sizes,
            config.upsample_rates,
            config.upsample_initial_channel,
            config.upsample_kernel_sizes,
            gin,
        )
        self.flow = CouplingFlow(
            config.inter_channels,
            config.hidden_channels,
            FLOW_WN_KERNEL,
            FLOW_WN_DILATION_RATE,
            FLOW_WN_LAYERS,
            FLOW_COUPLINGS,
            gin,
        )
        self.ref_enc = MelStyleEncoder(
            config.reference_bins, gin, STYLE_HIDDEN, STYLE_KERNEL, STYLE_HEADS
        )
        stride = config.latent_upsampling  # 25 Hz tokens: pairs of 50 Hz SSL frames
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(SSL_DIM, CODEBOOK_SIZE, N_QUANTIZERS)
        self.sv_emb: nn.Linear | None = None
        self.ge_to512: nn.Linear | None = None
        self.prelu: nn.PReLU | None = None
        if config.is_pro:
            self.sv_emb = nn.Linear(SV_EMBEDDING_DIM, gin)
            self.ge_to512 = nn.Linear(gin, PRO_TEXT_CONDITION_DIM)
            self.prelu = nn.PReLU(num_parameters=gin)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: SoVITSCheckpoint | str | os.PathLike[str] | bytes,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> SynthesizerTrn:
        """Build the network a SoVITS ``.pth`` describes and load its weights.

        ``checkpoint`` is a loaded :class:`SoVITSCheckpoint` or anything
        ``load_sovits_checkpoint`` accepts. Weights (float16 on disk) are cast to ``dtype``,
        except the token path (``ssl_proj``, ``quantizer``), which stays float32. The model
        comes back in eval mode without gradients.
        """
        if not isinstance(checkpoint, SoVITSCheckpoint):
            checkpoint = load_sovits_checkpoint(checkpoint)
        if checkpoint.is_lora:
            raise UnsupportedCheckpointError(
                f"{checkpoint.path or 'checkpoint'} is a {checkpoint.version} LoRA file; "
                "SynthesizerTrn runs full v1/v2/v2Pro/v2ProPlus files only"
            )
        config = SoVITSConfig.from_hparams(checkpoint.config, version=checkpoint.version)
        with init_device(device, checkpoint.weights):  # the checkpoint provides every tensor
            model = cls(config)
        model.load_official_weights(checkpoint.weights, dtype=dtype, assign=True)
        return model.to(device=device).eval().requires_grad_(False)

    def load_official_weights(
        self,
        weights: Mapping[str, Tensor],
        *,
        dtype: torch.dtype | None = None,
        assign: bool = False,
    ) -> None:
        """Load an official state dict strictly, ignoring only training-only ``enc_q.*``.

        ``dtype`` casts the weights (the token path to float32, see :meth:`from_checkpoint`);
        ``assign`` adopts the given tensors instead of copying (for meta-device models).
        Raises ``ValueError`` naming the missing / unexpected / mis-shaped tensors.
        """
        wanted = self.state_dict()
        usable: dict[str, Tensor] = {}
        for name, tensor in weights.items():
            if name.startswith(TRAINING_ONLY_PREFIX):
                continue
            if dtype is not None:
                tensor = tensor.to(torch.float32 if name.startswith(FLOAT32_PREFIXES) else dtype)
            usable[name] = tensor
        missing = sorted(set(wanted) - set(usable))
        unexpected = sorted(set(usable) - set(wanted))
        misshaped = sorted(
            f"{name} {tuple(usable[name].shape)} (model {tuple(wanted[name].shape)})"
            for name in set(wanted) & set(usable)
            if usable[name].shape != wanted[name].shape
        )
        if missing or unexpected or misshaped:
            raise ValueError(
                f"weights do not fit a {self.config.version} SynthesizerTrn: "
                + "; ".join(
                    f"{label} {_preview(items)}"
                    for label, items in (
                        ("missing", missing),
                        ("unexpected", unexpected),
                        ("wrong shape", misshaped),
                    )
                    if items
                )
            )
        self.load_state_dict(usable, strict=True, assign=assign)

    # ------------------------------------------------------------- inference API

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @torch.inference_mode()
    def extract_latent(self, ssl_features: Tensor) -> Tensor:
        """HuBERT features ``[B, 768, T]`` (50 Hz) -> semantic codes ``[B, 1, T // 2]`` (int64).

        The layout ``[B, n_q, T']`` is the official one; TTS uses ``codes[0, 0]`` as the prompt.
        The projection and the codeword search run in float32 whatever the model's dtype.
        Items of a padded batch give valid codes for their first ``length // 2`` frames.
        """
        if ssl_features.dim() != 3 or ssl_features.size(1) != SSL_DIM:
            raise SoVITSInputError(
                f"ssl_features must be [B, {SSL_DIM}, T], got {tuple(ssl_features.shape)}"
            )
        if ssl_features.size(2) < self.config.latent_upsampling:
            raise SoVITSInputError("ssl_features are too short to produce one code")
        x = ssl_features.to(device=self._device, dtype=torch.float32)
        proj = self.ssl_proj
        bias = None if proj.bias is None else proj.bias.float()
        projected = F.conv1d(x, proj.weight.float(), bias, stride=proj.stride)
        return self.quantizer.encode(projected).transpose(0, 1)

    @torch.inference_mode()
    def reference_embedding(
        self,
        refer_specs: Sequence[Tensor],
        sv_emb: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Style vector ``ge [1, gin, 1]`` of one voice: the mean over its references.

        Args:
            refer_specs: linear spectrograms (``mel.reference_spectrogram``), each
                ``[1, 1025, T]`` or ``[1025, T]``.
            sv_emb: v2Pro/v2ProPlus only: one 20480-d speaker embedding per reference, as a
                ``[n_refs, 20480]`` tensor or a sequence of ``[20480]`` / ``[1, 20480]``.

        Cache the result per voice and pass it to :meth:`decode` as ``ge=``.
        """
        return torch.stack(self._ge_per_reference(refer_specs, sv_emb)).mean(0)

    @torch.inference_mode()
    def decode(
        self,
        codes: Tensor,
        text_phones: Tensor,
        refer_specs: Sequence[Tensor] | None = None,
        *,
        ge: Tensor | None = None,
        sv_emb: Tensor | Sequence[Tensor] | None = None,
        noise_scale: float = 0.5,
        speed: float = 1.0,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        code_lengths: Tensor | None = None,
        text_lengths: Tensor | None = None,
    ) -> Tensor:
        """Semantic codes + target phonemes + voice -> audio ``[B, 1, N]`` in [-1, 1].

        See :meth:`decode_detailed` for the arguments.
        """
        return self.decode_detailed(
            codes,
            text_phones,
            refer_specs,
            ge=ge,
            sv_emb=sv_emb,
            noise_scale=noise_scale,
            speed=speed,
            noise=noise,
            generator=generator,
            code_lengths=code_lengths,
            text_lengths=text_lengths,
        ).audio

    @torch.inference_mode()
    def decode_detailed(
        self,
        codes: Tensor,
        text_phones: Tensor,
        refer_specs: Sequence[Tensor] | None = None,
        *,
        ge: Tensor | None = None,
        sv_emb: Tensor | Sequence[Tensor] | None = None,
        noise_scale: float = 0.5,
        speed: float = 1.0,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        code_lengths: Tensor | None = None,
        text_lengths: Tensor | None = None,
        dec: Callable[[Tensor, Tensor, Tensor | None], Tensor] | None = None,
    ) -> DecodeResult:
        """Decode and also return the valid lengths and every intermediate tensor.

        Args:
            codes: semantic ids, ``[B, T]``, ``[T]`` or the official ``[1, B, T]``.
            text_phones: target-text phoneme ids, ``[B, Tt]`` or ``[Tt]``.
            refer_specs: the voice's reference spectrograms (see :meth:`reference_embedding`);
                give either these or ``ge``.
            ge: precomputed style vector(s), ``[1, gin, 1]`` (one voice for the batch) or
                ``[B, gin, 1]`` (one per item).
            sv_emb: v2Pro/v2ProPlus speaker embeddings, one per reference (with ``refer_specs``).
            noise_scale: scale of the prior sample (0 = deterministic; official default 0.5).
            speed: > 1 speaks faster; the latent length becomes ``int(Ty / speed) + 1``.
            noise: standard-normal draw shaped like ``m_p`` (``[B, inter, Ty']``) to use instead
                of sampling; makes noisy decodes reproducible across implementations.
            generator: RNG for the noise when ``noise`` is not given (on the model's device).
                A padded batch draws one tensor for the whole batch, so its noisy items differ
                from solo decodes with the same seed; pass ``noise`` to control them.
            code_lengths, text_lengths: valid lengths per item ``[B]`` for padded batches
                (default: full length). Items of a padded batch then decode exactly as they
                would alone (latent frames are stretched per item, and the generator sees zeros
                past each item's end); ``audio_lengths`` gives each item's valid samples and the
                audio past them is zero.
            dec: a stand-in for ``self.dec`` with the same contract (``x, g, x_mask`` ->
                audio), e.g. serving's ``FastGenerator``, which computes the same function
                faster on a GPU.
        """
        if not speed > 0:
            raise SoVITSInputError(f"speed must be > 0, got {speed}")
        if noise_scale < 0:
            raise SoVITSInputError(f"noise_scale must be >= 0, got {noise_scale}")
        codes = self._as_codes(codes)
        phones = self._as_phones(text_phones)
        batch = codes.size(1)
        if phones.size(0) != batch:
            raise SoVITSInputError(
                f"codes hold {batch} item(s) but text_phones hold {phones.size(0)}"
            )
        code_len = _lengths(code_lengths, batch, codes.size(2), "code_lengths", self._device)
        text_len = _lengths(text_lengths, batch, phones.size(1), "text_lengths", self._device)

        ge_per_ref: tuple[Tensor, ...] | None = None
        if ge is None:
            if refer_specs is None:
                raise SoVITSInputError("decode needs refer_specs or a precomputed ge")
            ge_per_ref = tuple(self._ge_per_reference(refer_specs, sv_emb))
            ge = torch.stack(ge_per_ref).mean(0)
        else:
            if refer_specs is not None or sv_emb is not None:
                raise SoVITSInputError("give either ge or refer_specs/sv_emb, not both")
            ge = self._check_ge(ge, batch)
        ge_text = self._text_condition(ge)

        quantized = self.quantizer.decode(codes).to(self._dtype)
        upsampling = self.config.latent_upsampling
        if upsampling > 1:
            quantized = quantized.repeat_interleave(upsampling, dim=-1)
        x, m_p, logs_p, y_mask = self.enc_p(
            quantized, code_len * upsampling, phones, text_len, ge_text, speed
        )
        if noise is not None:
            if noise.shape != m_p.shape:
                raise SoVITSInputError(
                    f"noise must have the prior's shape {tuple(m_p.shape)}, got "
                    f"{tuple(noise.shape)}"
                )
            z_p = m_p + noise.to(m_p) * torch.exp(logs_p) * noise_scale
        elif noise_scale > 0:
            draw = torch.randn(m_p.shape, generator=generator, device=m_p.device, dtype=m_p.dtype)
            z_p = m_p + draw * torch.exp(logs_p) * noise_scale
        else:
            z_p = m_p
        z = self.flow.inverse(z_p, y_mask, ge)
        dec_in = z * y_mask
        # Items shorter than the padded batch need the masked generator to match their solo
        # decode near the end; unpadded input skips the extra multiplications.
        padded = code_lengths is not None or text_lengths is not None
        audio = (dec or self.dec)(dec_in, ge, y_mask if padded else None)
        frames = (y_mask > 0).sum(dim=(1, 2))  # counted: a half-precision sum is not exact
        return DecodeResult(
            audio=audio,
            audio_lengths=frames * self.config.samples_per_frame,
            intermediates=DecodeIntermediates(
                ge_per_ref=ge_per_ref,
                ge=ge,
                ge_text=ge_text,
                quantized=quantized,
                enc_p_x=x,
                m_p=m_p,
                logs_p=logs_p,
                y_mask=y_mask,
                z_p=z_p,
                z=z,
                dec_in=dec_in,
            ),
        )

    # ---------------------------------------------------------------- helpers

    @property
    def _device(self) -> torch.device:
        return self.ssl_proj.weight.device

    @property
    def _dtype(self) -> torch.dtype:
        """Compute dtype of the decoder (the token path may be float32, see FLOAT32_PREFIXES)."""
        return self.enc_p.proj.weight.dtype

    def _ge_per_reference(
        self, refer_specs: Sequence[Tensor], sv_emb: Tensor | Sequence[Tensor] | None
    ) -> list[Tensor]:
        if isinstance(refer_specs, Tensor):
            raise SoVITSInputError("refer_specs must be a sequence of spectrograms, not a tensor")
        if len(refer_specs) == 0:
            raise SoVITSInputError("refer_specs is empty: give at least one reference")
        speaker = self._speaker_embeddings(sv_emb, len(refer_specs))
        out = []
        for index, spec in enumerate(refer_specs):
            spec = self._as_spectrogram(spec, index)
            ge = self.ref_enc(spec[:, : self.config.reference_bins])
            if speaker is not None:
                assert self.sv_emb is not None and self.prelu is not None
                ge = self.prelu(ge + self.sv_emb(speaker[index : index + 1]).unsqueeze(-1))
            out.append(ge)
        return out

    def _speaker_embeddings(
        self, sv_emb: Tensor | Sequence[Tensor] | None, n_refs: int
    ) -> Tensor | None:
        if not self.config.is_pro:
            if sv_emb is not None:
                raise SoVITSInputError(
                    f"{self.config.version} takes no speaker embedding (sv_emb); only "
                    "v2Pro/v2ProPlus do"
                )
            return None
        if sv_emb is None:
            raise SoVITSInputError(
                f"{self.config.version} needs one {SV_EMBEDDING_DIM}-d speaker embedding "
                "(sv_emb) per reference"
            )
        if isinstance(sv_emb, Tensor):
            stacked = sv_emb.reshape(-1, sv_emb.size(-1)) if sv_emb.dim() > 0 else sv_emb
        else:
            stacked = torch.cat([e.reshape(-1, e.size(-1)) for e in sv_emb])
        if stacked.dim() != 2 or stacked.shape != (n_refs, SV_EMBEDDING_DIM):
            raise SoVITSInputError(
                f"sv_emb must hold {n_refs} embedding(s) of {SV_EMBEDDING_DIM} values, one per "
                f"reference, got shape {tuple(stacked.shape)}"
            )
        return stacked.to(device=self._device, dtype=self._dtype)

    def _as_spectrogram(self, spec: Tensor, index: int) -> Tensor:
        bins = self.config.spec_channels
        if spec.dim() == 2:
            spec = spec.unsqueeze(0)
        if spec.dim() != 3 or spec.size(0) != 1 or spec.size(1) != bins or spec.size(2) < 1:
            raise SoVITSInputError(
                f"refer_specs[{index}] must be [1, {bins}, T] (or [{bins}, T]), got "
                f"{tuple(spec.shape)}"
            )
        return spec.to(device=self._device, dtype=self._dtype)

    def _check_ge(self, ge: Tensor, batch: int) -> Tensor:
        gin = self.config.gin_channels
        if ge.dim() != 3 or ge.size(1) != gin or ge.size(2) != 1 or ge.size(0) not in (1, batch):
            raise SoVITSInputError(
                f"ge must be [1, {gin}, 1] or [{batch}, {gin}, 1], got {tuple(ge.shape)}"
            )
        return ge.to(device=self._device, dtype=self._dtype)

    def _text_condition(self, ge: Tensor) -> Tensor:
        if self.ge_to512 is None:
            return ge
        return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2)

    def _as_codes(self, codes: Tensor) -> Tensor:
        if codes.dtype not in (torch.int64, torch.int32):
            raise SoVITSInputError(f"codes must be an integer tensor, got {codes.dtype}")
        if codes.dim() == 1:
            codes = codes.view(1, 1, -1)
        elif codes.dim() == 2:
            codes = codes.unsqueeze(0)
        if codes.dim() != 3 or codes.size(0) != N_QUANTIZERS or codes.size(2) == 0:
            raise SoVITSInputError(
                f"codes must be [B, T], [T] or [{N_QUANTIZERS}, B, T] with T > 0, got "
                f"{tuple(codes.shape)}"
            )
        _check_range(codes, CODEBOOK_SIZE, "codes")
        return codes.to(device=self._device, dtype=torch.int64)

    def _as_phones(self, phones: Tensor) -> Tensor:
        if phones.dtype not in (torch.int64, torch.int32):
            raise SoVITSInputError(f"text_phones must be an integer tensor, got {phones.dtype}")
        if phones.dim() == 1:
            phones = phones.unsqueeze(0)
        if phones.dim() != 2 or phones.size(1) == 0:
            raise SoVITSInputError(
                f"text_phones must be [B, Tt] or [Tt] with Tt > 0, got {tuple(phones.shape)}"
            )
        _check_range(phones, self.config.n_symbols, "text_phones")
        return phones.to(device=self._device, dtype=torch.int64)


def _check_range(ids: Tensor, size: int, name: str) -> None:
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= size:
        raise SoVITSInputError(f"{name} must lie in [0, {size}), got values in [{low}, {high}]")


def _lengths(
    lengths: Tensor | None, batch: int, full: int, name: str, device: torch.device
) -> Tensor:
    if lengths is None:
        return torch.full((batch,), full, dtype=torch.int64, device=device)
    if lengths.shape != (batch,):
        raise SoVITSInputError(f"{name} must have shape ({batch},), got {tuple(lengths.shape)}")
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > full:
        raise SoVITSInputError(f"{name} must lie in [1, {full}], got values in [{low}, {high}]")
    return lengths.to(device=device, dtype=torch.int64)


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}]{more}"
