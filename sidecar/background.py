"""Background work of the parts: what runs after the handshake, and its cancellation at shutdown.

A leaf module (it imports only :mod:`sidecar.appstate`), so every part can use it without
importing the application factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from aiohttp import web

from sidecar.appstate import BACKGROUND, HANDSHAKE_DONE

log = logging.getLogger(__name__)

_loading_lock = threading.Lock()
_loading = 0
_switch_interval = 0.0
#: GIL switch interval (s) while a library loads in a worker thread (CPython's default: 5 ms).
LOADING_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def loading_libraries() -> Iterator[None]:
    """Around a heavy import or model load in a worker thread: no cyclic garbage collection
    while it runs, and what it loaded is frozen out of the collector's view afterwards.

    Why: an import of the agent stack or LanceDB allocates about a million long-lived objects,
    which trigger full collections; each holds the GIL for hundreds of ms and stalls the event
    loop (``/v1/health`` went to ~1 s during a warm-up). And the loading thread, pure Python,
    keeps the GIL until the switch interval forces it out: each time the event loop wakes (a
    socket read, a database answer; tens per request) it waited up to 5 ms, so the first run's
    ``RUN_STARTED`` took 0.5-1 s; the interval is :data:`LOADING_SWITCH_INTERVAL_S` meanwhile.
    Nested and concurrent uses are counted; both resume when the last one ends.
    """
    global _loading, _switch_interval
    with _loading_lock:
        if _loading == 0:
            _switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_interval, LOADING_SWITCH_INTERVAL_S))
        _loading += 1
        gc.disable()
    try:
        yield
    finally:
        with _loading_lock:
            _loading -= 1
            gc.freeze()  # long-lived by nature: never scanned again
            if _loading == 0:
                gc.enable()
                sys.setswitchinterval(_switch_interval)


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
