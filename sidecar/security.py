"""Request middleware: the error format, request ids, and the local API's defences (DESIGN §2).

Applied to every route, present and future, in this order (outermost first):

1. :func:`error_middleware` — request id, one access-log line, and every failure rendered as
   ``{"error": {"code", "message", "detail"}}``; never a stack trace.
   :func:`target_middleware` — origin-form request targets only (400), path ids bounded (404).
2. :func:`host_middleware` — ``Host`` must be ``127.0.0.1:PORT``, ``localhost:PORT`` or
   ``[::1]:PORT`` (DNS-rebinding defence) → 403.
3. :func:`origin_middleware` — a request with ``Origin`` is refused (403) unless the origin is in
   the allowlist; CORS preflights are answered only for allowed origins, never with ``*``.
   :func:`cors_on_prepare` (the app's ``on_response_prepare`` hook) adds the CORS headers to every
   answer, streamed ones too, and ``Vary: Origin``.
4. :func:`auth_middleware` — exactly one ``Authorization: Bearer <token>`` header, compared
   byte for byte in constant time → 401.
5. :func:`body_middleware` — bodies must be JSON (415) and at most the size cap (413).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from sidecar.appstate import SETTINGS
from sidecar.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SidecarError,
    Unauthorized,
    UnsupportedMediaType,
)
from sidecar.logs import request_id

log = logging.getLogger("sidecar.http")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY_ENCODINGS = frozenset({"identity", "gzip", "deflate"})
#: Path ids (``{id}``, ``{taskId}``, ``{runId}``, …): the API's :data:`sidecar.store.models.Id`.
_PATH_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    503: "unavailable",
}


def error_response(exc: SidecarError, headers: dict[str, str] | None = None) -> web.Response:
    """The one rendering of an error as an HTTP response."""
    return web.json_response(exc.to_body(), status=exc.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Request-Id", "")
    rid = supplied if _REQUEST_ID_RE.match(supplied) else uuid.uuid4().hex
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except SidecarError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects and the like pass through
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            response = error_response(SidecarError(message, code=code, status=exc.status), headers)
        except ConnectionResetError:  # the client went away mid-stream: nothing to answer, no error
            status = 499
            raise
        except Exception:
            log.exception("unhandled error", extra={"method": request.method, "path": request.path})
            response = error_response(SidecarError("internal error; see the sidecar log", code="internal"))
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        return response
    finally:
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        request_id.reset(token)


def _local_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[1] if sockname else None


@web.middleware
async def target_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origin-form request targets only (``/v1/tasks``), never absolute-form
    (``http://evil.example/v1/tasks``, RFC 9112 §3.2) or ``*``; path ids bounded (:data:`_PATH_ID_RE`)."""
    if not request.raw_path.startswith("/"):
        raise BadRequest("request target must be a path (origin-form)", code="bad_request_target")
    for name, value in request.match_info.items():
        if (name == "id" or name.endswith("Id")) and not _PATH_ID_RE.match(value):
            raise NotFound(f"no such {name}: ids are 1-64 letters, digits, '-' or '_'")
    return await handler(request)


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    port = _local_port(request)
    allowed = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    if request.headers.get("Host", "").lower() not in allowed:
        raise Forbidden("Host header must name this loopback server (127.0.0.1, localhost or [::1] with its port)", code="forbidden_host")
    return await handler(request)


#: The allowed ``Origin`` of this request, set by :func:`origin_middleware` once it is checked.
CORS_ORIGIN = web.RequestKey("cors_origin", str)


def _add_vary_origin(headers: CIMultiDict[str]) -> None:
    vary = headers.get("Vary", "")
    if "origin" not in {v.strip().lower() for v in vary.split(",")}:
        headers["Vary"] = f"{vary}, Origin" if vary.strip() else "Origin"


async def cors_on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs just before any response's headers go out — JSON
    answers, errors and event streams alike (a streamed response is prepared inside its handler,
    after which a middleware can no longer add headers).

    Every answer says ``Vary: Origin`` — what the server sends depends on ``Origin`` (an echo,
    a 403 or neither), so a cache must not serve one origin's answer to another (Fetch standard,
    "CORS protocol and HTTP caches"). An allowed origin gets ``Access-Control-Allow-Origin``
    echoed, never ``*``.
    """
    _add_vary_origin(response.headers)
    origin = request.get(CORS_ORIGIN)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    if origin not in request.app[SETTINGS].allow_origins:
        raise Forbidden(f"origin {origin!r} is not allowed (see --allow-origin)", code="forbidden_origin")
    # Its answers, errors (401, 415, …) included, carry the CORS headers (cors_on_prepare), so an
    # allowed origin can read them instead of an opaque failure.
    request[CORS_ORIGIN] = origin
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        # Preflight: browsers send no credentials here, so it is answered before auth.
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID, X-Request-Id",
                "Access-Control-Max-Age": "600",
            },
        )
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Exactly one header, exactly "Bearer <token>": no other case, spacing or second header.
    headers = request.headers.getall("Authorization", [])
    supplied = headers[0].encode("utf-8", "surrogateescape") if len(headers) == 1 else b""
    expected = b"Bearer " + request.app[SETTINGS].token.encode()
    if not hmac.compare_digest(supplied, expected):
        raise Unauthorized("missing or wrong bearer token")
    return await handler(request)


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in _BODY_METHODS and request.body_exists:
        cap = request.app[SETTINGS].max_body_bytes
        if request.content_length is not None and request.content_length > cap:
            raise PayloadTooLarge(f"request body over {cap} bytes", detail={"limit": cap})
        if request.content_type != "application/json":
            raise UnsupportedMediaType("request bodies must be JSON (Content-Type: application/json)")
        encodings = request.headers.getall("Content-Encoding", [])
        if any(e.strip().lower() not in _BODY_ENCODINGS for e in encodings) or len(encodings) > 1:
            raise UnsupportedMediaType("Content-Encoding must be one of identity, gzip, deflate")
    return await handler(request)


MIDDLEWARES = [error_middleware, target_middleware, host_middleware, origin_middleware, auth_middleware,
               body_middleware]
