"""SoVITS synthesizer ("s2") of GPT-SoVITS v1/v2/v2Pro/v2ProPlus in pure PyTorch.

Loads the official ``.pth`` files unchanged (same state-dict names) and reproduces the official
inference numerics; see :class:`SynthesizerTrn`. :mod:`.mel` holds the spectrogram front ends,
:mod:`.sv` the v2Pro speaker-embedding model.
"""

from .config import SUPPORTED_VERSIONS, SoVITSConfig, SoVITSConfigError
from .mel import (
    REFERENCE_STFT,
    V3_MEL,
    V4_MEL,
    MelParams,
    STFTParams,
    linear_spectrogram,
    mel_filterbank,
    mel_spectrogram,
    reference_spectrogram,
)
from .sv import ERes2NetV2, SpeakerEmbedder, kaldi_fbank
from .synthesizer import DecodeIntermediates, DecodeResult, SoVITSInputError, SynthesizerTrn

__all__ = [
    "REFERENCE_STFT",
    "SUPPORTED_VERSIONS",
    "V3_MEL",
    "V4_MEL",
    "DecodeIntermediates",
    "DecodeResult",
    "ERes2NetV2",
    "MelParams",
    "STFTParams",
    "SoVITSConfig",
    "SoVITSConfigError",
    "SoVITSInputError",
    "SpeakerEmbedder",
    "SynthesizerTrn",
    "kaldi_fbank",
    "linear_spectrogram",
    "mel_filterbank",
    "mel_spectrogram",
    "reference_spectrogram",
]
