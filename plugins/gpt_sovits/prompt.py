"""A voice's prompt, computed once: what GPT-SoVITS conditions every request of the voice on.

From the main reference clip and its transcript (GPT-SOVITS.md §2.3, official
``TTS._set_prompt_semantic`` / ``_set_ref_spec``):

- semantic tokens: 16 kHz audio (3-10 s) + 0.3 x 32000 zero samples -> HuBERT -> ``ssl_proj`` ->
  quantizer codes (the GPT's audio prefix);
- the transcript's phones and BERT features (the GPT's text prefix), after the official rule
  that a transcript gets a closing mark;
- the style vector ``ge``: one 1025-bin spectrogram of 32 kHz audio per reference (main + extra
  references), through ``ref_enc`` (plus the speaker embedding for v2Pro), averaged.

An empty transcript selects the official reference-free mode: no semantic or text prefix, the
references only set the timbre. The semantic tokens and phone ids are small and are persisted
with the voice (``VoiceHandle.persist``), so a restarted process needs neither HuBERT nor the
G2P to rebuild the prompt; tensors stay in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor

from voiceseal.contracts import ReferenceClip
from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal.kit.audio import resample
from voiceseal_models.gpt_sovits.features import (
    BERT_DIM,
    FeatureExtractorError,
    reference_ssl_input,
)
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn, reference_spectrogram
from voiceseal_models.gpt_sovits.text import Language
from voiceseal_plugins.gpt_sovits.features import FeatureModels
from voiceseal_plugins.gpt_sovits.model_files import ModelPair

REFERENCE_SECONDS: Final = (3.0, 10.0)
SOVITS_RATE: Final = 32000
SSL_RATE: Final = 16000
PERSIST_FORMAT: Final = 1
#: Official: a transcript not ending in one of these gets "." (English) or "。" appended.
_CLOSING_MARKS: Final = frozenset("，。？！,.?!~:：—…")
LANGUAGES: Final[tuple[Language, ...]] = ("en", "zh", "ja")


@dataclass(frozen=True)
class VoicePrompt:
    """Everything a request of the voice reuses.

    ``semantic`` is ``(Ty,)`` int64 or None (reference-free); ``bert`` is ``[1024, len(phone_ids)]``;
    ``ge`` is ``[1, gin, 1]`` on the SoVITS model's device.
    """

    semantic: Tensor | None
    phone_ids: tuple[int, ...]
    bert: Tensor
    ge: Tensor
    language: Language
    digest: str

    @property
    def reference_free(self) -> bool:
        return self.semantic is None


def as_language(value: str, what: str) -> Language:
    for language in LANGUAGES:
        if value == language:
            return language
    raise InvalidInput(f"{what}: gpt-sovits speaks {', '.join(LANGUAGES)}, not {value!r}")


def check_references(references: Sequence[ReferenceClip]) -> None:
    """Every reference must last 3-10 s: the range the models were trained on (§7 item 5)."""
    if not references:
        raise InvalidInput("a gpt-sovits voice needs at least one reference clip")
    lo, hi = REFERENCE_SECONDS
    for i, clip in enumerate(references, 1):
        if clip.audio.ndim != 1 or clip.sample_rate <= 0:
            raise InvalidAudio(f"reference clip {i} must be mono audio with a sample rate")
        seconds = len(clip.audio) / clip.sample_rate
        if not lo <= seconds <= hi:
            raise InvalidAudio(
                f"reference clip {i} lasts {seconds:.2f} s; GPT-SoVITS references must last "
                f"{lo:g}-{hi:g} s (longer ones give silence or dropped words)"
            )


def reference_digest(references: Sequence[ReferenceClip], pair: ModelPair) -> str:
    """Identity of a prompt: the clips' samples, transcripts, languages and the model files."""
    h = hashlib.sha256(f"v{PERSIST_FORMAT}|{pair.gpt_sha256}|{pair.sovits_sha256}".encode())
    for clip in references:
        h.update(f"|{clip.sample_rate}|{clip.language}|{clip.transcript}|".encode())
        h.update(np.ascontiguousarray(clip.audio, dtype=np.float32).tobytes())
    return h.hexdigest()


def prompt_text(transcript: str, language: Language) -> str:
    text = transcript.strip()
    if text and text[-1] not in _CLOSING_MARKS:
        text += "." if language == "en" else "。"
    return text


def _resampled(clip: ReferenceClip, rate: int) -> Tensor:
    audio = resample(clip.audio.astype(np.float32, copy=False), clip.sample_rate, rate)
    return torch.from_numpy(np.ascontiguousarray(audio))


def _persisted(
    cached: Mapping[str, Any], digest: str
) -> tuple[Tensor | None, tuple[int, ...]] | None:
    """Semantic tokens and phone ids stored at registration, if they belong to this prompt."""
    if cached.get("format") != PERSIST_FORMAT or cached.get("digest") != digest:
        return None
    semantic, phones = cached.get("prompt_semantic"), cached.get("prompt_phone_ids")
    if not isinstance(phones, list) or not all(isinstance(p, int) for p in phones):
        return None
    if semantic is None:
        return None, tuple(phones)
    if not isinstance(semantic, list) or not all(isinstance(t, int) for t in semantic):
        return None
    return torch.tensor(semantic, dtype=torch.int64), tuple(phones)


def build_prompt(
    references: Sequence[ReferenceClip],
    pair: ModelPair,
    sovits: SynthesizerTrn,
    features: FeatureModels,
    cached: Mapping[str, Any],
) -> VoicePrompt:
    """Compute (or restore from ``cached``) the prompt of a voice. Raises ``InvalidInput``."""
    check_references(references)
    main = references[0]
    language = as_language(main.language, "reference language")
    digest = reference_digest(references, pair)
    text = prompt_text(main.transcript, language)

    restored = _persisted(cached, digest)
    if restored is not None:
        semantic, phone_ids = restored
    elif text:
        try:
            ssl_input = reference_ssl_input(_resampled(main, SSL_RATE))
        except FeatureExtractorError as exc:
            raise InvalidAudio(f"reference clip 1: {exc}") from None
        semantic = sovits.extract_latent(features.ssl(ssl_input))[0, 0].cpu()
        phone_ids = ()
    else:
        semantic, phone_ids = None, ()
    if text and (not phone_ids or language == "zh"):
        # Mandarin BERT features are never persisted (1024 floats per phone), and they must
        # line up with the phones, so a Mandarin transcript is re-read every time.
        text_features = features.text(text, language)
        phone_ids, bert = text_features.phone_ids, text_features.bert
    else:
        bert = torch.zeros(BERT_DIM, len(phone_ids))

    specs = [reference_spectrogram(_resampled(clip, SOVITS_RATE)) for clip in references]
    sv = (
        [features.speaker_embedding(_resampled(clip, SSL_RATE)) for clip in references]
        if pair.is_pro
        else None
    )
    ge = sovits.reference_embedding(specs, sv)
    return VoicePrompt(semantic, tuple(phone_ids), bert, ge, language, digest)


def persist(prompt: VoicePrompt, pair: ModelPair) -> dict[str, Any]:
    """JSON-able data stored with the voice (a few hundred integers)."""
    return {
        "format": PERSIST_FORMAT,
        "digest": prompt.digest,
        "gpt_sha256": pair.gpt_sha256,
        "sovits_sha256": pair.sovits_sha256,
        "sovits_version": pair.sovits_version,
        "language": prompt.language,
        "reference_free": prompt.reference_free,
        "prompt_semantic": None if prompt.semantic is None else prompt.semantic.tolist(),
        "prompt_phone_ids": list(prompt.phone_ids),
    }
