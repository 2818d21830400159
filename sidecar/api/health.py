"""`GET /v1/health` (liveness) and `GET /v1/ready` (each component's state, DESIGN §1.3)."""

from __future__ import annotations

from aiohttp import web

from sidecar import __version__
from sidecar.api.io import json_ok
from sidecar.appstate import READINESS


async def health(request: web.Request) -> web.Response:
    """``{"status": "ok", "version"}`` as soon as the port is bound."""
    return json_ok({"status": "ok", "version": __version__})


async def ready(request: web.Request) -> web.Response:
    """``{"ready": bool, "components": {name: {"state", "detail"}}}``; always 200."""
    readiness = request.app[READINESS]
    components = {name: s.model_dump() for name, s in readiness.snapshot().items()}
    return json_ok({"ready": readiness.ready, "components": components})


routes = [web.get("/v1/health", health, allow_head=False), web.get("/v1/ready", ready, allow_head=False)]
