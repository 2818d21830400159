"""In-process notifications behind ``GET /v1/events``.

Two kinds travel here. *Changes* are not copied: a commit only wakes subscribers, which then
read the change log from their last seen ``seq`` — so a stream is exact and resumable
(``after=SEQ`` / ``Last-Event-ID``) and never depends on this process's memory. *Transient*
events (ingest progress, run and sync status) are delivered to current subscribers only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sidecar.store.db import ChangeEntry

log = logging.getLogger(__name__)

#: queue item meaning "the change log has grown"
CHANGED = "__changed__"
#: queue item meaning "the server is shutting down; end the stream"
CLOSED = "__closed__"


class Subscription:
    """One listener's queue of ``(event_type, data)`` items."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize)
        self._change_pending = False
        self.dropped = 0

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1  # a stalled reader loses transient events, never changes

    def _wake(self) -> None:
        if not self._change_pending:
            self._change_pending = True
            try:
                self.queue.put_nowait((CHANGED, None))
            except asyncio.QueueFull:
                self._change_pending = False

    async def get(self) -> tuple[str, Any]:
        """The next item; a ``CHANGED`` item means: read the change log past your last seq."""
        item = await self.queue.get()
        if item[0] == CHANGED:
            self._change_pending = False
        return item


class Notifications:
    """Fan-out hub. Register :meth:`changes_committed` with ``Store.on_commit``."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subs: set[Subscription] = set()
        self._queue_size = queue_size
        self.closed = False

    def subscribe(self) -> Subscription:
        """Start receiving; pair with :meth:`unsubscribe`."""
        sub = Subscription(self._queue_size)
        if self.closed:
            sub._put((CLOSED, None))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop receiving."""
        self._subs.discard(sub)

    def changes_committed(self, entries: list[ChangeEntry]) -> None:
        """Store commit listener: wake every subscriber."""
        for sub in self._subs:
            sub._wake()

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Send a transient event (e.g. ``ingest.progress``) to current subscribers."""
        for sub in self._subs:
            sub._put((event_type, data))

    def close(self) -> None:
        """Tell every stream to end (server shutdown)."""
        self.closed = True
        for sub in self._subs:
            while True:
                try:
                    sub.queue.put_nowait((CLOSED, None))
                    break
                except asyncio.QueueFull:
                    sub.queue.get_nowait()
