"""Continuous batching of text-to-semantic decoding for one GPT checkpoint.

Every `step()`:

1. rows whose request was cancelled are freed (so a disconnect frees its row within a step);
2. queued requests are admitted into free rows: one `[text ; prompt]` pass per prompt length
   (texts left-padded, as the official batch decoder does) fills their rows' caches, each row
   laid out from slot 0 with its own lengths;
3. one batched step (`decode_and_sample`) advances every occupied row by one token, from a
   CUDA graph of the smallest (rows, span) bucket that holds them, or eagerly;
4. the sampled tokens come back in one host copy; finished rows are retired and their
   handles completed, and chunks are streamed as soon as a request has enough tokens.

On CUDA the loop is pipelined: step N+1 is launched before step N's tokens are read back
(sampled tokens stay on the device and feed the next step), so the host's bookkeeping overlaps
the GPU's work. A row that finishes in step N then runs once more in step N+1, whose output
for it is ignored; its row is reused from the following step on.

Stopping follows `Text2Semantic.generate` exactly (EOS test on the penalised logits, early
stop, step cap, `idx`), so a request's `T2SResult` has the same form. With `exact_rng=True`
(eager only) each request draws from its own `torch.Generator` seeded like `generate(seed=)`,
which reproduces its tokens draw for draw; otherwise the counter-based noise is used.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.serving.batch_decode import (
    SlotPool,
    StepFunction,
    StepGraphs,
    fused_step,
    select_step,
)
from voiceseal_models.gpt_sovits.serving.errors import (
    QueueFull,
    RequestFailed,
    RequestTooLong,
    ServingError,
)
from voiceseal_models.gpt_sovits.serving.kernel_launch import compile_only
from voiceseal_models.gpt_sovits.serving.requests import RequestHandle, T2SRequest
from voiceseal_models.gpt_sovits.serving.sampler import MIN_STEPS_BEFORE_EOS
from voiceseal_models.gpt_sovits.serving.wide_step import WIDE_MIN_ROWS, dispatch_step
from voiceseal_models.gpt_sovits.t2s import StopReason, T2SResult, Text2Semantic

SEED_RANGE = 1 << 32


def powers_of_two(low: int, high: int) -> tuple[int, ...]:
    """low, 2 low, 4 low ... up to and including `high` (which closes the list)."""
    out: list[int] = []
    size = low
    while size < high:
        out.append(size)
        size *= 2
    return (*out, high)


@dataclass(frozen=True)
class SchedulerConfig:
    """Sizes and policies of a scheduler.

    Attributes:
        max_rows: concurrent decode rows (KV memory is max_rows x capacity slots).
        capacity: KV slots per row = the longest length bucket (text + prompt + steps).
        batch_buckets: row counts with a captured graph (default 1, 2, 4 ... max_rows).
        span_buckets: attended lengths with a captured graph (default 256, 512 ... capacity).
        max_queue: waiting requests beyond which `submit` raises `QueueFull`.
        cuda_graphs: replay captured graphs on a CUDA device (else run eagerly).
        exact_rng: per-request `torch.Generator`s, reproducing `Text2Semantic.generate`
            (eager only: generator draws cannot live in a shared graph).
        first_chunk_tokens / chunk_tokens: tokens per streamed chunk (first, then later).
        too_long: "refuse" raises `RequestTooLong` at submit when text + prompt + max_steps
            exceed `capacity`; "truncate" lowers the request's max_steps to fit (refusing
            only when not even the minimum length fits).
        pipeline: on CUDA, launch each step before reading back the previous one (see the
            module doc); ignored on the CPU and with `exact_rng`.
        compile_step: run the step through `torch.compile` (fewer, fused kernels; costs
            compilation time at warm-up, see `compiled_step`).
        fused_step: the Triton step (`triton_step`, ~5 kernels per layer): None takes it on
            CUDA when Triton imports and its self-check passes, True requires it, False never;
            never with `exact_rng`. Buckets of more than `fused_max_rows` rows run the eager
            network with the fused sampler (None: the measured default, see `fused_step`).
        wide_min_rows: on CUDA, row buckets of at least this many rows run
            `wide_step.decode_and_sample_wide` (attention reads each row's own keys only;
            faster from ~64 rows on an H100); None never.
    """

    max_rows: int = 32
    capacity: int = 2048
    batch_buckets: tuple[int, ...] | None = None
    span_buckets: tuple[int, ...] | None = None
    max_queue: int = 256
    cuda_graphs: bool = True
    exact_rng: bool = False
    first_chunk_tokens: int = 10
    chunk_tokens: int = 25
    too_long: Literal["refuse", "truncate"] = "refuse"
    pipeline: bool = True
    compile_step: bool = False
    fused_step: bool | None = None
    fused_max_rows: int | None = None
    wide_min_rows: int | None = WIDE_MIN_ROWS

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.capacity < MIN_STEPS_BEFORE_EOS + 2:
            raise ValueError(f"max_rows must be >= 1 and capacity >= 13, got {self}")
        if self.max_queue < 0 or self.first_chunk_tokens < 1 or self.chunk_tokens < 1:
            raise ValueError(f"max_queue >= 0 and chunk sizes >= 1 are required, got {self}")
        for name, buckets, top in (
            ("batch_buckets", self.batch_buckets, self.max_rows),
            ("span_buckets", self.span_buckets, self.capacity),
        ):
            if buckets is not None and (
                list(buckets) != sorted(set(buckets)) or buckets[0] < 1 or buckets[-1] != top
            ):
                raise ValueError(f"{name} must increase strictly and end at {top}, got {buckets}")
        if self.too_long not in ("refuse", "truncate"):
            raise ValueError(f"too_long must be 'refuse' or 'truncate', got {self.too_long!r}")

    @property
    def rows_buckets(self) -> tuple[int, ...]:
        return self.batch_buckets or powers_of_two(1, self.max_rows)

    @property
    def length_buckets(self) -> tuple[int, ...]:
        return self.span_buckets or powers_of_two(min(256, self.capacity), self.capacity)


@dataclass
class _Launch:
    """A step sent to the device: where its (rows, 2) output lands and which rows it ran."""

    out: Tensor
    event: torch.cuda.Event | None
    rows: list[tuple[int, _Row]]


@dataclass
class _Row:
    handle: RequestHandle
    base: int  # text + prompt length: the slot of the first generated token
    prompt: Tensor | None  # (Ty,) on the device
    generator: torch.Generator | None


class Scheduler:
    """Continuous-batching decoder for one `Text2Semantic` model (see the module doc).

    Drive it with `step()` / `run_until_idle()` from one thread, or `start()` a background
    thread; `submit`, `cancel` and the handles are thread-safe.
    """

    def __init__(self, model: Text2Semantic, config: SchedulerConfig | None = None) -> None:
        self.model = model
        self.config = config or SchedulerConfig()
        self.network = model.network
        self.device = model.device
        net_config = self.network.config
        self.eos = net_config.eos
        with torch.inference_mode():
            # Positions up to the capacity must exist before any graph captures the table.
            self.network.ar_audio_position.ensure(self.config.capacity + 1)
            self.pool = SlotPool.allocate(
                self.network,
                self.config.max_rows,
                self.config.capacity,
                device=self.device,
                dtype=model.dtype,
            )
        self.use_graphs = (
            self.config.cuda_graphs and self.device.type == "cuda" and not self.config.exact_rng
        )
        self._wide_from: int | None = None
        if (
            self.config.wide_min_rows is not None
            and self.device.type == "cuda"
            and not self.config.exact_rng
        ):
            self._wide_from = self.config.wide_min_rows
        # Before the fused step's self-check launches anything: every Triton variant that the
        # self-check and the graph captures will need, compiled side by side.
        self._precompiled = (
            self.use_graphs
            and not self.config.compile_step
            and self.config.fused_step is not False
            and self._precompile()
        )
        self._step = select_step(
            self.network,
            self.device,
            compile_step=self.config.compile_step,
            fused=False if self.config.exact_rng else self.config.fused_step,
            fused_max_rows=self.config.fused_max_rows,
            check_capacity=self.config.length_buckets[0],
        )
        if self._wide_from is not None:
            self._step = dispatch_step(self._wide_from, self._step)
        self.graphs = StepGraphs(self.network, self.pool, self._step) if self.use_graphs else None
        self.pipelined = (
            self.config.pipeline and self.device.type == "cuda" and not self.config.exact_rng
        )
        # Two pinned buffers: the step in flight writes one while the previous one is read.
        self._host = (
            [
                torch.zeros(self.config.max_rows, 2, dtype=torch.int64, pin_memory=True)
                for _ in range(2)
            ]
            if self.device.type == "cuda"
            else []
        )
        self._flip = 0
        self._inflight: _Launch | None = None
        self._rows: list[_Row | None] = [None] * self.config.max_rows
        self._queue: deque[RequestHandle] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.steps_run = 0

    # ------------------------------------------------------------------ public API

    @property
    def active(self) -> int:
        """Occupied decode rows."""
        return sum(row is not None for row in self._rows)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def submit(self, request: T2SRequest) -> RequestHandle:
        """Validate and enqueue; raises `QueueFull` (back-pressure), `RequestTooLong` or
        `ValueError` (bad input) without touching the running batch."""
        max_steps = self._check(request)
        with self._wake:
            if len(self._queue) >= self.config.max_queue:
                raise QueueFull(
                    f"{len(self._queue)} requests already wait (max_queue "
                    f"{self.config.max_queue}); retry later"
                )
            handle = RequestHandle(self._next_id, request, max_steps)
            self._next_id += 1
            self._queue.append(handle)
            self._wake.notify()
        return handle

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Capture every (rows, span) graph now (before serving), so no request pays for it."""
        if self.graphs is None:
            return
        if self.active:
            raise RuntimeError("warm_up must run before requests are admitted")
        buckets = [bucket for bucket in self._buckets() if bucket not in self.graphs]
        if not self._precompiled:
            self._compile_pass(self._step, buckets)
        for rows, span in buckets:
            self.graphs.capture(rows, span)
        torch.cuda.synchronize(self.device)
        self._reset_rows()

    def _buckets(self) -> list[tuple[int, int]]:
        """Every (rows, span) bucket that gets a graph."""
        return [(rows, span) for rows in self.config.rows_buckets for span in self._spans(rows)]

    @torch.inference_mode()
    def _compile_pass(self, step: StepFunction, buckets: list[tuple[int, int]]) -> None:
        """Compile the Triton variants that `step` launches in these buckets, side by side
        (`kernel_launch`; a fresh H100 machine spent ~13 s compiling a full-size scheduler's
        47 variants one by one inside its self-check and captures)."""
        with compile_only():
            for rows, span in buckets:
                step(self.network, self.pool, rows, span, None)
        # The pass ran the steps' PyTorch parts on the unlaunched kernels' garbage, and they
        # wrote it into cache slots: NaN there would poison the masked attention of later rows.
        self.pool.kv.zero_()

    def _precompile(self) -> bool:
        """`_compile_pass` over every bucket with the fused step, before its self-check (which
        then reuses the variants of the shortest span bucket). False where Triton is missing."""
        try:
            step = fused_step(self.network, self.config.fused_max_rows)
        except (ImportError, ValueError):  # no Triton, or shapes it does not handle
            return False
        if self._wide_from is not None:
            step = dispatch_step(self._wide_from, step)
        self._compile_pass(step, self._buckets())
        return True

    @torch.inference_mode()
    def step(self) -> int:
        """One scheduling iteration; returns how many requests were decoding in it."""
        self._retire_cancelled()
        self._admit()
        occupied = [(i, row) for i, row in enumerate(self._rows) if row is not None]
        launch = self._launch(occupied) if occupied else None
        if self.pipelined:
            previous, self._inflight = self._inflight, launch
        else:
            previous = launch
        if previous is not None:
            self._collect(previous)
        return len(occupied)

    @property
    def busy(self) -> bool:
        """Requests are queued or decoding, or a step's tokens are still to be read."""
        return bool(self.active or self.queued or self._inflight is not None)

    def run_until_idle(self, max_iterations: int | None = None) -> None:
        """Step until no request is queued or decoding."""
        done = 0
        while self.busy:
            self.step()
            done += 1
            if max_iterations is not None and done >= max_iterations:
                return

    def start(self) -> None:
        """Serve from a daemon thread until `stop()`."""
        if self._thread is not None:
            raise RuntimeError("the scheduler thread is already running")
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="t2s-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ admission

    def _check(self, request: T2SRequest) -> int:
        """Bad input raises here, at submit time; returns the max_steps to use."""
        phones, bert, prompt = request.phones, request.bert, request.prompt
        cfg = self.network.config
        if phones.dim() != 1 or phones.numel() == 0:
            raise ValueError(f"phones must be a non-empty (T,) tensor, got {tuple(phones.shape)}")
        if bert.shape != (1024, phones.shape[0]):
            raise ValueError(
                f"bert must be (1024, {phones.shape[0]}) to match the phones, got "
                f"{tuple(bert.shape)}"
            )
        if int(phones.min()) < 0 or int(phones.max()) >= cfg.phoneme_vocab_size:
            raise ValueError(f"phoneme ids must lie in [0, {cfg.phoneme_vocab_size})")
        prompt_len = 0
        if prompt is not None:
            if prompt.dim() != 1:
                raise ValueError(f"prompt must be (T,), got {tuple(prompt.shape)}")
            if prompt.numel() and (int(prompt.min()) < 0 or int(prompt.max()) >= cfg.eos):
                raise ValueError(f"prompt semantic ids must lie in [0, {cfg.eos})")
            prompt_len = prompt.shape[0]
        if request.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {request.max_steps}")
        if not 0 <= request.seed < SEED_RANGE:
            raise ValueError(f"seed must lie in [0, 2**32), got {request.seed}")
        base = phones.shape[0] + prompt_len
        capacity = self.config.capacity
        # The last step feeds a token at slot base + max_steps - 2 and prefill needs base + 1.
        fits = capacity - base + 1
        if base + 1 > capacity or fits < min(request.max_steps, MIN_STEPS_BEFORE_EOS + 1):
            raise RequestTooLong(
                f"text ({phones.shape[0]} phones) + prompt ({prompt_len} tokens) leave "
                f"{max(fits, 0)} of the longest bucket's {capacity} slots for decoding; split "
                f"the text into shorter segments"
            )
        if request.max_steps <= fits:
            return request.max_steps
        if self.config.too_long == "truncate":
            return fits
        raise RequestTooLong(
            f"text ({phones.shape[0]} phones) + prompt ({prompt_len} tokens) + max_steps "
            f"({request.max_steps}) exceed the longest bucket ({capacity} slots); at most "
            f"{fits} steps fit: lower max_steps or split the text"
        )

    def _admit(self) -> None:
        free = [i for i, row in enumerate(self._rows) if row is None]
        taken: list[tuple[int, RequestHandle]] = []
        with self._lock:
            while self._queue and len(taken) < len(free):
                handle = self._queue.popleft()
                if handle.cancel_requested:
                    handle.fail_cancelled()
                else:
                    taken.append((free[len(taken)], handle))
        if not taken:
            return
        if self.config.exact_rng:
            groups = [[item] for item in taken]  # bit-for-bit the prompt pass of `generate`
        else:
            # One prompt pass per prompt length (the official batch layout needs equal
            # prompts; texts are left-padded): a voice's requests share one pass.
            by_length: dict[int, list[tuple[int, RequestHandle]]] = {}
            for item in taken:
                prompt = item[1].request.prompt
                key = -1 if prompt is None else prompt.shape[0]
                by_length.setdefault(key, []).append(item)
            groups = list(by_length.values())
        for group in groups:
            try:
                self._prefill(group)
            except (torch.OutOfMemoryError, RuntimeError, ValueError) as exc:
                if isinstance(exc, torch.OutOfMemoryError):
                    _release_cached_memory(self.device)
                if len(group) > 1:
                    # Retry one by one, so only the request that cannot be served fails.
                    for item in group:
                        self._admit_alone(item)
                else:
                    self._fail_admission(group[0][1], exc)

    def _admit_alone(self, item: tuple[int, RequestHandle]) -> None:
        try:
            self._prefill([item])
        except (torch.OutOfMemoryError, RuntimeError, ValueError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                _release_cached_memory(self.device)
            self._fail_admission(item[1], exc)

    @staticmethod
    def _fail_admission(handle: RequestHandle, exc: BaseException) -> None:
        what = "CUDA out of memory" if isinstance(exc, torch.OutOfMemoryError) else "error"
        handle.fail(RequestFailed(f"request {handle.id} could not be admitted ({what}): {exc}"))

    def _prefill(self, group: list[tuple[int, RequestHandle]]) -> None:
        """One `[text ; prompt]` pass for requests with equal prompt lengths, each row's keys
        and values then moved to the start of its own cache row (keys do not depend on the
        slot they sit in: positions are added to the embeddings)."""
        model, net, pool, dev = self.model, self.network, self.pool, self.device
        requests = [h.request for _, h in group]
        lengths = [r.phones.shape[0] for r in requests]
        width, n = max(lengths), len(group)
        # Embed right-padded (positions start at 0 in every row), then left-pad as the
        # official batch layout wants: each text's last token next to its prompt.
        phones = torch.zeros(n, width, dtype=torch.int64)
        bert = torch.zeros(n, 1024, width)
        for j, r in enumerate(requests):
            phones[j, : lengths[j]] = r.phones
            bert[j, :, : lengths[j]] = r.bert
        embedded = net.embed_text(phones.to(dev), bert.to(dev, model.dtype))
        x = torch.zeros_like(embedded)
        x_valid = torch.zeros(n, width, dtype=torch.bool, device=dev)
        for j, tx in enumerate(lengths):
            x[j, width - tx :] = embedded[j, :tx]
            x_valid[j, width - tx :] = True
        first = requests[0].prompt
        ty = 0 if first is None else first.shape[0]
        prompts = None if first is None else torch.stack([r.prompt for r in requests])  # type: ignore[misc]
        prompts = None if prompts is None else prompts.to(dev, torch.int64)
        padded = min(lengths) != width
        cache, logits = net.prefill(x, x_valid if padded else None, prompts, width + ty + 1)
        for j, ((index, _), tx) in enumerate(zip(group, lengths, strict=True)):
            pool.kv[:, 0, index, :, :tx] = cache.k[:, j, :, width - tx : width]
            pool.kv[:, 1, index, :, :tx] = cache.v[:, j, :, width - tx : width]
            if ty:
                pool.kv[:, 0, index, :, tx : tx + ty] = cache.k[:, j, :, width : width + ty]
                pool.kv[:, 1, index, :, tx : tx + ty] = cache.v[:, j, :, width : width + ty]
        self._setup_rows(group, lengths, prompts, logits)

    def _setup_rows(
        self,
        group: list[tuple[int, RequestHandle]],
        text_lengths: list[int],
        prompts: Tensor | None,
        logits: Tensor,
    ) -> None:
        """Per-row device state of newly admitted rows, written for the whole group at once."""
        pool, s, dev = self.pool, self.pool.sampling, self.device
        requests = [h.request for _, h in group]
        ty = 0 if prompts is None else prompts.shape[1]
        index = torch.tensor([i for i, _ in group], device=dev)
        bases = [tx + ty for tx in text_lengths]

        def values(items: list[float] | list[int], dtype: torch.dtype) -> Tensor:
            return torch.tensor(items, dtype=dtype).to(dev)

        pool.fresh_logits[index] = logits.float()
        pool.fresh[index] = True
        pool.tokens[index] = 0
        pool.pos[index] = ty
        pool.slot[index] = values(bases, torch.int64)
        s.top_k[index] = values([r.sampling.top_k for r in requests], torch.int64)
        s.top_p[index] = values([r.sampling.top_p for r in requests], torch.float32)
        s.temperature[index] = values([r.sampling.temperature for r in requests], torch.float32)
        s.penalty[index] = values([r.sampling.repetition_penalty for r in requests], torch.float32)
        s.seed[index] = values([r.seed for r in requests], torch.int64)
        s.step[index] = 0
        s.ignore_eos[index] = torch.tensor([r.ignore_eos for r in requests]).to(dev)
        s.seen[index] = False
        if prompts is not None and ty:
            s.seen[index.repeat_interleave(ty), prompts.flatten()] = True
        for j, (row_index, handle) in enumerate(group):
            generator = None
            if self.config.exact_rng:
                generator = torch.Generator(device=dev)
                generator.manual_seed(handle.request.seed)
            prompt = None if prompts is None else prompts[j]
            self._rows[row_index] = _Row(handle, bases[j], prompt, generator)

    # ------------------------------------------------------------------ stepping

    def _slot_of(self, row: _Row) -> int:
        """Cache slot the row's next launched step writes (clamped like the device does)."""
        slot = row.base + max(row.handle.steps_launched - 1, 0)
        return min(slot, self.config.capacity - 1)

    def _spans(self, rows: int) -> tuple[int, ...]:
        """Length buckets of a row bucket: the wide step reads each row's own keys whatever the
        span, so its buckets need one graph (the longest span), not one per length."""
        if self._wide_from is not None and rows >= self._wide_from:
            return self.config.length_buckets[-1:]
        return self.config.length_buckets

    def _launch(self, occupied: list[tuple[int, _Row]]) -> _Launch | None:
        rows = _bucket(self.config.rows_buckets, occupied[-1][0] + 1)
        span = _bucket(self._spans(rows), max(self._slot_of(r) for _, r in occupied) + 1)
        try:
            out = self._run(rows, span)
        except torch.OutOfMemoryError as exc:
            # Only eager steps allocate; give the newest request's row back and go on.
            newest = max(occupied, key=lambda item: item[1].handle.id)[0]
            self._fail_row(newest, RequestFailed(f"CUDA out of memory while decoding: {exc}"))
            _release_cached_memory(self.device)
            return None
        self.steps_run += 1
        for _, row in occupied:
            row.handle.steps_launched += 1
        if self.device.type != "cuda":
            return _Launch(out.clone(), None, occupied)
        host = self._host[self._flip][:rows]
        self._flip ^= 1
        host.copy_(out, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return _Launch(host, event, occupied)

    def _collect(self, launch: _Launch) -> None:
        if launch.event is not None:
            launch.event.synchronize()
        pairs = launch.out.tolist()
        for index, row in launch.rows:
            # Skip rows that finished, were cancelled or were given to another request since.
            if self._rows[index] is row:
                token, hit_eos = pairs[index]
                self._consume(index, row, token, bool(hit_eos))

    def _run(self, rows: int, span: int) -> Tensor:
        if self.graphs is not None:
            if (rows, span) not in self.graphs:
                raise RuntimeError(
                    f"no graph for bucket (rows {rows}, span {span}): call warm_up() before serving"
                )
            return self.graphs.replay(rows, span)
        noise = self._generator_noise(rows) if self.config.exact_rng else None
        return self._step(self.network, self.pool, rows, span, noise)

    def _generator_noise(self, rows: int) -> Tensor:
        """Per-row draws exactly as `generate` makes them: (1, V - 1) during the first steps
        (the EOS column is dropped there), (1, V) later, in the model's dtype."""
        vocab = self.network.config.vocab_size
        noise = torch.ones(rows, vocab, dtype=torch.float32, device=self.device)
        for i in range(rows):
            row = self._rows[i]
            if row is None:
                continue
            width = vocab - 1 if row.handle.steps_launched < MIN_STEPS_BEFORE_EOS else vocab
            draw = torch.empty(1, width, dtype=self.model.dtype, device=self.device)
            noise[i, :width] = draw.exponential_(1.0, generator=row.generator)[0].float()
        return noise

    def _consume(self, index: int, row: _Row, token: int, hit_eos: bool) -> None:
        handle, request = row.handle, row.handle.request
        idx = handle.steps
        handle.steps += 1
        stop: StopReason | None = None
        if request.early_stop_num != -1 and len(handle.tokens) + 1 > request.early_stop_num:
            stop = "early_stop"
        if hit_eos:
            stop = "eos"
        elif stop is None and idx == handle.max_steps - 1:
            stop = "max_steps"
        if stop != "eos":
            handle.push(token, self.config.first_chunk_tokens, self.config.chunk_tokens)
        if stop is None:
            return
        prompt = row.prompt.cpu() if row.prompt is not None else torch.zeros(0, dtype=torch.int64)
        result = T2SResult(
            y=torch.cat([prompt, torch.tensor(handle.tokens, dtype=torch.int64)]),
            idx=0 if row.prompt is None else idx,
            prompt_len=prompt.shape[0],
            stop=stop,
        )
        self._free_row(index)
        handle.finish(result)

    def _retire_cancelled(self) -> None:
        for i, row in enumerate(self._rows):
            if row is not None and row.handle.cancel_requested:
                self._free_row(i)
                row.handle.fail_cancelled()

    def _fail_row(self, index: int, error: ServingError) -> None:
        row = self._rows[index]
        if row is not None:
            self._free_row(index)
            row.handle.fail(error)

    def _free_row(self, index: int) -> None:
        """Give a row back. Steps still run free rows inside the row bucket (harmlessly), and
        attention reads each row's slots 0..slot: restarting its slot at 0 keeps that to one
        slot instead of a whole span (at 128 rows of unequal lengths, most of a step's reads)."""
        self._rows[index] = None
        self.pool.slot[index] = 0

    def _reset_rows(self) -> None:
        """Put the per-row device state back to "free" after warm-up scribbled on it."""
        pool = self.pool
        for tensor in (pool.tokens, pool.pos, pool.slot, pool.sampling.step):
            tensor.zero_()
        pool.fresh.fill_(False)

    def _serve(self) -> None:
        while True:
            with self._wake:
                while (
                    not self._stopping
                    and not self._queue
                    and not self.active
                    and self._inflight is None
                ):
                    self._wake.wait()
                if self._stopping:
                    break
            self.step()
        with self._wake:
            waiting = list(self._queue)
            self._queue.clear()
        for handle in waiting:
            handle.fail(RequestFailed("the scheduler stopped before serving this request"))
        for i in range(len(self._rows)):
            self._fail_row(i, RequestFailed("the scheduler stopped while decoding this request"))


def _bucket(buckets: tuple[int, ...], need: int) -> int:
    for size in buckets:
        if size >= need:
            return size
    raise RequestTooLong(f"{need} exceeds the largest bucket {buckets[-1]}")


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
