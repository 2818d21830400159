"""Wiring of the agent into the application: history, the run service, readiness, shutdown."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.agent.history import History
from sidecar.agent.runs import AgentService, load_agent_stack
from sidecar.api.agent import AGENT, HISTORY
from sidecar.app import after_handshake
from sidecar.appstate import NOTIFICATIONS, READINESS, SECRETS, STORE


async def refresh_readiness(app: web.Application) -> None:
    """Set the ``agent`` component from the model settings: disabled (with what to set) or ok."""
    settings = await app[AGENT].model_settings()
    if settings is None:
        app[READINESS].set("agent", "disabled",
                           "no model configured: PUT /v1/settings/model {\"model\": \"ollama/…\", \"apiBase\": …}")
    else:
        where = f" at {settings.api_base}" if settings.api_base else ""
        app[READINESS].set("agent", "ok", f"model {settings.model}{where}")


async def agent_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: create the run service after the store is open; warm the agent stack up
    after the handshake (imports take about a second)."""
    history = History(app[STORE])
    notifications = app[NOTIFICATIONS]
    app[HISTORY] = history
    app[AGENT] = AgentService(app[STORE], history, app[SECRETS],
                              on_run_status=lambda data: notifications.publish("run.status", data))
    await history.mark_interrupted_runs_on_start()
    app[READINESS].set("agent", "starting", "loading the agent libraries")

    async def warm_up() -> None:
        await load_agent_stack()
        # The agent stack leaves ~1M long-lived objects; moving them out of the collector's
        # view keeps full collections (pauses of 100+ ms mid-stream) off the relay path.
        gc.freeze()
        await refresh_readiness(app)

    after_handshake(app, "agent-warm-up", warm_up)
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
