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
from typing import Any

from aiohttp import web

from sidecar.appstate import BACKGROUND, HANDSHAKE_DONE

log = logging.getLogger(__name__)

#: GIL switch interval (s) while a library loads in a worker thread (CPython's default: 5 ms).
LOADING_SWITCH_INTERVAL_S = 0.0005


class _Held:
    """A process-wide setting that stays changed while at least one holder needs it. The first
    holder saves its value (``read()``) and applies the change (``hold(saved)``); holders nest
    and may be in any thread; the last one out restores it (``restore(saved)``)."""

    def __init__(self, read: Callable[[], Any], hold: Callable[[Any], None], restore: Callable[[Any], None]) -> None:
        self._read, self._hold, self._restore = read, hold, restore
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: Any = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._saved = self._read()
                self._hold(self._saved)
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._restore(self._saved)


# the collector comes back only if it was running when the first pause began (start-up turns
# it off until the handshake, see ``sidecar.cli``)
_collector = _Held(gc.isenabled, lambda _: gc.disable(), lambda was_on: gc.enable() if was_on else None)
_switching = _Held(sys.getswitchinterval, lambda saved: sys.setswitchinterval(min(saved, LOADING_SWITCH_INTERVAL_S)),
                   sys.setswitchinterval)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs. Nested and concurrent uses (any
    thread) are counted: collection resumes when the last one ends, and only if it was running
    when the first began.

    For bursts of objects that are not cyclic but live a while, which the collector would
    otherwise traverse again and again for nothing (heavy imports; a sync group's rows)."""
    with _collector.held():
        yield


@contextlib.contextmanager
def loading_libraries() -> Iterator[None]:
    """Around a heavy import or model load in a worker thread: no cyclic garbage collection
    while it runs (:func:`collector_paused`), and what it loaded is frozen out of the
    collector's view afterwards.

    Why: an import of the agent stack or LanceDB allocates about a million long-lived objects,
    which trigger full collections; each holds the GIL for hundreds of ms and stalls the event
    loop (``/v1/health`` went to ~1 s during a warm-up). And the loading thread, pure Python,
    keeps the GIL until the switch interval forces it out: each time the event loop wakes (a
    socket read, a database answer; tens per request) it waited up to 5 ms for the GIL, which
    slowed the first run's ``RUN_STARTED``; the interval is :data:`LOADING_SWITCH_INTERVAL_S`
    meanwhile.
    Nested and concurrent uses are counted; the interval comes back when the last one ends.
    """
    with _switching.held(), collector_paused():
        try:
            yield
        finally:
            gc.freeze()  # long-lived by nature: never scanned again


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
