"""The ingest pipeline: watches, scans, queueing and the worker pool over one store
(DESIGN §5). Shared by ``sidecar serve`` (:mod:`sidecar.ingest.service`) and the one-shot
``sidecar ingest`` command (:mod:`sidecar.ingest.cli`).

One file, start to end:

1. a watchdog hint or a scan **enqueues** the path (:mod:`sidecar.ingest.queue`), attributed to
   the watch's active run (a ``watch`` run is opened when none is active);
2. the dispatcher (:meth:`Pipeline.serve_queue`) **claims** due rows, at most
   ``IngestOptions.workers`` at a time;
3. a worker (:mod:`sidecar.ingest.worker`) takes the file from here:
   :func:`~sidecar.ingest.examine.examine` (in a thread, ``asyncio.to_thread``) resolves and checks the path — gone,
   symlink out of the root or looping, not a regular file, not settled yet (modified less than
   ``settle_ms`` ago: retried later), over the size cap —, hashes it (SHA-256), skips unchanged
   content, reads it (:func:`sidecar.ingest.readers.read_document`), checks it did not change
   while being read, and runs the ``rules`` extractor;
4. for a watch with ``useLlm``, the ``llm`` extractor runs instead (falling back to ``rules``
   when the model is unavailable: the run becomes ``partial``);
5. **one transaction** stores the new items with provenance (:mod:`sidecar.ingest.provenance`),
   finishes the queue row and counts the file on its run — so a crash at any point leaves
   either all of it or none of it.

Every outcome is a queue status with a reason; nothing a file contains can stop the workers.
Which run a file counts on, when a run ends and its progress events are the business of
:mod:`sidecar.ingest.active_runs`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar import clock
from sidecar.errors import NotFound
from sidecar.ingest import paths as path_rules
from sidecar.ingest.active_runs import ActiveRun, ActiveRuns, Publish
from sidecar.ingest.atomic import atomic, wait_event
from sidecar.ingest.llm import ModelLoader
from sidecar.ingest.opener import WatchRoot, display
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.provenance import mark_missing, relink
from sidecar.ingest.queue import Claimed, FileQueue, mark_deleted, move_rows
from sidecar.ingest.runs import Run, RunLog, Trigger
from sidecar.ingest.scanner import plan
from sidecar.ingest.watches import Watch, WatchStore
from sidecar.ingest.worker import FileWorker
from sidecar.store.db import Store
from sidecar.store.repository import Repository

log = logging.getLogger(__name__)

@dataclass
class ScanResult:
    """What a scan did: paths queued, sources found gone, folders that could not be listed,
    and watched folders that do not exist."""

    enqueued: int = 0
    gone: int = 0
    problems: list[str] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    #: folders whose candidates went over ``IngestOptions.max_files_per_watch``
    capped: list[str] = field(default_factory=list)


class Pipeline:
    """Runs, scans and the worker pool over one store. See the module docstring.

    Args:
        store, repo: the open database and its repository (the one write path for items).
        options: tuning (sizes in bytes, times in ms/s as named).
        publish: ``publish(event_type, data)`` for transient events (``Notifications.publish``).
        load_model: how the ``llm`` extractor gets its model (None: ``useLlm`` watches use rules).
    """

    def __init__(self, store: Store, repo: Repository, options: IngestOptions | None = None, *,
                 publish: Publish | None = None, load_model: ModelLoader | None = None) -> None:
        self.store = store
        self.repo = repo
        self.options = options or IngestOptions()
        self.watches = WatchStore(store)
        self.queue = FileQueue(store)
        self.runs = RunLog(store)
        self.active = ActiveRuns(store, self.runs, self.queue, self.options, publish=publish)
        self._wake = asyncio.Event()
        self._watch_cache: dict[str, Watch] = {}
        self._openers: dict[str, WatchRoot] = {}
        #: hooks given each parsed document and each gone file inside the outcome's transaction
        #: (search keeps the text of watched files this way): ``await sink.document(w, path,
        #: watch_id, sha256, doc)``, ``await sink.gone(w, paths)``
        self.document_sinks: list[Any] = []
        self.worker = FileWorker(store, repo, self.options, self.active, opener=self.opener,
                                 exists=self.exists, sinks=self.document_sinks, load_model=load_model)

    # -- watches ------------------------------------------------------------------------------

    def forget_watch(self, watch_id: str) -> None:
        """Drop cached state of a watch (after it changed or was deleted)."""
        self._watch_cache.pop(watch_id, None)

    def override_watch(self, watch: Watch) -> Watch:
        """Process the watch's files with this version of it (not stored), e.g. the CLI's
        ``--llm``. Returns it."""
        self._watch_cache[watch.id] = watch
        return watch

    async def _watch(self, watch_id: str) -> Watch | None:
        watch = self._watch_cache.get(watch_id)
        if watch is None:
            try:
                watch = await self.watches.get(watch_id)
            except NotFound:
                return None
            self._watch_cache[watch_id] = watch
        return watch

    def opener(self, root: str) -> WatchRoot:
        """The one opener of the watched folder ``root`` (:mod:`sidecar.ingest.opener`)."""
        opener = self._openers.get(root)
        if opener is None:
            opener = self._openers[root] = WatchRoot(root)
        return opener

    def exists(self, path: str) -> bool:
        """True when ``path`` (stored form) is still there below one of the watched folders it
        belongs to, reached without following links; paths under no known root: ``lexists``."""
        root = path_rules.root_of(path, self._openers)
        return self._openers[root].exists(path) if root is not None else os.path.lexists(path)

    # -- start-up -----------------------------------------------------------------------------

    async def recover(self) -> tuple[int, int]:
        """After a crash: ``processing`` rows back to ``pending``, ``running`` runs closed.
        Returns ``(rows reset, runs closed)``."""
        return await self.queue.reset_interrupted(), await self.runs.close_interrupted()

    # -- runs ---------------------------------------------------------------------------------

    def active_run(self, watch_id: str) -> Run | None:
        """The watch's running run, if any."""
        ar = self.active.of_watch(watch_id)
        return ar.run if ar else None

    async def begin_run(self, watch: Watch, trigger: Trigger) -> ActiveRun:
        """Open a run (or join the watch's active one) and hold it open until
        :meth:`continue_run` has scanned."""
        return await self.active.begin(watch, trigger)

    async def continue_run(self, ar: ActiveRun, watch: Watch, *, retry_errors: bool = False) -> Run:
        """Scan the watch's folders for a run opened with :meth:`begin_run`, queue what changed,
        and release the hold (the run ends when its files are done)."""
        try:
            try:
                result = await self.scan(watch, retry_errors=retry_errors, run=ar)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the run must say it failed, never end as success
                log.exception("scan failed", extra={"watch_id": watch.id})
                ar.run_error = f"scan failed ({type(exc).__name__}: {display(str(exc))[:200]})"
            else:
                if result.missing_roots:
                    ar.run_error = "; ".join(result.missing_roots)
        finally:
            ar.scanning -= 1
        await self.active.after(ar.run.id, counted=False, force=True)
        return ar.run

    async def run_watch(self, watch: Watch, trigger: Trigger, *, retry_errors: bool = False) -> Run:
        """Open a run (or join the active one), scan the watch's folders and queue what changed.
        Returns the run (still ``running`` unless there was nothing to do). Manual runs pass
        ``retry_errors`` to try failed files again."""
        ar = await self.begin_run(watch, trigger)
        return await self.continue_run(ar, watch, retry_errors=retry_errors)

    def abandon(self, watch_id: str) -> None:
        """Forget the active run of a deleted watch (its rows are gone) and wake its waiters."""
        self.active.abandon(watch_id)

    async def wait_run(self, run_id: str) -> Run:
        """Wait until the run finishes; returns its final record."""
        return await self.active.wait(run_id)

    # -- queueing -----------------------------------------------------------------------------

    async def enqueue(self, watch: Watch, paths: Sequence[str], *, delay_ms: int = 0,
                      trigger: Trigger = "watch", run: ActiveRun | None = None) -> int:
        """Queue ``paths`` of ``watch`` on its active run (opening a ``trigger`` run if none)."""
        if not paths:
            return 0
        n = 0
        for i in range(0, len(paths), 500):
            async with self.active.lock(watch.id):
                ar = run if run is not None and self.active.of_run(run.run.id) is run else await self.active.open(watch, trigger)
                n += await self.queue.enqueue(watch.id, paths[i:i + 500], run_id=ar.run.id, delay_ms=delay_ms)
        self._wake.set()
        return n

    @atomic
    async def sources_gone(self, watch: Watch, paths: Sequence[str]) -> int:
        """Files or folders of a watch were deleted: their rows become ``skipped`` (reason
        :data:`~sidecar.ingest.queue.DELETED`) and their provenance ``missing``."""
        n = 0
        for i in range(0, len(paths), 500):
            async with self.repo.transaction() as tx:
                for path in paths[i:i + 500]:
                    affected = await mark_deleted(tx.w, watch.id, path)
                    await mark_missing(tx, affected or [path])
                    for sink in self.document_sinks:
                        await sink.gone(tx.w, affected or [path])
                    n += len(affected)
        self._wake.set()
        return n

    @atomic
    async def moved(self, watch: Watch, src: str, dest: str) -> None:
        """Follow a move inside a watch: queue rows and provenance take the new path(s)."""
        async with self.repo.transaction() as tx:
            await move_rows(tx.w, watch.id, src, dest)
            await relink(tx, src, dest)

    async def scan(self, watch: Watch, *, retry_errors: bool = False, start: str | None = None,
                   run: ActiveRun | None = None) -> ScanResult:
        """Reconcile the watch's folders (or the folder ``start`` below one of them) with the
        queue: queue new and changed files, mark vanished ones. See :mod:`sidecar.ingest.scanner`."""
        result = ScanResult()
        known = await self.queue.known(watch.id)
        exts = frozenset(watch.file_extensions)
        for root in watch.paths:
            if start is not None and path_rules.relative_parts(start, root) is None:
                continue
            opener = self.opener(root)
            cap = self.options.max_files_per_watch
            listing = await asyncio.to_thread(opener.walk, exts, start=start, max_files=cap)
            if listing.missing_root:
                result.missing_roots.append(f"watched folder {root} does not exist")
                continue
            result.problems += listing.problems
            if listing.capped:
                result.capped.append(f"{root} holds more than {cap} candidate files; only the first {cap} are"
                                     " watched (pick a smaller folder)")
            todo = plan(listing.files, known, retry_errors=retry_errors, scope=start or root,
                        exists=opener.exists)
            del listing
            if todo.enqueue:
                result.enqueued += await self.enqueue(watch, todo.enqueue, run=run)
            if todo.gone:
                result.gone += await self.sources_gone(watch, todo.gone)
        notes = [f"cannot list folder {p}" for p in result.problems[:20]] + result.capped
        ar = run if run is not None else self.active.of_watch(watch.id)
        if notes and ar is not None:  # said on the run this scan belongs to
            await self.active.note(ar.run.id, notes)
        return result

    # -- workers ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Tell the dispatcher to look at the queue now."""
        self._wake.set()

    async def serve_queue(self) -> None:
        """Claim and process due rows forever, at most ``options.workers`` at a time (rows are
        claimed a few at a time ahead of the workers). When the workers go idle, finished runs
        are closed. Cancel to stop: files in hand stay ``processing`` and return to ``pending``
        at the next start, or now with :meth:`release`."""
        running: set[asyncio.Task[None]] = set()
        ahead: deque[Claimed] = deque()
        workers = max(1, self.options.workers)
        try:
            while True:
                self._wake.clear()
                if len(running) < workers and not ahead:
                    ahead.extend(await self.queue.claim(workers * 2))
                started = 0
                while ahead and len(running) < workers:
                    c = ahead.popleft()
                    task = asyncio.create_task(self._process(c), name=f"ingest-file-{c.id}")
                    running.add(task)
                    task.add_done_callback(self._worker_done(running))
                    started += 1
                if started and len(running) < workers:
                    continue
                timeout = 1.0
                if not running and not ahead:
                    for ar in self.active.all():
                        await self.active.after(ar.run.id, counted=False, force=True)
                    due = await self.queue.next_due_ms()
                    if due is not None:
                        timeout = min(1.0, max(0.01, (due - clock.now_ms()) / 1000))
                await wait_event(self._wake, timeout)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _worker_done(self, running: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            self._wake.set()  # a worker is free: claim the next file now

        return done

    async def release(self) -> int:
        """Return this process's ``processing`` rows to ``pending`` (at shutdown)."""
        return await self.queue.reset_interrupted()

    async def _process(self, c: Claimed) -> None:
        watch = await self._watch(c.watch_id)
        if watch is not None:
            await self.worker.process(c, watch)
