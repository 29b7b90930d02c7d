"""The engine's shared feature models (HuBERT, Chinese BERT, v2Pro speaker encoder) and text side.

Each model is loaded from its admin-provided folder on first use and shared by every voice.
A missing configuration is reported as the setting to fill in, at the moment a voice or a
request needs it (not at start-up): an English-only deployment never needs BERT.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import torch
from torch import Tensor

from voiceseal.errors import InvalidInput, Unavailable
from voiceseal_models.gpt_sovits.features import (
    BERT_DIM,
    ChineseBertFeatures,
    FeatureExtractorError,
    HubertSslFeatures,
    phone_bert_features,
)
from voiceseal_models.gpt_sovits.sovits import SpeakerEmbedder
from voiceseal_models.gpt_sovits.text import Language, TextFrontendError, text_to_phones
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings, env_name

M = TypeVar("M")


class _Lazy(Generic[M]):
    """One model, loaded once on first use (thread-safe); load errors are not cached."""

    def __init__(self, load: Callable[[], M]) -> None:
        self._load = load
        self._value: M | None = None
        self._lock = threading.Lock()

    def get(self) -> M:
        with self._lock:
            if self._value is None:
                self._value = self._load()
            return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None


@dataclass(frozen=True)
class TextFeatures:
    """Phone ids ``(T,)`` and BERT features ``[1024, T]`` (zeros outside Mandarin)."""

    phone_ids: tuple[int, ...]
    bert: Tensor
    norm_text: str


class FeatureModels:
    """HuBERT, BERT and the speaker encoder of one engine instance."""

    def __init__(self, settings: GPTSoVITSSettings, device: torch.device) -> None:
        self.settings = settings
        self.device = device
        self._hubert = _Lazy(lambda: self._load_hubert(settings.hubert_dir))
        self._bert = _Lazy(lambda: self._load_bert(settings.bert_dir))
        self._speaker = _Lazy(lambda: self._load_speaker(settings.sv_model))
        # Hugging Face fast tokenizers are not safe to call from several threads at once.
        self._bert_lock = threading.Lock()

    # -- loading -----------------------------------------------------------------------------

    def _load_hubert(self, folder: Path | None) -> HubertSslFeatures:
        if folder is None:
            raise InvalidInput(
                "this voice has a reference transcript, so its prompt needs HuBERT semantic "
                f"tokens, but no HuBERT model is configured: set {env_name('hubert_dir')} to a "
                "chinese-hubert-base folder (or register the voice without a transcript for "
                "reference-free mode)"
            )
        try:
            return HubertSslFeatures.from_folder(folder, self.device)
        except (FeatureExtractorError, OSError) as exc:
            raise Unavailable(f"{env_name('hubert_dir')}: cannot load HuBERT: {exc}") from None

    def _load_bert(self, folder: Path | None) -> ChineseBertFeatures:
        if folder is None:
            raise InvalidInput(
                "Mandarin text needs the chinese-roberta-wwm-ext-large BERT model, which is not "
                f"configured: set {env_name('bert_dir')}"
            )
        try:
            return ChineseBertFeatures.from_folder(folder, self.device)
        except (FeatureExtractorError, OSError) as exc:
            raise Unavailable(f"{env_name('bert_dir')}: cannot load BERT: {exc}") from None

    def _load_speaker(self, path: Path | None) -> SpeakerEmbedder:
        if path is None:
            raise InvalidInput(
                "v2Pro/v2ProPlus voices need the ERes2NetV2 speaker model "
                "(pretrained_eres2netv2w24s4ep4.ckpt), which is not configured: set "
                f"{env_name('sv_model')}"
            )
        try:
            return SpeakerEmbedder.from_state_dict(path, device=self.device)
        except (ValueError, OSError, RuntimeError) as exc:
            raise Unavailable(f"{env_name('sv_model')}: cannot load {path}: {exc}") from None

    # -- features ----------------------------------------------------------------------------

    def ssl(self, wav16k: Tensor) -> Tensor:
        """16 kHz waveform ``[N]`` -> HuBERT features ``[1, 768, frames]``."""
        return self._hubert.get()(wav16k)

    def speaker_embedding(self, wav16k: Tensor) -> Tensor:
        """16 kHz waveform ``[N]`` -> the 20480-d v2Pro speaker embedding ``[1, 20480]``."""
        return self._speaker.get()(wav16k)

    def text(self, text: str, language: Language) -> TextFeatures:
        """Phones and BERT features of one segment; front-end errors become ``InvalidInput``."""
        try:
            sequence = text_to_phones(text, language)
        except TextFrontendError as exc:
            raise InvalidInput(f"text refused by the GPT-SoVITS front end: {exc}") from None
        if any(run.language == "zh" for run in sequence.runs):
            bert = self._bert.get()
            with self._bert_lock:
                try:
                    features = phone_bert_features(sequence, bert)
                except FeatureExtractorError as exc:
                    raise InvalidInput(f"Mandarin BERT features failed: {exc}") from None
        else:
            features = torch.zeros(BERT_DIM, len(sequence.phone_ids))
        return TextFeatures(tuple(sequence.phone_ids), features, sequence.norm_text)
