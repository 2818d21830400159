"""The watchdog bridge: file-system events become *hints* for the pipeline (DESIGN §5).

Events are never processed directly. The observer thread hands each relevant event to the event
loop (``call_soon_threadsafe``); there :mod:`sidecar.ingest.hints` debounces them per path and
turns them into queued files, deleted sources, scans of new folders and followed moves.

One native observer (inotify, FSEvents, ReadDirectoryChangesW) watches every root recursively.
If the OS refuses a watch (inotify's watch or instance limit: ``ENOSPC``/``EMFILE``), that root
falls back to a polling observer (``poll_interval_s``) and :meth:`FolderWatcher.status` reports
``degraded`` with the reason. A root that does not exist is reported too and retried by
:meth:`FolderWatcher.check`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sidecar.ingest.hints import Hints
from sidecar.ingest.opener import stored_path
from sidecar.ingest.pipeline import Pipeline
from sidecar.ingest.watches import Watch

log = logging.getLogger(__name__)

Mode = Literal["native", "polling", "missing"]
#: Errors by which the OS says "no more watches" (inotify limits).
_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM})


@dataclass
class _Root:
    """One watched folder and the watches interested in it."""

    path: str
    watch_ids: set[str] = field(default_factory=set)
    mode: Mode | None = None
    observed: Any = None  # watchdog ObservedWatch
    observer: Any = None
    problem: str | None = None


class _Handler:
    """watchdog handler of one root: forwards events to the loop (runs in the observer thread)."""

    def __init__(self, bridge: FolderWatcher, root: str) -> None:
        self.bridge = bridge
        self.root = root

    def dispatch(self, event: Any) -> None:
        kind = event.event_type
        if kind not in ("created", "modified", "closed", "moved", "deleted", "attrib"):
            return
        if event.is_directory and kind in ("modified", "closed", "attrib"):
            return
        # Paths in their stored form: names that are not UTF-8 escaped (sidecar.ingest.opener).
        src = stored_path(os.fsdecode(event.src_path), self.root) or ""
        dest = (stored_path(os.fsdecode(event.dest_path), self.root) or "") if kind == "moved" else ""
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self.bridge.loop.call_soon_threadsafe(self.bridge.on_event, self.root, kind, src, dest, event.is_directory)


class FolderWatcher:
    """Watches the roots of enabled watches and feeds the pipeline. Create, then :meth:`start`
    (in the event loop); :meth:`stop` at shutdown.

    Args:
        pipeline: where hints go.
        debounce_ms: quiet time per path before a hint is acted on.
        poll_interval_s: period of the polling fallback.
        native_observer: factory of the native observer (tests inject one that refuses).
        on_status: called (in the loop) whenever :meth:`status` may have changed.
    """

    def __init__(self, pipeline: Pipeline, *, debounce_ms: int = 200, poll_interval_s: float = 2.0,
                 native_observer: Callable[[], Any] | None = None,
                 on_status: Callable[[], None] | None = None) -> None:
        self.pipeline = pipeline
        self.poll_interval_s = poll_interval_s
        self._native_factory = native_observer
        self._on_status = on_status
        self.loop = asyncio.get_running_loop()
        self._native: Any = None
        self._polling: Any = None
        self._roots: dict[str, _Root] = {}
        self._watches: dict[str, Watch] = {}
        self.hints = Hints(pipeline, self._watches, debounce_ms=debounce_ms)
        self._task: asyncio.Task[None] | None = None
        self._ops = asyncio.Lock()
        self._overflow_handler: _OverflowHandler | None = None
        self._overflowed: str | None = None  # set while events were lost and not yet reconciled
        self._reconcile: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the native observer and the hint flusher."""
        from watchdog.observers import Observer

        factory = self._native_factory or Observer
        self._native = factory()
        self._native.start()
        self._task = asyncio.get_running_loop().create_task(self.hints.run(), name="ingest-hints")
        self._overflow_handler = _OverflowHandler(self)
        logging.getLogger(_INOTIFY_LOGGER).addHandler(self._overflow_handler)

    async def stop(self) -> None:
        """Stop observing (bounded: observer threads are joined for at most ~2 s)."""
        if self._overflow_handler is not None:
            logging.getLogger(_INOTIFY_LOGGER).removeHandler(self._overflow_handler)
            self._overflow_handler = None
        if self._reconcile is not None:
            self._reconcile.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for obs in (self._native, self._polling):
            if obs is not None:
                obs.stop()
        for obs in (self._native, self._polling):
            if obs is not None:
                await asyncio.to_thread(obs.join, 2.0)

    # -- which folders --------------------------------------------------------------------------

    async def watch(self, watch: Watch) -> None:
        """Observe the roots of ``watch`` (replacing what was observed for it before)."""
        async with self._ops:
            self._watches[watch.id] = watch
            wanted = set(watch.paths)
            for root in list(self._roots.values()):
                if watch.id in root.watch_ids and root.path not in wanted:
                    await self._drop(root, watch.id)
            for path in watch.paths:
                root = self._roots.setdefault(path, _Root(path))
                root.watch_ids.add(watch.id)
                if root.observed is None:
                    await self._schedule(root)
        self._status_changed()

    async def unwatch(self, watch_id: str) -> None:
        """Stop observing for ``watch_id``."""
        async with self._ops:
            self._watches.pop(watch_id, None)
            for root in list(self._roots.values()):
                if watch_id in root.watch_ids:
                    await self._drop(root, watch_id)
            self.hints.forget(watch_id)
        self._status_changed()

    async def check(self) -> None:
        """Re-try roots that could not be observed, and notice observed roots that vanished."""
        async with self._ops:
            for root in self._roots.values():
                exists = await asyncio.to_thread(os.path.isdir, root.path)
                if root.observed is None and exists:
                    await self._schedule(root)
                    if root.observed is not None:  # it (re)appeared: catch up with a scan
                        for wid in root.watch_ids:
                            self.hints.add(wid, root.path, True)
                elif root.observed is not None and not exists:
                    await self._unschedule(root)
                    root.mode, root.problem = "missing", f"watched folder {root.path} does not exist"
        self._status_changed()

    async def _drop(self, root: _Root, watch_id: str) -> None:
        root.watch_ids.discard(watch_id)
        if not root.watch_ids:
            await self._unschedule(root)
            del self._roots[root.path]

    async def _unschedule(self, root: _Root) -> None:
        if root.observed is not None:
            obs, observed = root.observer, root.observed
            root.observed = root.observer = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(obs.unschedule, observed)

    async def _schedule(self, root: _Root) -> None:
        handler = _Handler(self, root.path)
        if not await asyncio.to_thread(os.path.isdir, root.path):
            root.mode, root.problem = "missing", f"watched folder {root.path} does not exist"
            return
        try:
            root.observed = await asyncio.to_thread(self._native.schedule, handler, root.path, recursive=True)
            root.observer, root.mode, root.problem = self._native, "native", None
            return
        except OSError as exc:
            if exc.errno not in _LIMIT_ERRNOS:
                root.mode, root.problem = "missing", f"cannot watch {root.path}: {exc.strerror or exc}"
                return
            reason = exc.strerror or str(exc)
        if self._polling is None:
            from watchdog.observers.polling import PollingObserver

            self._polling = PollingObserver(timeout=self.poll_interval_s)
            self._polling.start()
        try:
            root.observed = await asyncio.to_thread(self._polling.schedule, handler, root.path, recursive=True)
        except OSError as exc:
            root.mode, root.problem = "missing", f"cannot watch {root.path}: {exc.strerror or exc}"
            return
        root.observer, root.mode = self._polling, "polling"
        root.problem = f"the OS refused more file watches ({reason}); polling {root.path} every {self.poll_interval_s:g} s"
        log.warning("watch falls back to polling", extra={"path": root.path, "reason": reason})

    def status(self) -> tuple[Literal["ok", "degraded"], str]:
        """``("ok"|"degraded", detail)`` for ``/v1/ready`` (component ``watcher``)."""
        if not self._roots:
            return "ok", "no folders watched"
        problems = [r.problem for r in self._roots.values() if r.problem]
        if self._overflowed:
            problems.append(self._overflowed)
        native = sum(1 for r in self._roots.values() if r.mode == "native")
        detail = f"watching {native} folder{'s' if native != 1 else ''} with OS events"
        if problems:
            return "degraded", "; ".join([*problems, detail])
        return "ok", detail

    def on_overflow(self) -> None:
        """The OS dropped events (inotify queue overflow; in the loop): ``degraded`` until a
        reconciliation scan of every watch has caught up."""
        self._overflowed = "the OS event queue overflowed and events were lost; reconciling with a scan"
        log.warning("file events lost (inotify overflow); reconciliation scan")
        self._status_changed()
        if self._reconcile is None or self._reconcile.done():
            self._reconcile = asyncio.get_running_loop().create_task(self._reconcile_all(), name="ingest-reconcile")

    async def _reconcile_all(self) -> None:
        try:
            for watch in list(self._watches.values()):
                await self.pipeline.scan(watch)
        finally:
            self._overflowed = None
            self._status_changed()

    def _status_changed(self) -> None:
        if self._on_status is not None:
            self._on_status()

    # -- events -------------------------------------------------------------------------------

    def on_event(self, root_path: str, kind: str, src: str, dest: str, is_dir: bool) -> None:
        """One watchdog event (in the loop), handed to :meth:`Hints.event` for each watch of the root."""
        root = self._roots.get(root_path)
        if root is None:
            return
        for wid in root.watch_ids:
            watch = self._watches.get(wid)
            if watch is not None:
                self.hints.event(watch, root_path, kind, src, dest, is_dir)

#: watchdog's inotify module; it logs a warning when the kernel queue overflowed.
_INOTIFY_LOGGER = "watchdog.observers.inotify_c"


class _OverflowHandler(logging.Handler):
    """Turns watchdog's "Inotify queue overflowed" warning (its only signal of lost events)
    into :meth:`FolderWatcher.on_overflow` on the loop."""

    def __init__(self, bridge: FolderWatcher) -> None:
        super().__init__(logging.WARNING)
        self.bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self.bridge.loop.call_soon_threadsafe(self.bridge.on_overflow)

