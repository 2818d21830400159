"""Cancellation-safe helpers of the ingest part: writes a cancellation cannot cut in half, and
waiting for an event with a timeout.

Ingest tasks are cancelled at shutdown (and the dispatcher by ``sidecar ingest`` when it is
done). A queue or run-log update cut in half by that would leave a file or run in a state no
later step expects, so :func:`atomic` runs a write method as its own task behind
:func:`asyncio.shield`: the caller still sees the cancellation at once, the write itself runs to
its end (commit or rollback).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("an ingest write failed after its caller was cancelled", exc_info=task.exception())


def atomic(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Awaitable[T]]:
    """Decorate an ``async def`` that writes: it completes even when its caller is cancelled."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(fn(*args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_retrieve)
            raise

    return run


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True when it was set.

    Uses ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11, ``wait_for``
    swallows a cancellation that arrives as the event is set (CPython gh-86296), and a loop
    built on it then never stops.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
