"""`PUT /v1/secrets/{name}` and `DELETE /v1/secrets/{name}`: write-only secrets (no read route)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from sidecar.api.io import json_ok, read_body
from sidecar.appstate import SECRETS
from sidecar.store.models import ApiModel


class SecretBody(ApiModel):
    """``{"value": "…"}``: the secret, at most 16 KiB."""

    value: str = Field(min_length=1, max_length=16_384)


async def put_secret(request: web.Request) -> web.Response:
    """Store the secret in the OS keyring → ``{"name", "stored": true}``; 503 ``secrets_unavailable``
    when no secure keyring exists."""
    name = request.match_info["name"]
    body = await read_body(request, SecretBody)
    await request.app[SECRETS].set(name, body.value)
    return json_ok({"name": name, "stored": True})


async def delete_secret(request: web.Request) -> web.Response:
    """Remove the secret → ``{"name", "deleted": bool}``."""
    name = request.match_info["name"]
    deleted = await request.app[SECRETS].delete(name)
    return json_ok({"name": name, "deleted": deleted})


routes = [web.put("/v1/secrets/{name}", put_secret), web.delete("/v1/secrets/{name}", delete_secret)]
