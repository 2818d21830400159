"""The application factory: builds the aiohttp app with its state, middleware and routes.

Resources that open and close with the app (the database, the notification hub) are managed
with ``cleanup_ctx``, so tests and the real process start and stop them the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from sidecar.api import clients, comments, events, health, notes, projects, secrets, tasks, timelines
from sidecar.api import ingest as ingest_api
from sidecar.api import watches as watches_api
from sidecar.appstate import (
    BACKGROUND,
    HANDSHAKE_DONE,
    NOTIFICATIONS,
    READINESS,
    REPOSITORY,
    SECRETS,
    SETTINGS,
    SHUTTING_DOWN,
    STORE,
)
from sidecar.ingest.service import ingest_ctx
from sidecar.notify import Notifications
from sidecar.readiness import Readiness
from sidecar.secrets import SecretStore
from sidecar.security import MIDDLEWARES
from sidecar.settings import Settings
from sidecar.store.db import Store
from sidecar.store.repository import Repository

log = logging.getLogger(__name__)
#: Period of the store's health check (file identity, free disk space), seconds.
STORE_CHECK_S = 1.0

#: Route tables of every API module, in the order they are added.
ROUTE_MODULES = (
    health, events, tasks, comments, projects, timelines, notes, clients, secrets, watches_api, ingest_api,
)


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


def after_handshake(app: web.Application, name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` in the background once the handshake is out (heavy imports, warm-ups,
    watchers). It is cancelled when the app shuts down; a failure is logged, not fatal."""

    async def runner() -> None:
        await app[HANDSHAKE_DONE].wait()
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background start-up work failed", extra={"work": name})

    app[BACKGROUND].add(asyncio.get_running_loop().create_task(runner(), name=name))


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    tasks: list[asyncio.Task[None]] = [*app[BACKGROUND]]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
    app.cleanup_ctx.append(_background_ctx)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_secrets_ctx)
    app.cleanup_ctx.append(ingest_ctx)  # after the store: it stops before the database closes
    app.on_shutdown.append(_on_shutdown)
    for module in ROUTE_MODULES:
        app.router.add_routes(module.routes)
    # Parts with their own resources add them here (imported late: they import this module).
    from sidecar.agent import service as agent_service

    agent_service.setup(app)
    return app
