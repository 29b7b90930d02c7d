"""What a client submits to the `Scheduler` and the handle it gets back.

A handle is safe to use from any thread: the scheduler thread appends tokens and chunks, the
client blocks on `result()` or iterates `chunks()`, and `cancel()` may come from anywhere (a
web handler that saw the client disconnect).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.sampling import SamplingParams
from voiceseal_models.gpt_sovits.serving.errors import RequestCancelled, ServingError
from voiceseal_models.gpt_sovits.t2s import DEFAULT_MAX_STEPS, T2SResult


@dataclass(frozen=True)
class TokenChunk:
    """Newly decoded semantic tokens of one request.

    Attributes:
        tokens: (n,) int64 on the CPU, n >= 1 except possibly for the final chunk.
        start: index of the first token within the request's generated tokens.
        final: True for the last chunk (the request has finished).
    """

    tokens: Tensor
    start: int
    final: bool


@dataclass(frozen=True)
class T2SRequest:
    """One text-to-semantic job.

    Attributes:
        phones: (Tx,) phoneme ids of the prompt text followed by the target text.
        bert: (1024, Tx) BERT features (zeros for non-Chinese text).
        prompt: (Ty,) semantic ids of the reference audio, or None (reference-free).
        sampling: top-k/top-p/temperature/repetition penalty (official defaults).
        seed: the request's randomness; the same seed and inputs give the same tokens
            whatever else shares the batch.
        early_stop_num: -1 disables; the official pipeline passes 50 x max_sec.
        max_steps: decoding step cap (official 1500).
        ignore_eos: never stop at EOS (forced lengths, for benchmarks only).
        on_chunk: called on the scheduler thread with each chunk (keep it short).
    """

    phones: Tensor
    bert: Tensor
    prompt: Tensor | None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    early_stop_num: int = -1
    max_steps: int = DEFAULT_MAX_STEPS
    ignore_eos: bool = False
    on_chunk: Callable[[TokenChunk], None] | None = None


class _End:
    """Marks the end of a handle's chunk stream."""


class RequestHandle:
    """A submitted request: its progress, its stream and its outcome."""

    def __init__(self, request_id: int, request: T2SRequest, max_steps: int) -> None:
        self.id = request_id
        self.request = request
        self.max_steps = max_steps  # may be less than requested (truncating policy)
        self.tokens: list[int] = []
        self.steps = 0  # decoding steps whose token the scheduler has read back
        self.steps_launched = 0  # ... and those sent to the device (one more when pipelined)
        self._streamed = 0
        self._chunks: queue.SimpleQueue[TokenChunk | _End] = queue.SimpleQueue()
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._result: T2SResult | None = None
        self._error: ServingError | None = None

    # ------------------------------------------------------------------ client side

    def cancel(self) -> None:
        """Ask the scheduler to drop this request; its row is freed before the next step."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> T2SResult:
        """Wait for the outcome; raises the request's error (cancelled, failed ...)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.id} did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def chunks(self, timeout: float | None = None) -> Iterator[TokenChunk]:
        """Yield chunks as the scheduler produces them; ends after the final one, raises the
        request's error if it fails or is cancelled. Iterate from one consumer only."""
        while True:
            try:
                item = self._chunks.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no chunk of request {self.id} within {timeout} s") from None
            if isinstance(item, _End):
                if self._error is not None:
                    raise self._error
                return
            yield item

    def poll_chunk(self) -> TokenChunk | None:
        """The next chunk if one is ready, else None (never blocks; for single-threaded
        drivers that step the scheduler themselves)."""
        while True:
            try:
                item = self._chunks.get_nowait()
            except queue.Empty:
                return None
            if isinstance(item, TokenChunk):
                return item
            self._chunks.put(item)  # keep the end marker for `chunks()`
            return None

    # ------------------------------------------------------------------ scheduler side

    def _emit(self, chunk: TokenChunk) -> None:
        self._chunks.put(chunk)
        if self.request.on_chunk is not None:
            self.request.on_chunk(chunk)

    def push(self, token: int, first_chunk: int, chunk: int) -> None:
        """Record a kept token; emit a chunk once enough have accumulated."""
        self.tokens.append(token)
        wanted = first_chunk if self._streamed == 0 else chunk
        if len(self.tokens) - self._streamed >= wanted:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        start = self._streamed
        self._streamed = len(self.tokens)
        self._emit(TokenChunk(torch.tensor(self.tokens[start:], dtype=torch.int64), start, final))

    def finish(self, result: T2SResult) -> None:
        self._result = result
        self._flush(final=True)
        self._done.set()
        self._chunks.put(_End())

    def fail(self, error: ServingError) -> None:
        self._error = error
        self._done.set()
        self._chunks.put(_End())

    def fail_cancelled(self) -> None:
        self.fail(RequestCancelled(f"request {self.id} was cancelled after {self.steps} steps"))
