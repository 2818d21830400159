"""The runs in progress in this process (DESIGN §5): which run each watch's files count on, when
a run ends, and its progress events.

:mod:`sidecar.ingest.runs` keeps the run log in the database; this module keeps the live side
of it, in memory. A watch has at most one active run; a hint, a scan or a schedule joins it or
opens one. A run stays open while a scan holds it (:meth:`ActiveRuns.begin`, ``scanning``) or
the queue still has files of it, and is closed by :meth:`ActiveRuns.after` once neither is
true. Progress goes out as transient events ``ingest.progress`` ``{watchId, runId, done,
total}`` (at most one per ``progress_interval_s`` per run, plus a final one) and ``ingest.run``
(the run record) when a run starts and ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar.ingest.atomic import atomic
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.queue import FileQueue
from sidecar.ingest.runs import Run, RunLog, Trigger, add_error
from sidecar.ingest.watches import Watch
from sidecar.store.db import Store

log = logging.getLogger(__name__)

#: ``publish(event_type, data)`` of a transient event (``Notifications.publish``).
Publish = Callable[[str, dict[str, Any]], None]


@dataclass
class ActiveRun:
    """One run in progress: its record and what this process counts of it.

    ``scanning`` counts the scans holding it open, ``done`` the files counted so far (for
    progress), ``last_progress`` is the ``time.monotonic()`` of the last progress event,
    ``run_error`` a failure of the run as a whole (stored when it ends), ``finished`` is set
    when it left the books. ``model``/``model_loaded``/``llm_down`` cache the ``llm``
    extractor's model for the run (loaded once; ``llm_down`` is why it is unavailable).
    """

    run: Run
    scanning: int = 0
    done: int = 0
    last_progress: float = 0.0
    run_error: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    model: Any = None
    model_loaded: bool = False
    llm_down: str | None = None


class ActiveRuns:
    """The active runs, by watch and by run id. See the module docstring.

    Args:
        store: the open database (errors noted on runs).
        runs, queue: the run log and the file queue of that database.
        options: ``progress_interval_s`` (seconds) between progress events.
        publish: where transient events go (None: nowhere).
    """

    def __init__(self, store: Store, runs: RunLog, queue: FileQueue, options: IngestOptions, *,
                 publish: Publish | None = None) -> None:
        self.store = store
        self.runs = runs
        self.queue = queue
        self.options = options
        self._publish = publish
        self._active: dict[str, ActiveRun] = {}
        self._by_run: dict[str, ActiveRun] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Send a transient event; a failing listener is logged, never raised."""
        if self._publish is None:
            return
        try:
            self._publish(event_type, data)
        except Exception:
            log.exception("publishing an ingest event failed")

    def lock(self, watch_id: str) -> asyncio.Lock:
        """The lock under which the watch's active run is opened, joined or closed."""
        return self._locks.setdefault(watch_id, asyncio.Lock())

    def of_watch(self, watch_id: str) -> ActiveRun | None:
        """The watch's active run, if any."""
        return self._active.get(watch_id)

    def of_run(self, run_id: str | None) -> ActiveRun | None:
        """The active run with this id (None: not active, or no id)."""
        return self._by_run.get(run_id) if run_id else None

    def all(self) -> list[ActiveRun]:
        """Every active run (a copy: safe to iterate while runs end)."""
        return list(self._by_run.values())

    async def open(self, watch: Watch, trigger: Trigger) -> ActiveRun:
        """The watch's active run, or a new one (caller holds :meth:`lock` of the watch)."""
        ar = self._active.get(watch.id)
        if ar is not None:
            return ar
        run = await self.runs.start(watch.id, trigger)
        ar = ActiveRun(run=run)
        self._active[watch.id] = ar
        self._by_run[run.id] = ar
        self.publish("ingest.run", run.model_dump(mode="json", by_alias=True))
        log.info("ingest run started", extra={"watch_id": watch.id, "run_id": run.id, "trigger": trigger})
        return ar

    async def begin(self, watch: Watch, trigger: Trigger) -> ActiveRun:
        """Open a run (or join the watch's active one) and hold it open for a scan: the scan
        releases it with ``ar.scanning -= 1`` and then :meth:`after` (``force=True``)."""
        async with self.lock(watch.id):
            ar = await self.open(watch, trigger)
            ar.scanning += 1
        return ar

    @atomic
    async def note(self, run_id: str, messages: Sequence[str]) -> None:
        """Add ``messages`` to the run's ``errors``."""
        async with self.store.write() as w:
            for m in messages:
                await add_error(w, run_id, m)

    def abandon(self, watch_id: str) -> None:
        """Forget the active run of a deleted watch (its rows are gone) and wake its waiters."""
        ar = self._active.pop(watch_id, None)
        if ar is not None:
            self._by_run.pop(ar.run.id, None)
            ar.finished.set()

    async def wait(self, run_id: str) -> Run:
        """Wait until the run finishes; returns its final record."""
        ar = self._by_run.get(run_id)
        if ar is not None:
            await ar.finished.wait()
        return await self.runs.get(run_id)

    async def after(self, run_id: str | None, *, counted: bool, force: bool = False) -> None:
        """After a file, a scan, or when the workers go idle: count the file, publish progress
        (at most once per ``progress_interval_s``, each time with a count of what is left) and
        close the run when nothing is left. ``force`` checks now, whatever the interval."""
        ar = self.of_run(run_id)
        if ar is None:
            return
        if counted:
            ar.done += 1
        now = time.monotonic()
        if not force and now - ar.last_progress < self.options.progress_interval_s:
            return
        ar.last_progress = now
        remaining = await self.queue.remaining(ar.run.id)
        if counted or remaining:
            self._progress(ar, remaining)
        if remaining or ar.scanning:
            return
        watch_id = ar.run.watch_id
        async with self.lock(watch_id):
            if self._by_run.get(ar.run.id) is not ar or ar.scanning or await self.queue.remaining(ar.run.id):
                return
            del self._by_run[ar.run.id]
            if self._active.get(watch_id) is ar:
                del self._active[watch_id]
        try:
            ar.run = await self.runs.finish(ar.run.id, run_error=ar.run_error)
            self._progress(ar, 0)
            self.publish("ingest.run", ar.run.model_dump(mode="json", by_alias=True))
            log.info("ingest run finished", extra={"watch_id": watch_id, "run_id": ar.run.id,
                                                   "status": ar.run.status, "processed": ar.run.items_processed,
                                                   "items_created": ar.run.items_created})
        finally:
            ar.finished.set()  # waiters (sidecar ingest) never hang on a run that left the books

    def _progress(self, ar: ActiveRun, remaining: int) -> None:
        self.publish("ingest.progress", {"watchId": ar.run.watch_id, "runId": ar.run.id, "done": ar.done,
                                         "total": ar.done + remaining})
