"""The HTTP server under abuse: connection-level defences below the middleware (issue 9).

:func:`make_runner` builds the aiohttp runner ``sidecar serve`` (and the tests) serve the app
with. Its connections are :class:`GuardedRequestHandler` s, which add what aiohttp leaves open:

* **header and idle timeout** — a connection must send a complete request head within
  ``Limits.idle_timeout_s`` of opening (or of its previous response); one that sends nothing,
  or half a head, or dribbles bytes, is closed then. (aiohttp's keep-alive timer, started at
  connection time and not reset by incoming bytes, is that timer.) Requests in progress — an
  SSE stream, a long agent run — are never cut.
* **a cap on connections** — at most ``Limits.max_connections`` per process; when a new one
  goes over the cap, idle connections (no request in progress) are closed first, oldest first,
  so the file descriptor limit is never reached and ``/v1/health`` keeps answering; if every
  connection is busy, the new one is closed.
* **malformed requests** (a bad request line, an invalid header, an oversized head) get the one
  JSON error shape (:mod:`sidecar.errors`) — never aiohttp's plain-text page, which echoes the
  raw request (``Authorization`` included) — and at most one warning log line per
  ``Limits.log_every_s``, without a stack trace.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from sidecar.errors import SidecarError

log = logging.getLogger("sidecar.http")


@dataclass(frozen=True)
class Limits:
    """Connection limits. Times in seconds."""

    #: time to send a complete request head, from connect or from the previous response
    idle_timeout_s: float = 15.0
    #: connections held at once (per process)
    max_connections: int = 256
    #: least time between two log lines about malformed requests
    log_every_s: float = 10.0


_last_log = 0.0
_suppressed = 0


def _log_malformed(status: int, exc: BaseException | None, every_s: float) -> None:
    global _last_log, _suppressed
    now = time.monotonic()
    if now - _last_log < every_s:
        _suppressed += 1
        return
    _last_log, n, _suppressed = now, _suppressed, 0
    log.warning("malformed request refused", extra={"status": status, "error": type(exc).__name__ if exc else None,
                                                     "suppressed": n})


class GuardedRequestHandler(RequestHandler):
    """One connection (see the module docstring)."""

    limits = Limits()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        manager = self._manager
        if manager is None:
            return
        self.limits = getattr(manager, "limits", self.limits)
        conns = manager.connections
        excess = len(conns) - self.limits.max_connections
        if excess <= 0:
            return
        idle = [c for c in conns if c is not self and not c._request_in_progress and c.transport is not None]
        for conn in idle[:excess]:  # oldest first (insertion order)
            conn.force_close()
            if conn.transport is not None:
                conn.transport.close()
        if len(idle) < excess:  # all busy: this one goes
            self.force_close()
            transport.close()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """The JSON error shape for what fails before (or outside) the middleware; echoes nothing."""
        if isinstance(exc, ConnectionResetError):  # the client left (mid-stream): not our failure
            log.debug("client went away", extra={"path": request.path})
            err = SidecarError("client went away", code="client_closed", status=400)
        elif status >= 500:
            log.error("request failed outside the middleware", exc_info=exc)
            err = SidecarError("internal error; see the sidecar log")
        else:
            _log_malformed(status, exc, self.limits.log_every_s)
            code = {400: "bad_request", 408: "request_timeout", 413: "payload_too_large",
                    431: "headers_too_large"}.get(status, "bad_request")
            err = SidecarError("malformed HTTP request", code=code, status=status)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        resp = web.Response(status=err.status, text=json.dumps(err.to_body()), content_type="application/json")
        resp.force_close()
        return resp


class _GuardedServer(Server):
    limits: Limits

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections are :class:`GuardedRequestHandler` s."""

    def __init__(self, app: web.Application, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.idle_timeout_s, **kwargs)
        self.limits = limits

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer  # same state, our protocol factory
        server.limits = self.limits  # type: ignore[attr-defined]
        return server


def make_runner(app: web.Application, limits: Limits | None = None, **kwargs: Any) -> GuardedRunner:
    """The runner to serve ``app`` with; ``kwargs`` go to :class:`aiohttp.web.AppRunner`."""
    return GuardedRunner(app, limits=limits or Limits(), **kwargs)
