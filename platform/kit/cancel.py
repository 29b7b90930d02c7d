"""Cancellation of a request's work from outside the thread doing it.

The API runs a streamed request's pipeline in worker threads; when the client disconnects, the
event loop learns it while a worker is still deep inside an engine. The route binds a
:class:`CancelToken` around every step it runs (:func:`bound`); an engine reads it with
:func:`current` and registers what stops its work (``token.on_cancel(handle.cancel)``), so a
disconnect stops the work at once instead of after the sentence in progress.

Engines that ignore the token still stop at the next step boundary, when the route closes them.
The token is also the request's identity for engines: work bound to the same token belongs to
one request (a batching engine lets its later sentences wait for room rather than refusing them
halfway through).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Callback = Callable[[], None]

_current: ContextVar[CancelToken | None] = ContextVar("voiceseal_cancel_token", default=None)


class CancelToken:
    """Set once; callbacks registered before or after run exactly once, on cancellation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._callbacks: dict[int, Callback] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Run every registered callback (now, in the caller's thread); later calls do nothing."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callback) -> Callback:
        """Call ``callback`` on cancellation (at once if already cancelled); returns a function
        that unregisters it (call it when the work ended on its own)."""
        with self._lock:
            if not self._cancelled:
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def unregister() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return unregister
        callback()
        return lambda: None


def current() -> CancelToken | None:
    """The token of the request whose work runs in this context, if the caller bound one."""
    return _current.get()


@contextmanager
def bound(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the :func:`current` one for the code run inside."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)
