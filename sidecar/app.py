"""The application factory: builds the aiohttp app with its state, middleware and routes.

Resources that open and close with the app (the database, the notification hub) are managed
with ``cleanup_ctx``, so tests and the real process start and stop them the same way.

**Parts.** Every part (agent, ingest, search, and next sync) plugs in the same way: its
``service`` module has ``setup(app)``, which

1. appends its ``cleanup_ctx`` (it runs after the store's, so the part stops before the
   database closes) — the context creates the part's service under its key in
   :mod:`sidecar.appstate`, sets its ``/v1/ready`` component, and starts heavy work with
   :func:`sidecar.background.after_handshake`;
2. adds its routes (``app.router.add_routes``) and any ``on_shutdown`` hook.

A part imports :mod:`sidecar.appstate` (keys) and :mod:`sidecar.background` (after-handshake
work), never this module, so there is no import cycle; adding a part is one entry in
:data:`PARTS`. ``tests/test_seam.py`` imports each part alone and checks the import graph.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.agent import service as agent_service
from sidecar.api import clients, comments, events, health, notes, projects, secrets, tasks, timelines
from sidecar.appstate import (
    BACKGROUND,
    BACKGROUND_FIRST,
    HANDSHAKE_DONE,
    NOTIFICATIONS,
    READINESS,
    REPOSITORY,
    SECRETS,
    SETTINGS,
    SHUTTING_DOWN,
    STORE,
)
from sidecar.background import after_handshake, background_ctx
from sidecar.ingest import service as ingest_service
from sidecar.notify import Notifications
from sidecar.readiness import Readiness
from sidecar.search import service as search_service
from sidecar.secrets import SecretStore
from sidecar.security import MIDDLEWARES, cors_on_prepare
from sidecar.settings import Settings
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from sidecar.sync import setup as sync_setup

log = logging.getLogger(__name__)
#: Period of the store's health check (file identity, free disk space), seconds.
STORE_CHECK_S = 1.0

#: Route tables of the foundation's API modules, in the order they are added.
ROUTE_MODULES = (health, events, tasks, comments, projects, timelines, notes, clients, secrets)

#: The parts, each added by its ``setup(app)`` in this order (see the module docstring).
PARTS = (agent_service, ingest_service, search_service, sync_setup)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    readiness = app[READINESS]
    readiness.set("store", "starting", "opening database")
    store = await Store.open(settings.db_path)
    store.on_commit(app[NOTIFICATIONS].changes_committed)
    app[STORE] = store
    app[REPOSITORY] = Repository(store)
    readiness.set("store", "ok", f"SQLite {settings.db_path.name}, WAL, device {store.device_id}")
    store.on_health(lambda state, detail: readiness.set("store", state, detail or "SQLite writes succeed"))

    async def watch_health() -> None:  # file replaced, disk full: seen within STORE_CHECK_S
        while True:
            await asyncio.to_thread(store.check_health)
            await asyncio.sleep(STORE_CHECK_S)

    after_handshake(app, "store-health", watch_health)
    try:
        yield
    finally:
        await store.close()


async def _secrets_ctx(app: web.Application) -> AsyncIterator[None]:
    app[READINESS].set("secrets", "starting", "checking the OS keyring")

    async def check() -> None:
        # Loading keyring backends can touch D-Bus: after the handshake, off the event loop.
        usable, detail = await asyncio.to_thread(app[SECRETS].status)
        app[READINESS].set("secrets", "ok" if usable else "degraded", detail)

    after_handshake(app, "secrets-check", check)
    yield


async def _on_shutdown(app: web.Application) -> None:
    app[SHUTTING_DOWN].set()
    app[NOTIFICATIONS].close()


def create_app(settings: Settings) -> web.Application:
    """A configured application; its database opens when the app starts (``cleanup_ctx``)."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[READINESS] = Readiness()
    app[NOTIFICATIONS] = Notifications()
    app[SECRETS] = SecretStore(settings.env)
    app[HANDSHAKE_DONE] = asyncio.Event()
    app[SHUTTING_DOWN] = asyncio.Event()
    app[BACKGROUND] = set()
    app[BACKGROUND_FIRST] = set()
    app.cleanup_ctx.append(background_ctx)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_secrets_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.on_response_prepare.append(cors_on_prepare)
    for module in ROUTE_MODULES:
        app.router.add_routes(module.routes)
    for part in PARTS:
        part.setup(app)
    return app
