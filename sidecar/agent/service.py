"""Wiring of the agent into the application: history, the run service, readiness, shutdown."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.agent.history import History
from sidecar.agent.runs import AgentService, load_agent_stack, stack_loaded
from sidecar.api.agent import AGENT, HISTORY
from sidecar.app import after_handshake
from sidecar.appstate import NOTIFICATIONS, READINESS, SECRETS, STORE


async def refresh_readiness(app: web.Application) -> None:
    """Set the ``agent`` component from the model settings, and warm the agent stack up once a
    model is configured: disabled (with what to set), starting (libraries loading), or ok.

    With no model the libraries are not loaded at all: a sidecar nobody chats with stays small
    (about 60 MB instead of 230 MB); the first run loads them itself if needed.
    """
    settings = await app[AGENT].model_settings()
    readiness = app[READINESS]
    if settings is None:
        readiness.set("agent", "disabled",
                      "no model configured: PUT /v1/settings/model {\"model\": \"ollama/…\", \"apiBase\": …}")
        return
    where = f" at {settings.api_base}" if settings.api_base else ""
    if stack_loaded():
        readiness.set("agent", "ok", f"model {settings.model}{where}")
        return
    readiness.set("agent", "starting", f"loading the agent libraries for model {settings.model}{where}")

    async def warm_up() -> None:
        await load_agent_stack()
        # The agent stack leaves ~1M long-lived objects; moving them out of the collector's
        # view keeps full collections (pauses of 100+ ms mid-stream) off the relay path.
        gc.freeze()
        await refresh_readiness(app)

    after_handshake(app, "agent-warm-up", warm_up)


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
