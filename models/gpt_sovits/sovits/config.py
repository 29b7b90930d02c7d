"""Architecture hyper-parameters of the SoVITS synthesizer (v1, v2, v2Pro, v2ProPlus).

The official files store the training ``HParams`` tree; only ``model`` and a few ``data`` fields
shape the network. Everything the official code hard-codes (MRTE width, flow depth, reference
encoder size, relative-attention window) lives here as named constants so that the modules never
hide magic numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

SUPPORTED_VERSIONS: Final = ("v1", "v2", "v2Pro", "v2ProPlus")
PRO_VERSIONS: Final = frozenset({"v2Pro", "v2ProPlus"})

SSL_DIM: Final = 768  # chinese-hubert-base hidden size
CODEBOOK_SIZE: Final = 1024
N_QUANTIZERS: Final = 1
V1_SYMBOLS: Final = 322
V2_SYMBOLS: Final = 732
V2_REFERENCE_BINS: Final = 704  # v2+ reference encoder sees only the lowest 704 of 1025 bins
MRTE_HIDDEN: Final = 512
MRTE_HEADS: Final = 4
ATTENTION_WINDOW: Final = 4
FLOW_COUPLINGS: Final = 4
FLOW_WN_KERNEL: Final = 5
FLOW_WN_DILATION_RATE: Final = 1
FLOW_WN_LAYERS: Final = 4
STYLE_HIDDEN: Final = 128
STYLE_KERNEL: Final = 5
STYLE_HEADS: Final = 2
SV_EMBEDDING_DIM: Final = 20480  # ERes2NetV2 w24s4 pooled feature size
PRO_TEXT_CONDITION_DIM: Final = 512  # MRTE keeps 512-d conditioning when gin grows to 1024


class SoVITSConfigError(ValueError):
    """The hyper-parameters cannot describe a supported SoVITS synthesizer."""


@dataclass(frozen=True, slots=True)
class SoVITSConfig:
    """Shape-defining hyper-parameters of :class:`SynthesizerTrn`.

    Build it from a checkpoint's config with :meth:`from_hparams`; the field names follow the
    official ``configs/s2*.json`` ``model`` section.
    """

    version: str
    spec_channels: int
    sampling_rate: int
    hop_length: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    gin_channels: int
    semantic_frame_rate: str = "25hz"

    def __post_init__(self) -> None:
        if self.version not in SUPPORTED_VERSIONS:
            raise SoVITSConfigError(
                f"SoVITS version {self.version!r} is not a SynthesizerTrn model; "
                f"supported: {', '.join(SUPPORTED_VERSIONS)}"
            )
        if self.semantic_frame_rate not in ("25hz", "50hz"):
            raise SoVITSConfigError(
                f"semantic_frame_rate must be '25hz' or '50hz', got {self.semantic_frame_rate!r}"
            )
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise SoVITSConfigError(
                f"upsample_rates {self.upsample_rates} and upsample_kernel_sizes "
                f"{self.upsample_kernel_sizes} must have the same length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise SoVITSConfigError(
                "resblock_kernel_sizes and resblock_dilation_sizes must have the same length"
            )
        if any(len(d) != 3 for d in self.resblock_dilation_sizes):
            raise SoVITSConfigError(
                f"resblock '1' needs three dilations per kernel, got {self.resblock_dilation_sizes}"
            )
        if self.hidden_channels % self.n_heads:
            raise SoVITSConfigError(
                f"hidden_channels {self.hidden_channels} is not divisible by n_heads {self.n_heads}"
            )
        if self.inter_channels % 2:
            raise SoVITSConfigError(f"inter_channels must be even, got {self.inter_channels}")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise SoVITSConfigError(
                f"upsample_initial_channel {self.upsample_initial_channel} cannot be halved "
                f"{len(self.upsample_rates)} times"
            )
        if self.is_pro and self.gin_channels <= 0:
            raise SoVITSConfigError(f"{self.version} needs gin_channels > 0")
        if not self.is_pro and self.gin_channels != MRTE_HIDDEN:
            # MRTE adds ge straight onto its 512-d hidden state in v1/v2.
            raise SoVITSConfigError(
                f"{self.version} needs gin_channels == {MRTE_HIDDEN}, got {self.gin_channels}"
            )

    @property
    def is_pro(self) -> bool:
        """v2Pro/v2ProPlus: the style vector mixes in an ERes2NetV2 speaker embedding."""
        return self.version in PRO_VERSIONS

    @property
    def n_symbols(self) -> int:
        return V1_SYMBOLS if self.version == "v1" else V2_SYMBOLS

    @property
    def reference_bins(self) -> int:
        """Linear-spectrogram bins the reference encoder reads (from the bottom)."""
        return self.spec_channels if self.version == "v1" else V2_REFERENCE_BINS

    @property
    def samples_per_frame(self) -> int:
        """Output samples per latent frame (the generator's total upsampling)."""
        return math.prod(self.upsample_rates)

    @property
    def latent_upsampling(self) -> int:
        """Latent frames per semantic token: 25 Hz tokens drive a 50 Hz latent."""
        return 2 if self.semantic_frame_rate == "25hz" else 1

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any], version: str | None = None) -> SoVITSConfig:
        """Read the official ``HParams`` tree (as nested dicts).

        ``version`` overrides what the tree says; pass the version detected from the file
        (v2Pro/v2ProPlus files may carry a stale ``model.version``).
        """
        model = _section(hparams, "model")
        data = _section(hparams, "data")
        chosen = version or model.get("version") or hparams.get("version")
        if not isinstance(chosen, str):
            raise SoVITSConfigError("the config names no model version and none was given")
        resblock = model.get("resblock", "1")
        if str(resblock) != "1":
            raise SoVITSConfigError(
                f"only resblock '1' exists in official SoVITS configs, got {resblock!r}"
            )
        filter_length = _int(data, "filter_length", "data")
        try:
            return cls(
                version=chosen,
                spec_channels=filter_length // 2 + 1,
                sampling_rate=_int(data, "sampling_rate", "data"),
                hop_length=_int(data, "hop_length", "data"),
                inter_channels=_int(model, "inter_channels", "model"),
                hidden_channels=_int(model, "hidden_channels", "model"),
                filter_channels=_int(model, "filter_channels", "model"),
                n_heads=_int(model, "n_heads", "model"),
                n_layers=_int(model, "n_layers", "model"),
                kernel_size=_int(model, "kernel_size", "model"),
                resblock_kernel_sizes=_ints(model, "resblock_kernel_sizes"),
                resblock_dilation_sizes=tuple(
                    tuple(int(d) for d in group)
                    for group in _list(model, "resblock_dilation_sizes")
                ),
                upsample_rates=_ints(model, "upsample_rates"),
                upsample_initial_channel=_int(model, "upsample_initial_channel", "model"),
                upsample_kernel_sizes=_ints(model, "upsample_kernel_sizes"),
                gin_channels=_int(model, "gin_channels", "model"),
                semantic_frame_rate=str(model.get("semantic_frame_rate", "25hz")),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SoVITSConfigError):
                raise
            raise SoVITSConfigError(f"malformed SoVITS model config: {exc}") from exc


def _section(hparams: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = hparams.get(name)
    if not isinstance(section, Mapping):
        raise SoVITSConfigError(f"the config has no {name!r} section")
    return section


def _int(section: Mapping[str, Any], key: str, where: str) -> int:
    if key not in section:
        raise SoVITSConfigError(f"config {where}.{key} is missing")
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise SoVITSConfigError(f"config {where}.{key} must be an integer, got {value!r}")
    return int(value)


def _list(section: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = section.get(key)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise SoVITSConfigError(f"config model.{key} must be a list, got {value!r}")
    return value


def _ints(section: Mapping[str, Any], key: str) -> tuple[int, ...]:
    return tuple(int(v) for v in _list(section, key))
