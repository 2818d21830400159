"""Wiring of the agent into the application: history, the run service, readiness, shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.agent.history import History
from sidecar.agent.readiness import refresh_readiness
from sidecar.agent.runs import AgentService
from sidecar.appstate import AGENT, HISTORY, NOTIFICATIONS, SECRETS, STORE


async def agent_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: create the run service after the store is open; set the agent's readiness
    (warming the stack up in the background after the handshake when a model is configured)."""
    history = History(app[STORE])
    notifications = app[NOTIFICATIONS]
    app[HISTORY] = history
    app[AGENT] = AgentService(app[STORE], history, app[SECRETS],
                              on_run_status=lambda data: notifications.publish("run.status", data))
    await history.mark_interrupted_runs_on_start()
    await refresh_readiness(app)
    yield


async def agent_shutdown(app: web.Application) -> None:
    """on_shutdown: end every run with its final event before streams and the store close."""
    if AGENT in app:
        await app[AGENT].shutdown()


def setup(app: web.Application) -> None:
    """Add the agent to an application made by :func:`sidecar.app.create_app`."""
    from sidecar.api import agent as agent_api

    app.cleanup_ctx.append(agent_ctx)
    app.on_shutdown.insert(0, agent_shutdown)
    app.router.add_routes(agent_api.routes)
