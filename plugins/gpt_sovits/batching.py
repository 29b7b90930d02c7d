"""Continuous batching of the GPT stage: one scheduler per loaded GPT file.

The model pool keeps a :class:`LoadedGPT` per GPT file; its :class:`Batcher` (made on the first
request, so that a process that only registers voices allocates no KV cache) wraps a
:class:`~voiceseal_models.gpt_sovits.serving.Scheduler` and the thread that steps it. Requests
for every voice that shares the file decode in the same steps, whatever their prompts.

The thread starts with the first submission and ends after ``idle_s`` without work, or as soon
as the batcher is idle once the pool has evicted its model (:meth:`Batcher.retire`); a later
submission starts it again. :meth:`Batcher.close` (engine shutdown) cancels what is left.

Failures stay with their request: the scheduler fails one request whose admission fails (CUDA
out of memory included) and the newest row when a step runs out of memory. A step that fails
in any other way cannot be pinned on one row; every request in flight then fails (each with the
reason, see :meth:`Batcher.failure`) and the scheduler keeps serving the next ones.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from voiceseal_models.gpt_sovits.serving import (
    QueueFull,
    RequestHandle,
    Scheduler,
    SchedulerConfig,
    T2SRequest,
)
from voiceseal_models.gpt_sovits.t2s import Text2Semantic
from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings

log = logging.getLogger(__name__)

#: Default decoding rows: a GPU step costs about the same for 1 or 32 rows; on the CPU every
#: row adds work, so a few rows already take what batching gains there (and their KV cache).
CUDA_ROWS, CPU_ROWS = 32, 4
_CLOSE_WAIT_S = 30.0
#: A submitter waiting for room re-checks whether it still wants to wait at least this often.
_ROOM_POLL_S = 0.05
#: Reasons of failed steps kept for their requests to read (the oldest are forgotten).
_KEPT_FAILURES = 1024


def scheduler_config(settings: GPTSoVITSSettings, device: torch.device) -> SchedulerConfig:
    """The scheduler's sizes and policies from the engine's settings, for ``device``."""
    cuda = device.type == "cuda"
    rows = settings.batch_max_rows or (CUDA_ROWS if cuda else CPU_ROWS)
    queue = settings.batch_max_queue if settings.batch_max_queue >= 0 else 4 * rows
    exact = settings.batch_exact_rng if settings.batch_exact_rng is not None else not cuda
    # Chunks as long as the streaming decoder's windows: each chunk that arrives completes one
    # window, so batching adds no latency to the first audio.
    chunk = settings.stream_chunk_tokens
    return SchedulerConfig(
        max_rows=rows,
        capacity=settings.batch_capacity,
        max_queue=queue,
        exact_rng=exact,
        first_chunk_tokens=chunk,
        chunk_tokens=chunk,
        too_long="truncate",
    )


@dataclass
class BatchStats:
    """What the serving thread saw (for tests, metrics and benchmarks)."""

    steps: int = 0
    #: Steps that decoded more than one request at once.
    batched_steps: int = 0
    #: Most requests decoded in one step.
    peak_rows: int = 0
    #: Steps that failed as a whole (every request in them failed).
    failed_steps: int = 0
    #: Submissions of admitted requests that found the queue full and waited for room.
    room_waits: int = 0


class Batcher:
    """A scheduler and its serving thread (see the module docstring)."""

    def __init__(self, model: Text2Semantic, config: SchedulerConfig, idle_s: float) -> None:
        self.scheduler = Scheduler(model, config)
        self.scheduler.warm_up()  # captures the step graphs (CUDA only) before any request
        self.idle_s = idle_s
        self.stats = BatchStats()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._retired = False
        self._closed = False
        self._outstanding: set[RequestHandle] = set()
        self._failures: OrderedDict[int, str] = OrderedDict()

    @property
    def config(self) -> SchedulerConfig:
        return self.scheduler.config

    @property
    def serving(self) -> bool:
        """Whether the serving thread runs."""
        with self._lock:
            return self._thread is not None

    def submit(
        self,
        requests: Sequence[T2SRequest],
        *,
        wait_for_room: Callable[[], bool] | None = None,
    ) -> list[RequestHandle]:
        """Queue ``requests``, in order.

        Without ``wait_for_room``, all or none: a full queue raises the scheduler's
        ``QueueFull`` (as ``RequestTooLong`` and ``ValueError`` do) after cancelling those
        already queued. With it (more work of a request already admitted, such as its next
        sentence: refusing it would cut a stream short), a full queue is waited out for as long
        as ``wait_for_room()`` says so; once it says no, ``QueueFull`` is raised likewise.
        """
        handles: list[RequestHandle] = []
        with self._lock:
            try:
                for request in requests:
                    waited = False
                    while True:
                        if self._closed:
                            raise RuntimeError("the engine is shutting down")
                        try:
                            handle = self.scheduler.submit(request)
                            break
                        except QueueFull:
                            if wait_for_room is None or not wait_for_room():
                                raise
                            if not waited:
                                waited = True
                                self.stats.room_waits += 1
                            self._room.wait(_ROOM_POLL_S)  # notified after every step
                    handles.append(handle)
                    self._outstanding.add(handle)
                    self._wake.set()
                    if self._thread is None:
                        self._thread = threading.Thread(
                            target=self._serve, name="gpt-sovits-batcher", daemon=True
                        )
                        self._thread.start()
            except BaseException:
                for handle in handles:
                    handle.cancel()  # dropped from the queue at the next step
                raise
        return handles

    def pending(self) -> list[RequestHandle]:
        """Submitted requests not finished yet (queued or decoding), oldest first."""
        with self._lock:
            return sorted((h for h in self._outstanding if not h.done), key=lambda h: h.id)

    def failure(self, handle: RequestHandle) -> str | None:
        """Why ``handle`` was dropped, when a failed step (not its client) cancelled it."""
        with self._lock:
            return self._failures.get(handle.id)

    def retire(self) -> None:
        """The model left the pool: serve what is queued, then let the thread end."""
        with self._lock:
            self._retired = True
            self._wake.set()

    def close(self) -> None:
        """Shutdown: cancel every request and wait (bounded) for the thread to end."""
        with self._lock:
            self._closed = True
            for handle in self._outstanding:
                handle.cancel()
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_CLOSE_WAIT_S)

    # ------------------------------------------------------------------ serving thread

    def _serve(self) -> None:
        scheduler = self.scheduler
        while True:
            with self._lock:
                self._room.notify_all()  # the last step may have made room in the queue
                self._wake.clear()
                busy = scheduler.busy
                self._outstanding = {h for h in self._outstanding if not h.done}
                if not busy and (self._retired or self._closed):
                    self._thread = None
                    return
            if busy:
                self._step()
                continue
            if not self._wake.wait(self.idle_s):
                with self._lock:
                    if not self._wake.is_set() and not scheduler.busy:
                        self._thread = None
                        return

    def _step(self) -> None:
        try:
            rows = self.scheduler.step()
        except Exception as exc:
            # Not one request's fault that the scheduler could isolate: every request in flight
            # fails with the reason, the next ones are served as usual.
            log.exception("gpt-sovits batch step failed")
            reason = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.stats.failed_steps += 1
                victims = [h for h in self._outstanding if not h.done]
                for handle in victims:
                    self._failures[handle.id] = reason
                while len(self._failures) > _KEPT_FAILURES:
                    self._failures.popitem(last=False)
            for handle in victims:
                handle.cancel()  # the scheduler frees their rows at its next step
            return
        stats = self.stats
        stats.steps += 1
        if rows > 1:
            stats.batched_steps += 1
        stats.peak_rows = max(stats.peak_rows, rows)


@dataclass
class LoadedGPT:
    """What the model pool keeps for a GPT file: the model and, once needed, its batcher."""

    model: Text2Semantic
    _batcher: Batcher | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def batcher(self, settings: GPTSoVITSSettings) -> Batcher:
        with self._lock:
            if self._batcher is None:
                config = scheduler_config(settings, self.model.device)
                self._batcher = Batcher(self.model, config, settings.batch_idle_s)
            return self._batcher

    @property
    def active_batcher(self) -> Batcher | None:
        return self._batcher

    def retire(self) -> None:
        if self._batcher is not None:
            self._batcher.retire()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
