"""Plugging sync into the application: one :func:`setup` (DESIGN §6, like the other parts)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.appstate import NOTIFICATIONS, READINESS, SECRETS, STORE, SYNC
from sidecar.background import after_handshake
from sidecar.sync.service import SyncService


async def sync_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sync service once the store is open (settings loaded now, the loop
    started after the handshake); stopped before the store closes."""
    service = SyncService(app[STORE], app[SECRETS], app[NOTIFICATIONS], app[READINESS])
    app[SYNC] = service
    await service.load()
    after_handshake(app, "sync-start", service.start)
    try:
        yield
    finally:
        await service.stop()


def setup(app: web.Application) -> None:
    """Add sync to an application made by :func:`sidecar.app.create_app`: its service
    (``cleanup_ctx``), its routes and its ``sync`` readiness."""
    from sidecar.sync import api

    app.cleanup_ctx.append(sync_ctx)
    app.router.add_routes(api.routes)
