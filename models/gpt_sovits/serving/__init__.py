"""GPU serving of GPT-SoVITS: continuous batching, CUDA-graph decode, caches, batched SoVITS.

Entry points: `Scheduler` (submit `T2SRequest`s, get `RequestHandle`s), `SchedulerConfig`,
`VoiceCache` / `PreparedVoice`, `ModelLRU`, the SoVITS stage (`decode_batch` / `AudioJob`,
`VocoderWorker`, `GraphedChunkDecoder`) and the errors.
"""

from voiceseal_models.gpt_sovits.serving.cache import (
    ModelLRU,
    PreparedVoice,
    VoiceCache,
    gpu_budget,
    module_bytes,
)
from voiceseal_models.gpt_sovits.serving.errors import (
    QueueFull,
    RequestCancelled,
    RequestFailed,
    RequestTooLong,
    ServingError,
)
from voiceseal_models.gpt_sovits.serving.requests import RequestHandle, T2SRequest, TokenChunk
from voiceseal_models.gpt_sovits.serving.scheduler import Scheduler, SchedulerConfig
from voiceseal_models.gpt_sovits.serving.vocoder import (
    AudioJob,
    GraphedChunkDecoder,
    VocoderWorker,
    decode_batch,
)

__all__ = [
    "AudioJob",
    "GraphedChunkDecoder",
    "ModelLRU",
    "PreparedVoice",
    "QueueFull",
    "RequestCancelled",
    "RequestFailed",
    "RequestHandle",
    "RequestTooLong",
    "Scheduler",
    "SchedulerConfig",
    "ServingError",
    "T2SRequest",
    "TokenChunk",
    "VocoderWorker",
    "VoiceCache",
    "decode_batch",
    "gpu_budget",
    "module_bytes",
]
