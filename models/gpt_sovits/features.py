"""Content features GPT-SoVITS feeds its models: BERT text features and HuBERT SSL features.

* BERT (`chinese-roberta-wwm-ext-large`, only for Mandarin): the third-to-last hidden state
  (layer 22 of 24, 1024-d), CLS/SEP dropped, each character's vector repeated `word2ph[i]`
  times -> `[1024, n_phones]`. Every other language gets zeros of the same shape (official
  `get_bert_inf`): the GPT's `bert_proj` then adds only its bias.
* SSL (`chinese-hubert-base`): `HubertModel` on the raw 16 kHz float waveform (no feature
  extractor normalisation: the official TTS calls the inner model directly) ->
  `last_hidden_state` transposed to channel-first `[1, 768, T]` at 50 frames/s.
  For a reference ("prompt") clip the pipeline first checks 3-10 s and appends
  `int(32000 * 0.3)` = 9600 zero samples; the count is computed with the 32 kHz output rate
  but appended to 16 kHz audio, so the tail is really 0.6 s (official behaviour, kept).

Both models are loaded lazily from LOCAL folders in Hugging Face format
(`from_pretrained(folder, local_files_only=True)`); `transformers` is imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.text.frontend import PhoneSequence

BERT_DIM: Final = 1024
SSL_DIM: Final = 768
SSL_SAMPLE_RATE: Final = 16000
REFERENCE_MIN_SAMPLES: Final = 3 * SSL_SAMPLE_RATE
REFERENCE_MAX_SAMPLES: Final = 10 * SSL_SAMPLE_RATE
PROMPT_TAIL_SAMPLES: Final = int(32000 * 0.3)
# hidden_states[-3]: the output of the third-to-last encoder layer.
BERT_LAYER_FROM_END: Final = 3


class FeatureExtractorError(ValueError):
    """A feature model folder or an input the feature extractors cannot use."""


def _transformers() -> ModuleType:
    try:
        return importlib.import_module("transformers")
    except ImportError as exc:
        raise FeatureExtractorError(
            "GPT-SoVITS BERT/HuBERT features need the PyPI package 'transformers' "
            f"(pip install transformers) ({exc})"
        ) from exc


def _model_folder(path: str | Path, what: str) -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FeatureExtractorError(
            f"{what} folder {str(folder)!r} has no config.json "
            "(expected a Hugging Face model folder)"
        )
    return folder


class ChineseBertFeatures:
    """Phone-level BERT features for normalised Mandarin text."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device) -> None:
        hidden = int(model.config.hidden_size)
        layers = int(model.config.num_hidden_layers)
        if hidden != BERT_DIM:
            raise FeatureExtractorError(
                f"BERT hidden size is {hidden}; GPT-SoVITS' bert_proj expects {BERT_DIM}"
            )
        if layers < BERT_LAYER_FROM_END - 1:
            raise FeatureExtractorError(
                f"BERT has {layers} layers; hidden_states[-3] needs at least 2"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> ChineseBertFeatures:
        """Load model + tokenizer saved with `save_pretrained`.

        The official model is chinese-roberta-wwm-ext-large.
        """
        folder = _model_folder(path, "BERT")
        hf = _transformers()
        tokenizer = hf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        # dtype is applied after loading: the from_pretrained keyword changed name across
        # transformers releases (torch_dtype -> dtype).
        model = hf.AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True)
        target = torch.device(device)
        return cls(model.to(device=target, dtype=dtype), tokenizer, target)

    @torch.inference_mode()
    def __call__(self, norm_text: str, word2ph: Sequence[int]) -> Tensor:
        """`norm_text` (one token per character) -> float32 `[1024, sum(word2ph)]`."""
        if len(word2ph) != len(norm_text):
            raise FeatureExtractorError(
                f"word2ph has {len(word2ph)} entries for {len(norm_text)} characters "
                f"of {norm_text!r}"
            )
        inputs = self.tokenizer(norm_text, return_tensors="pt")
        tokens = int(inputs["input_ids"].shape[-1])
        limit = int(self.model.config.max_position_embeddings)
        if tokens > limit:
            raise FeatureExtractorError(
                f"{len(norm_text)} characters are more than this BERT reads at once "
                f"({limit - 2}); cut the text with split_sentences first"
            )
        if tokens != len(norm_text) + 2:
            raise FeatureExtractorError(
                f"the BERT tokenizer made {tokens - 2} tokens of the {len(norm_text)} characters "
                "of "
                f"{norm_text!r}; GPT-SoVITS needs exactly one token per character"
            )
        out = self.model(
            **{k: v.to(self.device) for k, v in inputs.items()}, output_hidden_states=True
        )
        per_char = out.hidden_states[-BERT_LAYER_FROM_END][0, 1:-1].float().cpu()  # [chars, 1024]
        repeats = torch.tensor(list(word2ph), dtype=torch.long)
        return per_char.repeat_interleave(repeats, dim=0).T.contiguous()


def phone_bert_features(sequence: PhoneSequence, bert: ChineseBertFeatures | None) -> Tensor:
    """`[1024, len(sequence.phones)]`: BERT for Mandarin runs, zeros for the others."""
    parts: list[Tensor] = []
    for run in sequence.runs:
        if run.language == "zh":
            if bert is None:
                raise FeatureExtractorError(
                    "Mandarin text needs a BERT model (chinese-roberta-wwm-ext-large)"
                )
            assert run.word2ph is not None  # Mandarin runs always carry word2ph
            parts.append(bert(run.norm_text, run.word2ph))
        else:
            parts.append(torch.zeros(BERT_DIM, len(run.phones)))
    if not parts:
        return torch.zeros(BERT_DIM, 0)
    return torch.cat(parts, dim=1)


class HubertSslFeatures:
    """HuBERT content features of 16 kHz audio."""

    def __init__(self, model: Any, device: torch.device) -> None:
        hidden = int(model.config.hidden_size)
        if hidden != SSL_DIM:
            raise FeatureExtractorError(
                f"HuBERT hidden size is {hidden}; GPT-SoVITS' ssl_proj expects {SSL_DIM}"
            )
        self.model = model.eval()
        self.device = device
        self.dtype = next(model.parameters()).dtype

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> HubertSslFeatures:
        folder = _model_folder(path, "HuBERT")
        model = _transformers().HubertModel.from_pretrained(folder, local_files_only=True)
        target = torch.device(device)
        return cls(model.to(device=target, dtype=dtype), target)

    @torch.inference_mode()
    def __call__(self, wav16k: Tensor) -> Tensor:
        """Mono float waveform `[T]` or `[1, T]` at 16 kHz -> float32 `[1, 768, frames]`."""
        if wav16k.dim() == 2 and wav16k.shape[0] == 1:
            wav16k = wav16k[0]
        if wav16k.dim() != 1 or not wav16k.is_floating_point():
            raise FeatureExtractorError(
                f"expected a mono float waveform [T], got {tuple(wav16k.shape)} {wav16k.dtype}"
            )
        if wav16k.numel() < 400:
            raise FeatureExtractorError(
                f"audio of {wav16k.numel()} samples is shorter than one HuBERT frame (400)"
            )
        x = wav16k.to(self.device, self.dtype)[None, :]
        hidden = self.model(x).last_hidden_state  # [1, frames, 768]
        return hidden.transpose(1, 2).float().cpu()


def reference_ssl_input(wav16k: Tensor) -> Tensor:
    """Check a 16 kHz reference clip (3-10 s) and append the official 9600-sample zero tail."""
    if wav16k.dim() != 1 or not wav16k.is_floating_point():
        raise FeatureExtractorError(
            f"expected a mono float waveform [T], got {tuple(wav16k.shape)} {wav16k.dtype}"
        )
    n = wav16k.numel()
    if not REFERENCE_MIN_SAMPLES <= n <= REFERENCE_MAX_SAMPLES:
        raise FeatureExtractorError(
            "reference audio must be 3-10 s "
            f"({REFERENCE_MIN_SAMPLES}-{REFERENCE_MAX_SAMPLES} samples at 16 kHz), "
            f"got {n / SSL_SAMPLE_RATE:.2f} s"
        )
    return torch.cat([wav16k, wav16k.new_zeros(PROMPT_TAIL_SAMPLES)])
