"""Error rendering: RFC 9457 ``application/problem+json`` everywhere, OpenAI's shape on its routes.

Every error the platform raises is a :class:`voiceseal.errors.VoiceSealError` carrying its status
and stable ``code``; one handler turns it into a document. Validation errors (422), unknown routes
(404), a lost database (503) and bugs (500, with nothing internal in the body) get the same shape.

A request body that cannot even be parsed is rejected by FastAPI before any dependency runs; so
that an unauthenticated caller never learns what a route would accept, those errors pass through
the route's role guard first and answer 401/403 when it fails.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from voiceseal.api.deps import authenticate, bearer_token, current_principal, route_roles
from voiceseal.errors import (
    Forbidden,
    Overloaded,
    RateLimited,
    Unauthorized,
    Unavailable,
    VoiceSealError,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Paths that speak OpenAI's API and so answer ``{"error": {...}}``; sub-paths match too
#: (``/v1/voices/{id}``). Extend this set when adding an OpenAI-compatible route.
OPENAI_COMPATIBLE_PATHS = frozenset({"/v1/audio/speech", "/v1/models", "/v1/voices"})

_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_HTTP_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal server error",
    503: "Service unavailable",
}


def is_openai_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in OPENAI_COMPATIBLE_PATHS)


def render(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    extra = dict(extra or {})
    if is_openai_path(request.url.path):
        param = extra.get("param")
        error_type = _OPENAI_TYPES.get(status) or (
            "server_error" if status >= 500 else "invalid_request_error"
        )
        body: dict[str, Any] = {
            "error": {
                "message": detail,
                "type": error_type,
                "param": param if isinstance(param, str) else None,
                "code": code,
            }
        }
        return JSONResponse(body, status_code=status, headers=headers)
    problem: dict[str, Any] = {
        # Reserved members win over extras with the same name.
        **extra,
        "type": f"urn:voiceseal:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    return JSONResponse(problem, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def render_error(request: Request, exc: VoiceSealError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited | Overloaded):
        # Whole seconds, rounded up: retrying at the advertised time must succeed.
        headers["Retry-After"] = str(max(1, int(-(-exc.retry_after // 1))))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="voiceseal"'
    return render(
        request,
        status=exc.status_code,
        code=exc.code,
        title=exc.title,
        detail=exc.message,
        extra=exc.extra,
        headers=headers,
    )


async def _auth_first(request: Request) -> VoiceSealError | None:
    """The error the route's role guard gives this caller, if it has not run and would refuse."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or current_principal(request) is not None:
        return None
    roles = route_roles(route.dependant)
    if roles is None:
        return None
    try:
        principal = await run_in_threadpool(authenticate, request, bearer_token(request))
    except VoiceSealError as exc:
        return exc
    if principal.role not in roles:
        return Forbidden(
            f"this needs an {' or '.join(sorted(roles))} key; "
            f"the key given is a {principal.role} key"
        )
    return None


async def voiceseal_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VoiceSealError)
    return render_error(request, exc)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if (refusal := await _auth_first(request)) is not None:
        return render_error(request, refusal)
    errors: list[dict[str, Any]] = []
    summaries: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", ""))
        # The offending input is left out: it may be large, binary or someone's secret.
        errors.append({"loc": loc, "msg": msg, "type": str(err.get("type", ""))})
        summaries.append((".".join(p for p in loc if p not in {"body", "query", "path"}), msg))
    where, msg = summaries[0] if summaries else ("", "the request is not valid")
    detail = f"{where}: {msg}" if where else msg
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return render(
        request,
        status=422,
        code="invalid_input",
        title="Invalid input",
        detail=detail + more,
        extra={"errors": errors, "param": where or None},
    )


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in {400, 413, 415} and (refusal := await _auth_first(request)) is not None:
        return render_error(request, refusal)
    title = _HTTP_TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    code = title.lower().replace(" ", "_")
    return render(
        request,
        status=exc.status_code,
        code=code,
        title=title,
        detail=detail,
        headers=dict(exc.headers or {}),
    )


async def database_error_handler(request: Request, exc: Exception) -> Response:
    log.error("database error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return render_error(
        request, Unavailable("the registry database is unavailable; nothing was saved, retry later")
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return render(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="an internal error occurred; it has been logged",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(VoiceSealError, voiceseal_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
