"""Configuration of the ``gpt-sovits`` engine, read from ``VOICESEAL_GPT_SOVITS_*`` variables.

Every folder is admin-provided and local: nothing is ever downloaded.

- ``MODEL_DIR``: folder of GPT (``.ckpt``) and SoVITS (``.pth``) files that voices may name in
  their ``engine_options`` instead of uploading them;
- ``HUBERT_DIR``: ``chinese-hubert-base`` in Hugging Face format (reference semantic tokens;
  needed for every voice with a reference transcript);
- ``BERT_DIR``: ``chinese-roberta-wwm-ext-large`` (Mandarin text and Mandarin transcripts);
- ``SV_MODEL``: ``pretrained_eres2netv2w24s4ep4.ckpt`` (v2Pro/v2ProPlus speaker embedding);
- ``DEVICE``: ``cpu``, ``cuda`` or ``cuda:N`` (default: the platform's device);
- ``MAX_LOADED_MODELS``: loaded weight files kept in memory (GPT and SoVITS files count apart);
- ``BATCHING`` and ``BATCH_*``: continuous batching of the GPT stage (see the fields below);
- ``SOVITS_BATCHING``, ``SOVITS_BATCH_MAX``: batched SoVITS decoding of whole-file segments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voiceseal_models.gpt_sovits.text.sentences import SplitMethod

ENV_PREFIX = "VOICESEAL_GPT_SOVITS_"


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (for error messages)."""
    return ENV_PREFIX + field.upper()


class GPTSoVITSSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    model_dir: Path | None = None
    hubert_dir: Path | None = None
    bert_dir: Path | None = None
    sv_model: Path | None = None
    #: Empty: use the platform's device (``VOICESEAL_DEVICE``).
    device: str = ""
    #: float16/bfloat16 only make sense on a GPU; the semantic-token path stays float32 anyway.
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    #: Each voice needs two (its GPT and its SoVITS file); shared files count once.
    max_loaded_models: int = Field(default=8, ge=2)

    #: The official per-segment cap (1500 tokens = 60 s of speech at 25 tokens/s).
    max_tokens: int = Field(default=1500, ge=16, le=1500)
    #: Sentences are cut with this official method (``cut1``: every 4 clauses, as ``TTS.run``)
    #: and pieces longer than ``max_segment_chars`` are split further; nothing is dropped.
    split_method: SplitMethod = "cut1"
    max_segment_chars: int = Field(default=510, ge=16, le=510)
    #: Silence between the segments of one sentence (the official ``fragment_interval``).
    fragment_interval_s: float = Field(default=0.3, ge=0.0, le=2.0)
    #: Prior noise scale of the SoVITS decoder (official 0.5).
    noise_scale: float = Field(default=0.5, ge=0.0, le=2.0)

    #: Streaming: decode every ``stream_chunk_tokens`` new tokens (40 ms each), re-decoding
    #: ``stream_context_tokens`` of already-sent tokens for left context and cross-fading the
    #: last ``stream_crossfade_tokens`` of each chunk with the next decode. Measured on the
    #: fixture models, the gap to a one-piece decode comes mostly from tokens not generated yet
    #: (see tests): a longer cross-fade helps more than a longer left context, which costs a
    #: re-decode of its tokens in every window (16 + 4 + 8 tokens decoded per 16 new ones).
    stream_chunk_tokens: int = Field(default=16, ge=2, le=500)
    stream_context_tokens: int = Field(default=8, ge=0, le=500)
    stream_crossfade_tokens: int = Field(default=4, ge=1, le=50)

    #: Continuous batching: every request's GPT decoding goes through one scheduler per loaded
    #: GPT file, so concurrent requests (any voices, any prompts) share each decoding step,
    #: with a bounded queue (a full queue answers 503). On by default on every device: on CUDA
    #: it runs the captured step graphs. On the CPU a step costs about the same per row as
    #: decoding alone (measured with the full-size GPT, 1 thread, 4 concurrent requests: 27.7
    #: tok/s batched vs 29.8 in 4 threads, within noise), so there it buys no speed; it is on
    #: for what it does give: a bounded queue instead of threads piling onto the cores, a
    #: disconnect that frees its work at the next step, and, drawing each request's samples
    #: from its own generator (``batch_exact_rng``), exactly the tokens a seed gives unbatched.
    batching: bool = True
    #: Concurrent decoding rows per GPT file (0: 32 on CUDA, 4 on the CPU). The KV cache is
    #: rows x capacity slots: 24 layers x 2 x 512 values per slot for the official GPT, that is
    #: 200 MB per row in float32 at the default capacity (100 MB in float16).
    batch_max_rows: int = Field(default=0, ge=0, le=256)
    #: Requests (segments) that may wait for a row; one more is refused (HTTP 503 with
    #: Retry-After). Every request waits in the queue at least until the next step, so 0
    #: refuses all of them (drain). Default (-1): 4 x max_rows.
    batch_max_queue: int = Field(default=-1, ge=-1, le=100_000)
    #: KV slots per row: prompt phones + prompt tokens + text phones + generated tokens. A
    #: segment that would need more decodes at most what fits (a segment reaching that many
    #: tokens is a runaway: 2048 slots leave 1500 tokens, 60 s, for 548 slots of prompt and
    #: text); one whose prompt and text alone do not fit is refused with the reason (422).
    batch_capacity: int = Field(default=2048, ge=64, le=16384)
    #: Per-request sampler generators, reproducing unbatched decoding draw for draw (no step
    #: graphs). Unset: on for the CPU, off on CUDA, where counter-based noise keeps each
    #: request's tokens independent of its batch companions and the step graphs usable.
    batch_exact_rng: bool | None = None
    #: The serving thread of an idle scheduler ends after this many seconds (a new request
    #: starts it again); an evicted model's scheduler ends as soon as its requests are done.
    batch_idle_s: float = Field(default=30.0, ge=0.0, le=3600.0)

    #: Whole-file segments (not streams) decode their audio through one SoVITS worker per
    #: loaded SoVITS file, which decodes whatever waits in one padded batch: on an H100 10 s
    #: items decode at ~750 audio-s/s one at a time and ~1,600-1,850 in batches of 32-128
    #: (bench/gpu.py). Each segment keeps its own prior noise, so its audio does not depend on
    #: its companions (equal within float rounding to decoding alone). Unset: on for CUDA,
    #: off on the CPU, where a batch costs what its items cost one after another. Stream
    #: windows have a worker of their own on CUDA whatever this says: a window alone replays
    #: its CUDA graph, and only windows of concurrent streams that already wait together share
    #: a batch (a stream's first audio never waits for company).
    sovits_batching: bool | None = None
    #: Most whole-file segments in one SoVITS batch. Stream windows (about a second each) batch
    #: up to the larger of this and 128 (``vocoding.WINDOW_BATCH_MAX``).
    sovits_batch_max: int = Field(default=32, ge=1, le=256)

    @field_validator("model_dir", "hubert_dir", "bert_dir", "sv_model", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _fade_fits(self) -> GPTSoVITSSettings:
        if self.stream_crossfade_tokens >= self.stream_chunk_tokens:
            raise ValueError(
                f"{env_name('stream_crossfade_tokens')} ({self.stream_crossfade_tokens}) must be "
                f"smaller than {env_name('stream_chunk_tokens')} ({self.stream_chunk_tokens})"
            )
        return self
