"""Batched SoVITS decoding of finished (or streamed) token sequences.

One padded `SynthesizerTrn.decode` call for many requests: the synthesizer masks each item by
its own code and text lengths, so every item decodes as it would alone (up to the noise draw,
which a padded batch takes in one tensor).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator
from voiceseal_models.gpt_sovits.serving.graphed_decode import GraphedDecoder
from voiceseal_models.gpt_sovits.serving.packing import PackedGenerator, packing_gap
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn


@dataclass(frozen=True)
class AudioJob:
    """codes (n,) int64 semantic tokens, phones (m,) target phonemes, ge (1, gin, 1).

    Optionally the item's own prior draw `noise` (inter, frames): standard normal, as many
    frames as the item has alone (`prior_frames`), so that its audio does not depend on the
    batch it lands in; and its `speed` and `noise_scale` (None: the decoder's default). Jobs
    decoded together must agree on those three (see `batch_key`).
    """

    codes: Tensor
    phones: Tensor
    ge: Tensor
    noise: Tensor | None = None
    speed: float = 1.0
    noise_scale: float | None = None

    def batch_key(self, default_noise_scale: float) -> tuple[float, float, bool]:
        """Jobs with equal keys can share one decode call."""
        scale = default_noise_scale if self.noise_scale is None else self.noise_scale
        return (self.speed, scale, self.noise is not None)


def prior_frames(model: SynthesizerTrn, tokens: int, speed: float = 1.0) -> int:
    """Latent frames of the prior for `tokens` semantic tokens decoded alone (the encoder
    stretches `n` frames to `int(n / speed) + 1` when speed is not 1)."""
    frames = model.config.latent_upsampling * tokens
    return frames if speed == 1 else int(frames / speed) + 1


def decode_batch(
    model: SynthesizerTrn,
    jobs: Sequence[AudioJob],
    *,
    noise_scale: float = 0.5,
    generator: torch.Generator | None = None,
    length_multiple: int = 25,
    dec: FastGenerator | None = None,
    pack: bool = True,
) -> list[Tensor]:
    """Decode every job in one call; returns each job's audio (samples,) float in [-1, 1].

    Codes are padded (and masked) to a multiple of `length_multiple` tokens and phones to a
    multiple of 8: convolution plans are chosen per input shape, and on an H100 the first
    decode of an unseen shape took 250-420 ms against 32-42 ms for the same shape again
    (bench/gpu.py --only shapes), so a server must not meet a new shape with every request.
    `dec` replaces the synthesizer's generator (a `FastGenerator` of the same model). With
    `pack` the generator runs the items of unequal lengths end to end instead of padded
    (`packing.PackedGenerator`; the same audio up to float rounding).
    """
    if not jobs:
        return []
    if length_multiple < 1:
        raise ValueError(f"length_multiple must be >= 1, got {length_multiple}")
    for i, job in enumerate(jobs):
        if job.codes.dim() != 1 or job.phones.dim() != 1 or job.codes.numel() == 0:
            raise ValueError(
                f"job {i}: codes and phones must be non-empty (T,) tensors, got "
                f"{tuple(job.codes.shape)} and {tuple(job.phones.shape)}"
            )
    keys = {job.batch_key(noise_scale) for job in jobs}
    if len(keys) > 1:
        raise ValueError(
            "jobs decoded together must share speed, noise scale and whether they carry "
            f"noise; got {sorted(keys)}"
        )
    [(speed, scale, carries_noise)] = keys
    device = next(model.parameters()).device
    n_codes = torch.tensor([j.codes.numel() for j in jobs])
    n_phones = torch.tensor([j.phones.numel() for j in jobs])
    codes = torch.zeros(
        len(jobs), _round_up(int(n_codes.max()), length_multiple), dtype=torch.int64
    )
    phones = torch.zeros(
        len(jobs),
        _round_up(int(n_phones.max()), 8 if length_multiple > 1 else 1),
        dtype=torch.int64,
    )
    for i, job in enumerate(jobs):
        codes[i, : job.codes.numel()] = job.codes
        phones[i, : job.phones.numel()] = job.phones
    ge = torch.cat([j.ge.to(device) for j in jobs])
    padded = bool((n_codes != codes.shape[1]).any() or (n_phones != phones.shape[1]).any())
    noise = _batch_noise(model, jobs, codes.shape[1], speed, device) if carries_noise else None
    result = model.decode_detailed(
        codes.to(device),
        phones.to(device),
        ge=ge,
        noise_scale=scale,
        speed=speed,
        noise=noise,
        generator=generator,
        code_lengths=n_codes.to(device) if padded else None,
        text_lengths=n_phones.to(device) if padded else None,
        dec=PackedGenerator(
            dec or model.dec,
            packing_gap(model.dec),
            prior_frames(model, length_multiple) if speed == 1 else 1,
        )
        if pack and padded
        else dec,
    )
    lengths = result.audio_lengths.tolist()
    return [result.audio[i, 0, : lengths[i]] for i in range(len(jobs))]


def _batch_noise(
    model: SynthesizerTrn, jobs: Sequence[AudioJob], padded_tokens: int, speed: float,
    device: torch.device,
) -> Tensor:  # fmt: skip
    """The jobs' own draws in one prior-shaped tensor: each item reads its first frames (its
    valid ones), so zeros fill the rest. At speed 1 the prior spans the padded codes; otherwise
    the longest item's stretched length (see the encoder)."""
    if speed == 1:
        frames = prior_frames(model, padded_tokens)
    else:
        frames = max(prior_frames(model, job.codes.numel(), speed) for job in jobs)
    out = torch.zeros(len(jobs), model.config.inter_channels, frames, device=device)
    for i, job in enumerate(jobs):
        assert job.noise is not None
        want = prior_frames(model, job.codes.numel(), speed)
        if job.noise.shape != (model.config.inter_channels, want):
            raise ValueError(
                f"job {i}: noise must be (inter_channels, frames) = "
                f"({model.config.inter_channels}, {want}), got {tuple(job.noise.shape)}"
            )
        out[i, :, :want] = job.noise
    return out


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class VocoderWorker:
    """Decodes submitted jobs on a background thread, batching whatever waits (up to
    `max_batch`), on its own CUDA stream so that it overlaps the text-to-semantic steps.

    `submit` returns a future of the job's audio (samples,) float32 on the CPU.

    On CUDA the generator runs as a `FastGenerator` (same function; pass `fast=False` for the
    module itself), a lone job at speed 1 replays a `GraphedDecoder` graph (`graph_single`; or
    the caller's `single`, e.g. one with its buckets captured already) with its own noise if it
    has some, and the stream gets CUDA's lowest priority, so that decode steps launched on a
    higher-priority stream go first when both wait for the GPU. `pack`: as `decode_batch`'s.
    `batch_buckets`: round every batch up to a power of two (see `_decode`); `length_multiple`:
    as `decode_batch`'s; `graph_below`: batches of fewer jobs replay the lone-job graph once per
    job instead (a small eager batch is bound by its ~2,300 kernel launches); `dec`: the
    `FastGenerator` to use (default: a new one).

    Batching: on an H100, 10 s items decoded at ~750 audio-s/s one at a time (graph), ~1,600
    in batches of 32 and ~1,850 of 128, so under load it pays to wait for company: with
    `min_batch` > 1 the worker waits until that many jobs are queued or the oldest has waited
    `max_wait_s`. `incoming` (e.g. `lambda: scheduler.active`) says how many more jobs are on
    their way; the worker never waits for more than that, so a lone request is not held back.
    """

    def __init__(
        self,
        model: SynthesizerTrn,
        *,
        max_batch: int = 32,
        noise_scale: float = 0.5,
        fast: bool = True,
        min_batch: int = 1,
        max_wait_s: float = 0.0,
        incoming: Callable[[], int] | None = None,
        graph_single: bool = True,
        single: GraphedDecoder | None = None,
        pack: bool = True,
        batch_buckets: bool = False,
        length_multiple: int = 25,
        graph_below: int = 2,
        dec: FastGenerator | None = None,
    ) -> None:
        if max_batch < 1 or not 1 <= min_batch <= max_batch or max_wait_s < 0:
            raise ValueError(
                f"need 1 <= min_batch <= max_batch and max_wait_s >= 0, got {min_batch}, "
                f"{max_batch}, {max_wait_s}"
            )
        self.min_batch, self.max_wait_s, self.incoming = min_batch, max_wait_s, incoming
        self.model, self.max_batch, self.noise_scale = model, max_batch, noise_scale
        device = next(model.parameters()).device
        cuda = device.type == "cuda"
        # A caller's own FastGenerator may be shared: its frozen kernels are the generator's
        # size again per layout.
        self.dec = (dec or FastGenerator(model.dec)) if cuda and fast else None
        self.pack, self.batch_buckets = pack, batch_buckets
        self.length_multiple = length_multiple
        if graph_below < 1:
            raise ValueError(f"graph_below must be >= 1, got {graph_below}")
        self.graph_below = graph_below
        # A lone job replays a CUDA graph (launch-bound otherwise: ~36 ms for 10 s of audio).
        if single is None and self.dec is not None and graph_single:
            single = GraphedDecoder(model, dec=self.dec, noise_scale=noise_scale)
        self._single = single
        # Priority 0 is CUDA's lowest (the default stream's too).
        self._stream = torch.cuda.Stream(device, priority=0) if cuda else None
        self._jobs: list[tuple[AudioJob, Future[Tensor], float]] = []
        # Wall time spent decoding (submission to audio on the host) and batches run.
        self.busy_s = 0.0
        self.batches = 0
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sovits-worker", daemon=True)
        self._thread.start()

    def submit(self, job: AudioJob) -> Future[Tensor]:
        future: Future[Tensor] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the vocoder worker is closed")
            if self._stream is not None:
                # The job's tensors (its noise draw, say) were made on the submitting thread's
                # stream; work the worker's stream runs from now on waits for them (no host
                # synchronisation).
                self._stream.wait_stream(torch.cuda.current_stream(self._stream.device))
            self._jobs.append((job, future, time.perf_counter()))
            self._wake.notify()
        return future

    def close(self) -> None:
        """Finish the queued jobs, then stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _wanted(self) -> int:
        """Jobs worth waiting for (called with the lock held)."""
        if self.min_batch <= 1 or self.incoming is None:
            return self.min_batch
        try:
            incoming = self.incoming()
        except Exception:  # a broken hint must not stop the worker: then wait for nobody
            incoming = 0
        return min(self.min_batch, len(self._jobs) + incoming)

    def _take(self) -> list[tuple[AudioJob, Future[Tensor]]]:
        """The oldest job and, in queue order, up to `max_batch - 1` more that can share its
        decode call (same `batch_key`); the others keep their places (lock held)."""
        key = self._jobs[0][0].batch_key(self.noise_scale)
        taken: list[tuple[AudioJob, Future[Tensor]]] = []
        kept: list[tuple[AudioJob, Future[Tensor], float]] = []
        for entry in self._jobs:
            job, future, _ = entry
            if len(taken) < self.max_batch and job.batch_key(self.noise_scale) == key:
                taken.append((job, future))
            else:
                kept.append(entry)
        self._jobs = kept
        return taken

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closed:
                    self._wake.wait()
                if not self._jobs:
                    return
                deadline = self._jobs[0][2] + self.max_wait_s
                while len(self._jobs) < self._wanted() and not self._closed:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                batch = self._take()
            started = time.perf_counter()
            try:
                host = self._decode([job for job, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0][1].set_exception(exc)
                    continue
                # One job's failure (a CUDA out-of-memory, input the networks refuse) must not
                # fail its companions: each is decoded alone, and only the culprit fails.
                for job, future in batch:
                    try:
                        [samples] = self._decode([job])
                    except Exception as alone:
                        future.set_exception(alone)
                    else:
                        future.set_result(samples)
                continue
            self.busy_s += time.perf_counter() - started
            self.batches += 1
            for (_, future), samples in zip(batch, host, strict=True):
                future.set_result(samples)

    def _decode(self, jobs: list[AudioJob]) -> list[Tensor]:
        """The jobs' audio on the host, decoded in one call on the worker's stream."""
        with torch.inference_mode(), torch.cuda.stream(self._stream):
            single = self._single
            if (
                single is not None
                and len(jobs) < self.graph_below
                and all(j.speed == 1 and j.codes.numel() <= single.max_tokens for j in jobs)
            ):
                # One graph replay per job, with its own noise and scale when it has them (a
                # stream window's).
                return [
                    single.decode(j.codes, j.phones, j.ge, j.noise, j.noise_scale) for j in jobs
                ]
            batch = list(jobs)
            if self.batch_buckets:
                # Repeats of the last job (decoded, then dropped) round the batch up to a power
                # of two, so that a few batch sizes meet new convolution plans, not every one;
                # never past max_batch, the memory the worker was sized for.
                size = min(1 << (len(jobs) - 1).bit_length(), max(self.max_batch, len(jobs)))
                batch += [jobs[-1]] * (size - len(jobs))
            audio = decode_batch(
                self.model,
                batch,
                noise_scale=self.noise_scale,
                dec=self.dec,
                pack=self.pack,
                length_multiple=self.length_multiple,
            )
            return [a.float().cpu() for a in audio[: len(jobs)]]  # synchronises this stream


class GraphedChunkDecoder(GraphedDecoder):
    """SoVITS decode of one stream chunk replayed from a CUDA graph (time to first audio).

    A small decode is bound by kernel launches, not by the GPU: `decode` of 10 tokens costs
    tens of milliseconds of host time. This is a `GraphedDecoder` for chunks of exactly
    `tokens` codes whose phones are right-padded (and masked) to the smallest of
    `phone_buckets`, every bucket captured at construction.

    Args:
        model: a CUDA `SynthesizerTrn`.
        tokens: codes per chunk (the scheduler's `first_chunk_tokens`).
        phone_buckets: padded phone lengths to capture (a chunk's phones must fit the last).
        noise_scale: as in `decode` (the draw comes from the default CUDA generator).
    """

    def __init__(
        self,
        model: SynthesizerTrn,
        tokens: int,
        phone_buckets: Sequence[int] = (32, 64, 128, 256),
        noise_scale: float = 0.5,
    ) -> None:
        if tokens < 1 or not phone_buckets or min(phone_buckets) < 1:
            raise ValueError(
                f"need tokens >= 1 and positive phone buckets, got {tokens}, {phone_buckets}"
            )
        super().__init__(model, token_multiple=tokens, max_tokens=tokens, noise_scale=noise_scale)
        self.tokens = tokens
        self.buckets = tuple(sorted(phone_buckets))
        for bucket in self.buckets:
            self.capture(tokens, bucket)

    def bucket(self, tokens: int, phones: int) -> tuple[int, int]:
        if tokens != self.tokens:
            raise ValueError(
                f"this decoder was captured for ({self.tokens},) codes, got ({tokens},)"
            )
        padded = next((b for b in self.buckets if b >= phones), None)
        if padded is None or phones < 1:
            raise ValueError(
                f"phones must be (m,) with 1 <= m <= {self.buckets[-1]}, got ({phones},)"
            )
        return tokens, padded
