"""The ``agent`` component of ``/v1/ready``, refreshed at start and when the model changes."""

from __future__ import annotations

from aiohttp import web

from sidecar.agent.stack import load_run_events, stack_loaded
from sidecar.appstate import AGENT, READINESS
from sidecar.background import after_handshake


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
    # a run's AG-UI models before anything else of start-up, so a run posted right after the
    # handshake gets its RUN_STARTED without waiting for the heavy libraries
    after_handshake(app, "agent-run-events", load_run_events, first=True)

    async def warm_up() -> None:
        await app[AGENT].warm()  # the libraries (frozen out of the collector's view by
        # background.loading_libraries), and every mode's tools built once
        await refresh_readiness(app)

    after_handshake(app, "agent-warm-up", warm_up)
