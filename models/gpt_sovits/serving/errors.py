"""Errors of the serving layer; each names what was refused and why.

The platform maps `QueueFull` to HTTP 503 and `RequestTooLong` to 413/422; the others end one
request only and never the scheduler.
"""

from __future__ import annotations


class ServingError(RuntimeError):
    """Base class: something went wrong with one request, the scheduler keeps serving."""


class QueueFull(ServingError):
    """The bounded admission queue is full (back-pressure: retry later, HTTP 503)."""


class RequestTooLong(ServingError, ValueError):
    """The request needs more KV-cache slots than the longest bucket holds."""


class RequestCancelled(ServingError):
    """The client cancelled the request (for example, it disconnected mid-stream)."""


class RequestFailed(ServingError):
    """The request failed while it was being served (CUDA out of memory, bad weights ...)."""
