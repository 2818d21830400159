"""Background work of the parts: what runs after the handshake, and its cancellation at shutdown.

A leaf module (it imports only :mod:`sidecar.appstate`), so every part can use it without
importing the application factory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from sidecar.appstate import BACKGROUND, HANDSHAKE_DONE

log = logging.getLogger(__name__)


def after_handshake(app: web.Application, name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` in the background once the handshake is out (heavy imports, warm-ups,
    watchers, index catch-up). It is cancelled when the app shuts down; a failure is logged,
    not fatal."""

    async def runner() -> None:
        await app[HANDSHAKE_DONE].wait()
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background start-up work failed", extra={"work": name})

    app[BACKGROUND].add(asyncio.get_running_loop().create_task(runner(), name=name))


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (first in the list, so it ends last): cancels every task started by
    :func:`after_handshake` that is still running at shutdown."""
    yield
    tasks: list[asyncio.Task[None]] = [*app[BACKGROUND]]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
