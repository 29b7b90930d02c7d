"""Batched SoVITS decoding of whole-file segments: one worker per loaded SoVITS file.

The model pool keeps a :class:`LoadedSoVITS` per SoVITS file. With ``sovits_batching`` on (the
default on CUDA) a segment that is not streamed hands its finished tokens to the file's
:class:`~voiceseal_models.gpt_sovits.serving.VocoderWorker`, which decodes whatever waits in
one padded batch; each job carries its own prior noise, so a segment's audio does not depend
on its batch companions. Streams decode their own windows (their first audio must not wait
for other requests); on CUDA a window at speed 1 replays a CUDA graph of the decode
(:meth:`LoadedSoVITS.window`): a window decoded eagerly is bound by kernel launches (on an H100
44-66 ms per 28-token window of the full-size v2 model, two of them before a stream's first
chunk).

The worker starts with the first job; eviction from the pool (:meth:`LoadedSoVITS.retire`) and
engine shutdown (:meth:`LoadedSoVITS.close`) finish what it holds and end its thread. A job
that arrives after that decodes on its caller's thread, as it would with batching off.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from torch import Tensor

from voiceseal_models.gpt_sovits.serving import AudioJob, decode_batch
from voiceseal_models.gpt_sovits.serving.graphed_decode import GraphedDecoder
from voiceseal_models.gpt_sovits.serving.vocoder import VocoderWorker
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings

#: Stream windows up to this many tokens replay graphs (the default windows hold 16-28 tokens);
#: codes are padded to multiples of half of it and phones to multiples of WINDOW_PHONES, so a
#: model captures a few graphs, each on its first use.
WINDOW_TOKENS = 50
WINDOW_PHONES = 64


def batching_on(settings: GPTSoVITSSettings, model: SynthesizerTrn) -> bool:
    """Whether whole-file segments of `model` go through its worker (unset: on CUDA only)."""
    if settings.sovits_batching is not None:
        return settings.sovits_batching
    return next(model.parameters()).device.type == "cuda"


@dataclass
class LoadedSoVITS:
    """What the model pool keeps for a SoVITS file: the model and, once needed, its worker."""

    model: SynthesizerTrn
    _worker: VocoderWorker | None = None
    _windows: GraphedDecoder | None = None
    _ended: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decode(self, job: AudioJob, settings: GPTSoVITSSettings) -> Tensor:
        """The job's audio, (samples,) float on the CPU: through the worker when batching is
        on, else (or once the worker has ended) here, decoded alone."""
        worker = self._worker_for(settings) if batching_on(settings, self.model) else None
        if worker is not None:
            try:
                future = worker.submit(job)
            except RuntimeError:  # retired between the lookup and the submission
                pass
            else:
                return future.result()
        [audio] = decode_batch(
            self.model, [job], noise_scale=settings.noise_scale, length_multiple=1
        )
        return audio.float().cpu()

    def _worker_for(self, settings: GPTSoVITSSettings) -> VocoderWorker | None:
        with self._lock:
            if self._worker is None and not self._ended:
                self._worker = VocoderWorker(
                    self.model,
                    max_batch=settings.sovits_batch_max,
                    noise_scale=settings.noise_scale,
                    # Every job carries its own noise: the lone-job graph draws its own.
                    graph_single=False,
                )
            return self._worker

    def window(self, job: AudioJob, settings: GPTSoVITSSettings) -> Tensor | None:
        """A stream window's audio, (samples,) float on the CPU, replayed from a CUDA graph
        with the job's own noise; None where graphs do not apply (not CUDA, speed not 1, a
        window longer than WINDOW_TOKENS): the caller then decodes it eagerly."""
        if (
            next(self.model.parameters()).device.type != "cuda"
            or job.speed != 1
            or job.codes.numel() > WINDOW_TOKENS
        ):
            return None
        with self._lock:
            if self._windows is None:
                self._windows = GraphedDecoder(
                    self.model,
                    token_multiple=WINDOW_TOKENS // 2,
                    phone_multiple=WINDOW_PHONES,
                    max_tokens=WINDOW_TOKENS,
                    noise_scale=settings.noise_scale,
                )
            windows = self._windows
        return windows.decode(job.codes, job.phones, job.ge, job.noise, job.noise_scale)

    @property
    def active_worker(self) -> VocoderWorker | None:
        return self._worker

    def retire(self) -> None:
        """Left the pool: decode what waits, then end the worker (later jobs decode here)."""
        with self._lock:
            worker, self._worker, self._ended = self._worker, None, True
        if worker is not None:
            worker.close()

    close = retire
