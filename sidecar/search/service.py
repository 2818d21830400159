"""Wiring of search and memory into the application (placeholder until the index lands)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.appstate import READINESS


async def search_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the ``vectors`` component."""
    app[READINESS].set("vectors", "disabled", "not part of this build yet")
    yield


def setup(app: web.Application) -> None:
    """Add search to an application made by :func:`sidecar.app.create_app`."""
    app.cleanup_ctx.append(search_ctx)
