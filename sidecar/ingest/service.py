"""Folder ingestion inside ``sidecar serve``: wiring of the pipeline, the watcher and the
schedules into the aiohttp app (DESIGN §5).

:func:`ingest_ctx` (a ``cleanup_ctx`` of the app) creates the :class:`IngestService` as
``app[INGEST]`` and starts it after the handshake (:func:`sidecar.background.after_handshake`), so
nothing here delays start-up. Starting:

1. recovery: ``processing`` rows back to ``pending``, runs left ``running`` closed as ``partial``;
2. a watch for each ``--watch PATH`` (``Settings.watch_paths``), created or re-enabled;
3. observers for every enabled watch (native events, polling when the OS refuses);
4. the dispatcher (worker pool), the schedules and the maintenance loop (re-trying folders that
   could not be watched, and the periodic reconciliation scan every ``scan_interval_s``);
5. one start-up run per enabled watch: trigger ``schedule`` when its schedule is overdue, else
   ``startup``.

``/v1/ready`` component ``watcher``: ``starting`` until then, ``ok`` with what is watched, or
``degraded`` with the reason (polling fallback, a missing folder, a ``--watch`` path that is not
a folder). Shutdown cancels the workers; files being read go back to ``pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from sidecar import clock
from sidecar.appstate import (
    INGEST,
    INGEST_OPTIONS,
    NATIVE_OBSERVER,
    NOTIFICATIONS,
    READINESS,
    REPOSITORY,
    SECRETS,
    SETTINGS,
    STORE,
)
from sidecar.background import after_handshake
from sidecar.errors import SidecarError
from sidecar.ingest.atomic import wait_event
from sidecar.ingest.journey import JourneyService
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.pipeline import Pipeline
from sidecar.ingest.runs import Run, Trigger
from sidecar.ingest.watches import Watch, WatchCreate, WatchPatch

log = logging.getLogger(__name__)

#: Seconds between checks of watched folders (vanished, re-appeared, retry after a refusal).
CHECK_INTERVAL_S = 5.0


class IngestService:
    """Folder watching for one app. The API handlers call the watch operations below, which
    keep the observers and schedules in step with the stored watches."""

    def __init__(self, app: web.Application, options: IngestOptions) -> None:
        self.app = app
        self.options = options
        self.pipeline = Pipeline(
            app[STORE], app[REPOSITORY], options,
            publish=app[NOTIFICATIONS].publish, load_model=self._load_model,
        )
        self.journeys = JourneyService(app[STORE], self.pipeline.watches, self._load_model, self._write_template)
        self.watcher: Any = None  # FolderWatcher, created at start (imports watchdog)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ops = asyncio.Lock()
        self._schedule_changed = asyncio.Event()
        self._fired: dict[str, int] = {}
        self._start_task: asyncio.Task[Any] | None = None
        self._stopping = False
        self._problems: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------------

    async def _load_model(self) -> tuple[Any | None, str | None]:
        from sidecar.ingest.llm import load_model

        return await load_model(self.app[STORE], self.app[SECRETS].get)

    async def _write_template(self, watch_id: str, template: str) -> None:
        await self.update_watch(watch_id, WatchPatch(prompt_template=template))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._stopping:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ingest task failed", exc_info=task.exception(), extra={"task": task.get_name()})

    def refresh_readiness(self) -> None:
        """Put the watcher's state into ``/v1/ready``."""
        if self.watcher is None:
            return
        state, detail = self.watcher.status()
        if self._problems:
            state, detail = "degraded", "; ".join([*self._problems, detail])
        self.app[READINESS].set("watcher", state, detail)

    async def start(self) -> None:
        """Everything in the module docstring, in that order. Called once, after the handshake."""
        self._start_task = asyncio.current_task()
        from sidecar.ingest.watcher import FolderWatcher

        reset, closed = await self.pipeline.recover()
        if reset or closed:
            log.info("ingest recovered after an unclean stop", extra={"files_reset": reset, "runs_closed": closed})
        for path in self.app[SETTINGS].watch_paths:
            try:
                await self.pipeline.watches.ensure_for_path(path)
            except SidecarError as exc:
                detail = exc.detail if isinstance(exc.detail, list) else []
                reason = "; ".join(str(d.get("message")) for d in detail if isinstance(d, dict)) or exc.message
                self._problems.append(f"--watch {path}: {reason}")
                log.warning("cannot watch a --watch path", extra={"path": str(path), "reason": reason})
        self.watcher = FolderWatcher(self.pipeline, debounce_ms=self.options.debounce_ms,
                                     poll_interval_s=self.options.poll_interval_s,
                                     native_observer=self.app.get(NATIVE_OBSERVER),
                                     on_status=self.refresh_readiness)
        await self.watcher.start()
        watches = [w for w in await self.pipeline.watches.all() if w.enabled]
        async with self._ops:
            for watch in watches:
                await self.watcher.watch(watch)
        self._spawn(self.pipeline.serve_queue(), "ingest-dispatcher")
        self._spawn(self._schedule_loop(), "ingest-schedules")
        self._spawn(self._maintenance_loop(), "ingest-maintenance")
        now = clock.now_ms()
        from sidecar.ingest.scheduler import is_overdue

        for watch in watches:
            trigger: Trigger = "startup"
            if watch.schedule_cron and is_overdue(watch.schedule_cron, watch.last_run_at or watch.created_at, now):
                trigger = "schedule"
            self._fired[watch.id] = now
            self._spawn(self.pipeline.run_watch(watch, trigger), f"ingest-run-{watch.id}")
        self.refresh_readiness()
        log.info("ingest started", extra={"watches": len(watches)})

    async def stop(self) -> None:
        """Stop observers, schedules and workers (bounded); release files being read."""
        self._stopping = True
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._start_task
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.watcher is not None:
            await self.watcher.stop()
        with contextlib.suppress(Exception):
            await self.pipeline.release()

    async def _schedule_loop(self) -> None:
        from sidecar.ingest.scheduler import next_fire_ms

        while True:
            now = clock.now_ms()
            soonest: int | None = None
            for watch in await self.pipeline.watches.all():
                if not watch.enabled or not watch.schedule_cron:
                    continue
                base = max(watch.last_run_at or watch.created_at, self._fired.get(watch.id, 0))
                try:
                    due = next_fire_ms(watch.schedule_cron, base)
                except ValueError:
                    continue
                if due <= now:
                    self._fired[watch.id] = now
                    self._spawn(self.pipeline.run_watch(watch, "schedule"), f"ingest-schedule-{watch.id}")
                    due = next_fire_ms(watch.schedule_cron, now)
                soonest = due if soonest is None else min(soonest, due)
            timeout = 60.0 if soonest is None else min(60.0, max(0.05, (soonest - clock.now_ms()) / 1000))
            self._schedule_changed.clear()
            await wait_event(self._schedule_changed, timeout)

    async def _maintenance_loop(self) -> None:
        last_scan = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            try:
                await self.watcher.check()
                interval = self.options.scan_interval_s
                if interval and asyncio.get_running_loop().time() - last_scan >= interval:
                    last_scan = asyncio.get_running_loop().time()
                    for watch in await self.pipeline.watches.all():
                        if watch.enabled:
                            await self.pipeline.scan(watch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingest maintenance failed")

    # -- watch operations (API) ---------------------------------------------------------------

    async def _observe(self, watch: Watch) -> None:
        if self.watcher is None:  # not started yet: start() picks every enabled watch up
            return
        async with self._ops:
            if watch.enabled:
                await self.watcher.watch(watch)
            else:
                await self.watcher.unwatch(watch.id)

    async def create_watch(self, body: WatchCreate) -> Watch:
        """Store a watch; an enabled one is observed and its folders scanned right away."""
        watch = await self.pipeline.watches.create(body)
        await self._observe(watch)
        if watch.enabled and self.watcher is not None:
            self._spawn(self.pipeline.scan(watch), f"ingest-scan-{watch.id}")
        self._schedule_changed.set()
        return watch

    async def update_watch(self, watch_id: str, patch: WatchPatch) -> Watch:
        """Change a watch; observers follow; new folders or file types are scanned."""
        before, after = await self.pipeline.watches.update(watch_id, patch)
        self.pipeline.forget_watch(watch_id)
        await self._observe(after)
        widened = (after.paths != before.paths or after.file_extensions != before.file_extensions
                   or (after.enabled and not before.enabled))
        if after.enabled and widened and self.watcher is not None:
            self._spawn(self.pipeline.scan(after), f"ingest-scan-{watch_id}")
        self._schedule_changed.set()
        return after

    async def delete_watch(self, watch_id: str) -> Watch:
        """Delete a watch with its queue and run log (its items stay)."""
        if self.watcher is not None:
            async with self._ops:
                await self.watcher.unwatch(watch_id)
        watch = await self.pipeline.watches.delete(watch_id)
        self.pipeline.forget_watch(watch_id)
        self.pipeline.abandon(watch_id)
        self._schedule_changed.set()
        return watch

    async def run(self, watch_id: str) -> Run:
        """``POST /v1/watches/{id}/run``: a manual run (joins a run already active). Failed files
        are tried again. Returns the run; it goes on in the background."""
        watch = await self.pipeline.watches.get(watch_id)
        ar = await self.pipeline.begin_run(watch, "manual")
        self._spawn(self.pipeline.continue_run(ar, watch, retry_errors=True), f"ingest-manual-{watch_id}")
        return ar.run


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` of the app: the service exists while the app runs; it starts after the
    handshake and stops before the database closes."""
    service = IngestService(app, app.get(INGEST_OPTIONS) or IngestOptions())
    app[INGEST] = service
    app[READINESS].set("watcher", "starting", "folder watching starts after the handshake")
    after_handshake(app, "ingest-start", service.start)
    try:
        yield
    finally:
        await service.stop()


def setup(app: web.Application) -> None:
    """Add folder watching to an application made by :func:`sidecar.app.create_app`: its
    ``cleanup_ctx`` (after the store's, so it stops before the database closes), the watches
    and ingest routes, and the ``watcher`` readiness (set by the context)."""
    from sidecar.api import ingest as ingest_api
    from sidecar.api import journey as journey_api
    from sidecar.api import watches as watches_api

    app.cleanup_ctx.append(ingest_ctx)
    app.router.add_routes(journey_api.routes)  # before /v1/watches/{id}: "journey" is no watch id
    app.router.add_routes(watches_api.routes)
    app.router.add_routes(ingest_api.routes)
