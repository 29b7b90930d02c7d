"""Batched SoVITS decoding of whole-file segments: one worker per loaded SoVITS file.

The model pool keeps a :class:`LoadedSoVITS` per SoVITS file. With ``sovits_batching`` on (the
default on CUDA) a segment that is not streamed hands its finished tokens to the file's
:class:`~voiceseal_models.gpt_sovits.serving.VocoderWorker`, which decodes whatever waits in
one padded batch; each job carries its own prior noise, so a segment's audio does not depend
on its batch companions. Stream windows have a worker of their own (their first audio must
not wait behind whole-file batches); on CUDA at speed 1 a window alone replays a CUDA graph
of the decode, and windows of concurrent streams that wait together decode in one batch
(:meth:`LoadedSoVITS.window`): a window decoded eagerly is bound by kernel launches (on an
H100 44-66 ms per 28-token window of the full-size v2 model, two of them before a stream's
first chunk), and one graph replay at a time served 128 concurrent streams 71 audio-s/s.

A worker starts with its first job; eviction from the pool (:meth:`LoadedSoVITS.retire`) and
engine shutdown (:meth:`LoadedSoVITS.close`) finish what it holds and end its thread. A job
that arrives after that decodes on its caller's thread, as it would with batching off.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from torch import Tensor

from voiceseal_models.gpt_sovits.serving import AudioJob, decode_batch
from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator
from voiceseal_models.gpt_sovits.serving.graphed_decode import GraphedDecoder
from voiceseal_models.gpt_sovits.serving.vocoder import VocoderWorker
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings

#: Stream windows up to this many tokens replay graphs (the default windows hold 16-28 tokens);
#: codes are padded to multiples of half of it and phones to multiples of WINDOW_PHONES, so a
#: model captures a few graphs (the common ones at load, see PRECAPTURE_PHONES).
WINDOW_TOKENS = 50
WINDOW_PHONES = 64
#: When a SoVITS file loads on CUDA, the window graphs of segments up to this many phones (a
#: sentence of ~200 characters; both token buckets, so 6 graphs) are captured with it: captured
#: on first use instead, they made the first stream after start-up wait 305-452 ms for its
#: first chunk on an H100, against 31-39 ms warm; loading takes ~1.9 s longer, most of which
#: the first request then saves. Longer segments capture their bucket on first use.
PRECAPTURE_PHONES = 192
#: Batched stream windows pad their codes to a multiple of this many tokens.
WINDOW_LENGTH_MULTIPLE = 4
#: Most stream windows in one batch (at least; `sovits_batch_max` if larger). A window is about
#: a second of audio, so 128 of them cost about what 13 whole 10 s segments do, and when many
#: streams start together their first windows all arrive at once: one batch serves them all.
WINDOW_BATCH_MAX = 128
#: Fewer windows than this waiting together replay their graph one after another instead of
#: decoding as a batch: a small eager batch is bound by its kernel launches (44-66 ms on an
#: H100, and a new convolution plan for each new shape), a graph replay about 5 ms of GPU
#: time (bench/gpu.py, ours_ttfc_sovits_ms).
WINDOW_GRAPH_BELOW = 8

log = logging.getLogger(__name__)


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
    _window_worker: VocoderWorker | None = None
    _fast: FastGenerator | None = None
    _ended: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decode(self, job: AudioJob, settings: GPTSoVITSSettings) -> Tensor:
        """The job's audio, (samples,) float on the CPU: through the worker when batching is
        on, else (or once the worker has ended) here, decoded alone."""
        worker = self._worker_for(settings) if batching_on(settings, self.model) else None
        audio = _through(worker, job)
        if audio is not None:
            return audio
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
                    dec=self._fast_generator(),
                    # Segments run to 1,000 tokens: a lone-job graph per (tokens, phones)
                    # bucket, each captured on first use, would cost more than it saves.
                    graph_single=False,
                )
            return self._worker

    def window(self, job: AudioJob, settings: GPTSoVITSSettings) -> Tensor | None:
        """A stream window's audio, (samples,) float on the CPU, decoded with the job's own
        noise on CUDA by the window worker (alone: a CUDA graph replay; with other streams'
        windows: one batch); None where this does not apply (not CUDA, speed not 1, a window
        longer than WINDOW_TOKENS): the caller then decodes it eagerly."""
        if not self._on_cuda() or job.speed != 1 or job.codes.numel() > WINDOW_TOKENS:
            return None
        audio = _through(self._window_worker_for(settings), job)
        if audio is not None:
            return audio
        windows = self._window_decoder(settings)
        return windows.decode(job.codes, job.phones, job.ge, job.noise, job.noise_scale)

    def _window_worker_for(self, settings: GPTSoVITSSettings) -> VocoderWorker | None:
        """The worker that decodes stream windows: a window alone replays its graph; windows of
        concurrent streams that wait together decode in one batch (one graph replay at a time
        served 128 concurrent streams 71 audio-s/s on an H100, first chunks 1.3 s at p50)."""
        decoder = self._window_decoder(settings)
        with self._lock:
            if self._window_worker is None and not self._ended:
                self._window_worker = VocoderWorker(
                    self.model,
                    max_batch=max(settings.sovits_batch_max, WINDOW_BATCH_MAX),
                    noise_scale=settings.noise_scale,
                    single=decoder,
                    dec=decoder.dec,
                    # A stream's windows have a few lengths (16 tokens first, then 28 with the
                    # defaults): padding them to multiples of 4 rather than 25 saves 44 % of a
                    # 28-token window's decode and adds few shapes. Packing would vary the
                    # shapes (new convolution plans) for little to gain, and so would every
                    # batch size: batches are rounded up to powers of two.
                    length_multiple=WINDOW_LENGTH_MULTIPLE,
                    pack=False,
                    batch_buckets=True,
                    graph_below=WINDOW_GRAPH_BELOW,
                )
            return self._window_worker

    def prepare_windows(self, settings: GPTSoVITSSettings) -> int:
        """Capture the common stream-window graphs now (see PRECAPTURE_PHONES); returns how
        many buckets are ready. Nothing to do off CUDA. A capture that fails here (no memory
        left for its pool, say) is logged and does not fail the load: the bucket is captured
        when a stream first needs it, as without this call."""
        if not self._on_cuda():
            return 0
        windows = self._window_decoder(settings)
        try:
            for phones in range(WINDOW_PHONES, PRECAPTURE_PHONES + 1, WINDOW_PHONES):
                for tokens in (WINDOW_TOKENS // 2, WINDOW_TOKENS):
                    windows.capture(tokens, phones)
        except RuntimeError as exc:  # CUDA errors, out of memory among them
            log.warning("stream window graphs not captured ahead of use: %s", exc)
        return windows.captured

    def _on_cuda(self) -> bool:
        return next(self.model.parameters()).device.type == "cuda"

    def _fast_generator(self) -> FastGenerator | None:
        """One `FastGenerator` per model on CUDA, shared by the workers and the window graphs
        (each holds frozen kernels the generator's size again per layout); call with the lock
        held."""
        if self._fast is None and self._on_cuda():
            self._fast = FastGenerator(self.model.dec)
        return self._fast

    def _window_decoder(self, settings: GPTSoVITSSettings) -> GraphedDecoder:
        with self._lock:
            if self._windows is None:
                self._windows = GraphedDecoder(
                    self.model,
                    dec=self._fast_generator(),
                    token_multiple=WINDOW_TOKENS // 2,
                    phone_multiple=WINDOW_PHONES,
                    max_tokens=WINDOW_TOKENS,
                    noise_scale=settings.noise_scale,
                )
            return self._windows

    @property
    def active_worker(self) -> VocoderWorker | None:
        return self._worker

    def retire(self) -> None:
        """Left the pool: decode what waits, then end the workers (later jobs decode here)."""
        with self._lock:
            workers = (self._worker, self._window_worker)
            self._worker, self._window_worker, self._ended = None, None, True
        for worker in workers:
            if worker is not None:
                worker.close()

    close = retire


def _through(worker: VocoderWorker | None, job: AudioJob) -> Tensor | None:
    """The job's audio from `worker`, or None when there is none or it has just been retired
    (the caller then decodes the job itself)."""
    if worker is None:
        return None
    try:
        future = worker.submit(job)
    except RuntimeError:  # retired between the lookup and the submission
        return None
    return future.result()
