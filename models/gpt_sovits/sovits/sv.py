"""Speaker embedding for v2Pro/v2ProPlus: Kaldi fbank + ERes2NetV2 (w24, s4, expansion 4).

GPT-SoVITS v2Pro conditions its style vector on ``forward3`` of 3D-Speaker's ERes2NetV2
(``pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt``, a plain ``state_dict``): the
bottom-up fused stage-3/4 feature map, flattened over channels x frequency and averaged over
time, a 20480-d vector. Input features are 80-bin Kaldi filterbanks of 16 kHz audio with
dither off (:func:`kaldi_fbank`, written here because torchaudio is not available).

Module and parameter names follow the official ``ERes2NetV2`` so its checkpoint loads with
``load_state_dict``; the classifier head (``seg_1``) is kept for that reason and exposed as the
192-d :meth:`ERes2NetV2.embedding`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SV_SAMPLE_RATE = 16000
FBANK_BINS = 80

# Kaldi fbank defaults (25 ms Povey window, 10 ms shift, 512-point FFT at 16 kHz, 0.97
# pre-emphasis, DC removal, power spectrum, 20 Hz .. Nyquist mel range, log floored at
# float32 epsilon), as torchaudio.compliance.kaldi.fbank applies them.
_FRAME_LENGTH = 400
_FRAME_SHIFT = 160
_PADDED_LENGTH = 512
_PREEMPHASIS = 0.97
_LOW_FREQ = 20.0
_POVEY_POWER = 0.85


def kaldi_fbank(waveform: Tensor, n_mels: int = FBANK_BINS) -> Tensor:
    """Kaldi-compatible log mel filterbank of 16 kHz audio (``dither=0``, ``snip_edges``).

    ``waveform [N]`` or ``[B, N]`` (float, unscaled) -> ``[B, 1 + (N - 400) // 160, n_mels]``.
    """
    if not waveform.is_floating_point():
        raise ValueError(f"waveform must be a float tensor, got {waveform.dtype}")
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise ValueError(f"waveform must be [N] or [B, N], got shape {tuple(waveform.shape)}")
    if waveform.size(1) < _FRAME_LENGTH:
        raise ValueError(
            f"waveform of {waveform.size(1)} samples is shorter than one 25 ms frame "
            f"({_FRAME_LENGTH} samples at {SV_SAMPLE_RATE} Hz)"
        )
    frames = waveform.unfold(-1, _FRAME_LENGTH, _FRAME_SHIFT)  # [B, M, 400]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)  # x[-1] := x[0]
    frames = frames - _PREEMPHASIS * previous
    window = torch.hann_window(
        _FRAME_LENGTH, periodic=False, dtype=frames.dtype, device=frames.device
    ).pow(_POVEY_POWER)
    frames = F.pad(frames * window, (0, _PADDED_LENGTH - _FRAME_LENGTH))
    power = torch.fft.rfft(frames).abs().pow(2)  # [B, M, 257]
    banks = _kaldi_mel_banks(n_mels).to(device=power.device, dtype=power.dtype)
    energies = power @ banks.t()
    return torch.clamp(energies, min=torch.finfo(energies.dtype).eps).log()


def _kaldi_mel_banks(n_mels: int) -> Tensor:
    """Kaldi's triangular filters on the HTK mel scale, ``[n_mels, 257]`` (last bin unused)."""

    def mel(hz: Tensor) -> Tensor:
        return 1127.0 * torch.log1p(hz / 700.0)

    n_fft_bins = _PADDED_LENGTH // 2
    low = mel(torch.tensor(_LOW_FREQ, dtype=torch.float64))
    high = mel(torch.tensor(SV_SAMPLE_RATE / 2, dtype=torch.float64))
    delta = (high - low) / (n_mels + 1)
    index = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)
    left, center, right = low + index * delta, low + (index + 1) * delta, low + (index + 2) * delta
    bin_mel = mel(torch.arange(n_fft_bins, dtype=torch.float64) * (SV_SAMPLE_RATE / _PADDED_LENGTH))
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).to(torch.float32)


class _ClippedReLU(nn.Hardtanh):
    """ReLU clipped at 20, the residual blocks' activation."""

    def __init__(self) -> None:
        super().__init__(0.0, 20.0)


class AFF(nn.Module):
    """Attentional feature fusion of two equally shaped maps ``[B, C, F, T]``."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        inner = channels // reduction
        self.local_att = nn.Sequential(
            nn.Conv2d(channels * 2, inner, kernel_size=1),
            nn.BatchNorm2d(inner),
            nn.SiLU(),
            nn.Conv2d(inner, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor, other: Tensor) -> Tensor:
        weight = 1.0 + torch.tanh(self.local_att(torch.cat([x, other], dim=1)))  # in [0, 2]
        return x * weight + other * (2.0 - weight)


class ERes2NetV2Block(nn.Module):
    """Res2Net bottleneck: the ``scale`` channel groups feed each other hierarchically.

    Group ``i`` adds (plain blocks) or AFF-fuses (``fuse=True``) the previous group's output
    before its 3x3 conv.
    """

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        base_width: int,
        scale: int,
        expansion: int,
        fuse: bool,
    ) -> None:
        super().__init__()
        width = math.floor(planes * base_width / 64.0)
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * scale, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(scale)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        self.fuse_models = nn.ModuleList(AFF(width) for _ in range(scale - 1)) if fuse else None
        self.relu = _ClippedReLU()
        self.conv3 = nn.Conv2d(width * scale, planes * expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * expansion),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_planes, F, T]`` -> ``[B, planes * expansion, F / stride, T / stride]``."""
        groups = self.relu(self.bn1(self.conv1(x))).split(self.width, dim=1)
        outputs: list[Tensor] = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i == 0:
                sp = groups[0]
            elif self.fuse_models is None:
                sp = sp + groups[i]
            else:
                sp = self.fuse_models[i - 1](sp, groups[i])
            sp = self.relu(bn(conv(sp)))
            outputs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outputs, dim=1)))
        return self.relu(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    """ERes2NetV2 speaker encoder over ``[B, T, 80]`` fbank features.

    Defaults are the GPT-SoVITS v2Pro configuration (``m_channels`` 64, ``base_width`` 24,
    ``scale`` 4, ``expansion`` 4, blocks ``[3, 4, 6, 3]``, 192-d head).
    """

    def __init__(
        self,
        feat_dim: int = FBANK_BINS,
        m_channels: int = 64,
        base_width: int = 24,
        scale: int = 4,
        expansion: int = 4,
        num_blocks: tuple[int, int, int, int] = (3, 4, 6, 3),
        embedding_size: int = 192,
    ) -> None:
        super().__init__()
        if feat_dim % 8:
            raise ValueError(f"feat_dim must be a multiple of 8, got {feat_dim}")
        self.feat_dim = feat_dim
        self._block_args = (base_width, scale, expansion)
        self._in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self._make_layer(m_channels, num_blocks[0], 1, fuse=False)
        self.layer2 = self._make_layer(m_channels * 2, num_blocks[1], 2, fuse=False)
        self.layer3 = self._make_layer(m_channels * 4, num_blocks[2], 2, fuse=True)
        self.layer4 = self._make_layer(m_channels * 8, num_blocks[3], 2, fuse=True)
        top = m_channels * 8 * expansion
        self.layer3_ds = nn.Conv2d(
            m_channels * 4 * expansion, top, 3, padding=1, stride=2, bias=False
        )
        self.fuse34 = AFF(top)
        # Stage 4 keeps feat_dim / 8 frequency rows: that times its channels is the pooled size.
        self.pooled_dim = feat_dim // 8 * top
        self.seg_1 = nn.Linear(2 * self.pooled_dim, embedding_size)

    def _make_layer(self, planes: int, blocks: int, stride: int, *, fuse: bool) -> nn.Sequential:
        base_width, scale, expansion = self._block_args
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            layers.append(
                ERes2NetV2Block(
                    self._in_planes, planes, block_stride, base_width, scale, expansion, fuse
                )
            )
            self._in_planes = planes * expansion
        return nn.Sequential(*layers)

    def feature_map(self, fbank: Tensor) -> Tensor:
        """``fbank [B, T, F]`` -> fused stage-3/4 map ``[B, C, F / 8, T']``."""
        if fbank.dim() != 3 or fbank.size(2) != self.feat_dim:
            raise ValueError(f"fbank must be [B, T, {self.feat_dim}], got {tuple(fbank.shape)}")
        x = fbank.transpose(1, 2).unsqueeze(1)  # [B, 1, F, T]
        x = F.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(x)))
        out4 = self.layer4(out3)
        return self.fuse34(out4, self.layer3_ds(out3))

    def pooled_features(self, fbank: Tensor) -> Tensor:
        """``fbank [B, T, F]`` -> ``[B, pooled_dim]`` (20480-d): the v2Pro ``sv_emb`` input.

        This is the official ``forward3``: time-mean of the fused map, channels x frequency
        flattened.
        """
        return self.feature_map(fbank).flatten(1, 2).mean(-1)

    def embedding(self, fbank: Tensor) -> Tensor:
        """``fbank [B, T, F]`` -> 192-d speaker embedding (mean+std pooling, ``seg_1``)."""
        fused = self.feature_map(fbank).flatten(1, 2)
        stats = torch.cat([fused.mean(-1), torch.sqrt(fused.var(-1) + 1e-8)], dim=1)
        return self.seg_1(stats)


class SpeakerEmbedder(nn.Module):
    """16 kHz mono audio -> the 20480-d v2Pro speaker embedding (``[B, 20480]``)."""

    def __init__(self, encoder: ERes2NetV2 | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else ERes2NetV2()

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping[str, Tensor] | str | os.PathLike[str],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> SpeakerEmbedder:
        """Load ``pretrained_eres2netv2w24s4ep4.ckpt`` (a path or its loaded state dict)."""
        if not isinstance(state, Mapping):
            loaded = torch.load(state, map_location="cpu", weights_only=True)
            if not isinstance(loaded, Mapping):
                raise ValueError(f"{state}: expected an ERes2NetV2 state dict")
            state = loaded
        encoder = ERes2NetV2()
        try:
            encoder.load_state_dict(dict(state), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"not an ERes2NetV2 w24s4 state dict: {exc}") from exc
        return cls(encoder).to(device=device, dtype=dtype).eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, waveform_16k: Tensor) -> Tensor:
        """``waveform_16k [N]`` or ``[B, N]`` in [-1, 1] -> ``[B, 20480]``."""
        param = self.encoder.conv1.weight
        feats = kaldi_fbank(waveform_16k.to(device=param.device, dtype=torch.float32))
        return self.encoder.pooled_features(feats.to(param.dtype))
