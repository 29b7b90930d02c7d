"""Triton launches that a warm-up can turn into parallel compilation.

Triton compiles a kernel variant (one per set of compile-time constants and argument
specialisations) the first time it is launched, on the launching thread: on a fresh H100
machine the 47 variants of a full-size scheduler's buckets took ~13 s one after the other,
most of a cold start. Most of a compilation (MLIR passes, LLVM, ptxas) runs without the GIL,
so the variants can compile side by side on threads.

Every serving kernel is launched through `launch`. Inside `compile_only()`, `launch` asks
Triton to compile the variant the real call would need (`JITFunction.warmup`, same arguments)
on a thread pool instead of running it (`triton.AsyncCompileMode`); leaving the block waits for
every compilation, after which the real launches find their variants in Triton's in-memory
cache. A warm-up therefore runs its code path twice: once under `compile_only()` to collect
and compile the variants (the kernels' outputs are then garbage, so nothing in that pass may
read them on the host), then for real (self-checks, graph capture).

The flag is a context variable, so another thread launching kernels meanwhile (the vocoder's
warm-up, a serving thread) launches them as usual.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

# Inside `compile_only()`: the variants asked for so far (None outside).
_COMPILE_ONLY: ContextVar[set[Hashable] | None] = ContextVar(
    "voiceseal_triton_compile_only", default=None
)


def compiling_only() -> bool:
    """True inside `compile_only()` on this thread."""
    return _COMPILE_ONLY.get() is not None


def launch(kernel: Any, grid: tuple[int, ...], *args: Any, **kwargs: Any) -> None:
    """`kernel[grid](*args, **kwargs)`, or inside `compile_only()` the compilation it needs."""
    seen = _COMPILE_ONLY.get()
    if seen is None:
        kernel[grid](*args, **kwargs)
        return
    from triton.runtime.jit import JITFunction

    if not isinstance(kernel, JITFunction):  # under Triton's interpreter nothing compiles
        return
    # A warm-up call costs ~0.6 ms (it hashes the source and options) and a step repeats the
    # same few variants in every layer: ask once per variant. The key is at most as fine as
    # Triton's specialisation, so a variant it misses is compiled at its first real launch.
    key = (kernel, tuple(_specialisation(a) for a in args), tuple(sorted(kwargs.items())))
    if key not in seen:
        seen.add(key)
        kernel.warmup(*args, grid=grid, **kwargs)


def _specialisation(arg: Any) -> Hashable:
    """What Triton specialises a launch argument on: a tensor's dtype and 16-byte alignment,
    an integer's being 1, a multiple of 16 or beyond 32 bits; a float only by its type."""
    if isinstance(arg, torch.Tensor):
        return ("tensor", arg.dtype, arg.data_ptr() % 16 == 0)
    if isinstance(arg, bool) or arg is None:
        return arg
    if isinstance(arg, int):
        return ("int", arg == 1, arg % 16 == 0, -(2**31) <= arg < 2**31)
    if isinstance(arg, float):
        return "float"
    return repr(arg)


def compile_threads() -> int:
    """Threads for `compile_only`: VOICESEAL_COMPILE_THREADS if set, else the CPUs this process
    may use (ptxas runs as a child process per variant, the MLIR and LLVM passes release the
    GIL), at most 32."""
    setting = os.environ.get("VOICESEAL_COMPILE_THREADS", "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(
                f"VOICESEAL_COMPILE_THREADS must be a positive integer, got {setting!r}"
            )
        return int(setting)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(32, cpus))


@contextmanager
def compile_only(threads: int | None = None) -> Iterator[None]:
    """Within the block, `launch` compiles instead of running, on `threads` threads (default
    `compile_threads()`); the block ends once every variant has compiled (an error in one is
    raised there). Without `triton.AsyncCompileMode` (Triton before 3.4) the variants compile
    one by one at their `launch`."""
    try:
        import triton
    except ImportError:  # nothing launches Triton kernels then
        yield
        return
    async_mode = getattr(triton, "AsyncCompileMode", None)
    token = _COMPILE_ONLY.set(set())
    try:
        if async_mode is None:
            yield
            return
        with (
            ThreadPoolExecutor(threads or compile_threads(), "triton-compile") as pool,
            async_mode(pool),
        ):
            yield
    finally:
        _COMPILE_ONLY.reset(token)
