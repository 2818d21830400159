"""The ingest pipeline: runs, scans, the worker pool, and storing each file's result
(DESIGN §5). Shared by ``sidecar serve`` (:mod:`sidecar.ingest.service`) and the one-shot
``sidecar ingest`` command (:mod:`sidecar.ingest.cli`).

One file, start to end:

1. a watchdog hint or a scan **enqueues** the path (:mod:`sidecar.ingest.queue`), attributed to
   the watch's active run (a ``watch`` run is opened when none is active);
2. the dispatcher (:meth:`Pipeline.serve_queue`) **claims** due rows, at most
   ``IngestOptions.workers`` at a time;
3. :func:`~sidecar.ingest.examine.examine` (in a thread, ``asyncio.to_thread``) resolves and checks the path — gone,
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
Progress goes out as transient events ``ingest.progress`` ``{watchId, runId, done, total}`` (at
most one per ``progress_interval_s`` per run, plus a final one) and ``ingest.run`` (the run
record) when a run starts and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar import clock
from sidecar.errors import DiskFull, NotFound, StoreFailed
from sidecar.ingest import paths as path_rules
from sidecar.ingest.atomic import atomic, wait_event
from sidecar.ingest.examine import Examined, examine, rules_extractor
from sidecar.ingest.opener import WatchRoot, display
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.provenance import Source, mark_missing, mark_present, relink, store_items
from sidecar.ingest.queue import DELETED, Claimed, FileQueue, mark_deleted, move_rows
from sidecar.ingest.runs import Run, RunLog, Trigger, add_error, count_file
from sidecar.ingest.scanner import plan
from sidecar.ingest.watches import Watch, WatchStore
from sidecar.store.db import Store
from sidecar.store.repository import Repository

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
#: ``await load()`` → ``(model, None)`` or ``(None, reason)``; see :func:`sidecar.ingest.llm.load_model`.
ModelLoader = Callable[[], Awaitable[tuple[Any | None, str | None]]]
@dataclass
class _ActiveRun:
    run: Run
    scanning: int = 0
    done: int = 0
    last_progress: float = 0.0
    run_error: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    model: Any = None
    model_loaded: bool = False
    llm_down: str | None = None


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
        self._publish = publish
        self._load_model = load_model
        self._active: dict[str, _ActiveRun] = {}
        self._by_run: dict[str, _ActiveRun] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._watch_cache: dict[str, Watch] = {}
        self._openers: dict[str, WatchRoot] = {}
        #: hooks given each parsed document and each gone file inside the outcome's transaction
        #: (search keeps the text of watched files this way): ``await sink.document(w, path,
        #: watch_id, sha256, doc)``, ``await sink.gone(w, paths)``
        self.document_sinks: list[Any] = []

    # -- events -------------------------------------------------------------------------------

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Send a transient event; a failing listener is logged, never raised."""
        if self._publish is None:
            return
        try:
            self._publish(event_type, data)
        except Exception:
            log.exception("publishing an ingest event failed")

    def _lock(self, watch_id: str) -> asyncio.Lock:
        return self._locks.setdefault(watch_id, asyncio.Lock())

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

    def _root_of(self, watch: Watch, path: str) -> str | None:
        for root in watch.paths:
            if path_rules.relative_parts(path, root):
                return root
        return None

    def opener(self, root: str) -> WatchRoot:
        """The one opener of the watched folder ``root`` (:mod:`sidecar.ingest.opener`)."""
        opener = self._openers.get(root)
        if opener is None:
            opener = self._openers[root] = WatchRoot(root)
        return opener

    def exists(self, path: str) -> bool:
        """True when ``path`` (stored form) is still there below one of the watched folders it
        belongs to, reached without following links; paths under no known root: ``lexists``."""
        for root, opener in self._openers.items():
            if path_rules.relative_parts(path, root):
                return opener.exists(path)
        return os.path.lexists(path)

    def _rel(self, watch: Watch, path: str) -> str:
        root = self._root_of(watch, path)
        return os.path.relpath(path, root) if root else path

    # -- start-up -----------------------------------------------------------------------------

    async def recover(self) -> tuple[int, int]:
        """After a crash: ``processing`` rows back to ``pending``, ``running`` runs closed.
        Returns ``(rows reset, runs closed)``."""
        return await self.queue.reset_interrupted(), await self.runs.close_interrupted()

    # -- runs ---------------------------------------------------------------------------------

    async def _open_run(self, watch: Watch, trigger: Trigger) -> _ActiveRun:
        """The watch's active run, or a new one (caller holds the watch's lock)."""
        ar = self._active.get(watch.id)
        if ar is not None:
            return ar
        run = await self.runs.start(watch.id, trigger)
        ar = _ActiveRun(run=run)
        self._active[watch.id] = ar
        self._by_run[run.id] = ar
        self.publish("ingest.run", run.model_dump(mode="json", by_alias=True))
        log.info("ingest run started", extra={"watch_id": watch.id, "run_id": run.id, "trigger": trigger})
        return ar

    def active_run(self, watch_id: str) -> Run | None:
        """The watch's running run, if any."""
        ar = self._active.get(watch_id)
        return ar.run if ar else None

    @atomic
    async def _note(self, run_id: str, messages: Sequence[str]) -> None:
        async with self.store.write() as w:
            for m in messages:
                await add_error(w, run_id, m)

    async def begin_run(self, watch: Watch, trigger: Trigger) -> _ActiveRun:
        """Open a run (or join the watch's active one) and hold it open until
        :meth:`continue_run` has scanned."""
        async with self._lock(watch.id):
            ar = await self._open_run(watch, trigger)
            ar.scanning += 1
        return ar

    async def continue_run(self, ar: _ActiveRun, watch: Watch, *, retry_errors: bool = False) -> Run:
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
        await self._after(ar.run.id, counted=False, force=True)
        return ar.run

    async def run_watch(self, watch: Watch, trigger: Trigger, *, retry_errors: bool = False) -> Run:
        """Open a run (or join the active one), scan the watch's folders and queue what changed.
        Returns the run (still ``running`` unless there was nothing to do). Manual runs pass
        ``retry_errors`` to try failed files again."""
        ar = await self.begin_run(watch, trigger)
        return await self.continue_run(ar, watch, retry_errors=retry_errors)

    def abandon(self, watch_id: str) -> None:
        """Forget the active run of a deleted watch (its rows are gone) and wake its waiters."""
        ar = self._active.pop(watch_id, None)
        if ar is not None:
            self._by_run.pop(ar.run.id, None)
            ar.finished.set()

    async def wait_run(self, run_id: str) -> Run:
        """Wait until the run finishes; returns its final record."""
        ar = self._by_run.get(run_id)
        if ar is not None:
            await ar.finished.wait()
        return await self.runs.get(run_id)

    async def _after(self, run_id: str | None, *, counted: bool, force: bool = False) -> None:
        """After a file, a scan, or when the workers go idle: count the file, publish progress
        (at most once per ``progress_interval_s``, each time with a count of what is left) and
        close the run when nothing is left. ``force`` checks now, whatever the interval."""
        ar = self._by_run.get(run_id) if run_id else None
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
        async with self._lock(watch_id):
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

    def _progress(self, ar: _ActiveRun, remaining: int) -> None:
        self.publish("ingest.progress", {"watchId": ar.run.watch_id, "runId": ar.run.id, "done": ar.done,
                                         "total": ar.done + remaining})

    # -- queueing -----------------------------------------------------------------------------

    async def enqueue(self, watch: Watch, paths: Sequence[str], *, delay_ms: int = 0,
                      trigger: Trigger = "watch", run: _ActiveRun | None = None) -> int:
        """Queue ``paths`` of ``watch`` on its active run (opening a ``trigger`` run if none)."""
        if not paths:
            return 0
        n = 0
        for i in range(0, len(paths), 500):
            async with self._lock(watch.id):
                ar = run if run is not None and self._by_run.get(run.run.id) is run else await self._open_run(watch, trigger)
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
                   run: _ActiveRun | None = None) -> ScanResult:
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
        ar = run if run is not None else self._active.get(watch.id)
        if notes and ar is not None:  # said on the run this scan belongs to
            await self._note(ar.run.id, notes)
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
                    for ar in list(self._by_run.values()):
                        await self._after(ar.run.id, counted=False, force=True)
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
        if watch is None:
            return
        counted, run_id = False, c.run_id
        try:
            counted, run_id = await self._process_file(c, watch)
        except asyncio.CancelledError:
            raise
        except (DiskFull, StoreFailed) as exc:  # not the file's fault: it waits, it is not failed
            log.warning("ingest paused: the store cannot be written", extra={"code": exc.code})
            await self._back_to_pending(c)
            return
        except Exception as exc:
            log.exception("ingest of a file failed", extra={"path": c.path})
            with contextlib.suppress(Exception):
                counted, run_id = await self._commit(
                    c, watch, Examined("error", f"internal error ({type(exc).__name__})"))
        await self._after(run_id, counted=counted)

    async def _back_to_pending(self, c: Claimed, every_s: float = 2.0) -> None:
        """Return a claimed row to ``pending`` once the store takes writes again (disk full):
        the worker waits, retrying every ``every_s``; a replaced database never takes them."""
        while True:
            try:
                async with self.store.write() as w:
                    await w.execute("UPDATE ingest_files SET status = 'pending', updated_at = ? WHERE id = ?",
                                    (clock.now_ms(), c.id))
                return
            except DiskFull:
                await asyncio.sleep(every_s)
            except StoreFailed:
                return  # the next start refuses this database; the row is reset there or never

    async def _process_file(self, c: Claimed, watch: Watch) -> tuple[bool, str | None]:
        if c.attempts > self.options.max_attempts:
            reason = f"gave up after {c.attempts - 1} attempts (the sidecar stopped while reading this file)"
            return await self._commit(c, watch, Examined("error", reason))
        root = self._root_of(watch, c.path)
        if root is None:
            return await self._commit(c, watch, Examined("skipped", "no longer inside the watch's folders"))
        use_llm = watch.use_llm and self._load_model is not None
        extract = None if use_llm else rules_extractor(watch)
        ex = await asyncio.to_thread(examine, c.path, self.opener(root), prev_sha=c.sha256,
                                     options=self.options, extract=extract)
        notes: list[str] = []
        extractor = ("rules", _rules_version())
        if ex.outcome == "document" and use_llm:
            assert ex.doc is not None and ex.mtime_ns is not None
            ex, extractor, notes = await self._extract_llm(c, watch, ex)
        return await self._commit(c, watch, ex, extractor=extractor, notes=notes)

    async def _model(self, ar: _ActiveRun | None) -> tuple[Any | None, str | None]:
        assert self._load_model is not None
        if ar is not None and ar.llm_down:
            return None, ar.llm_down
        if ar is not None and ar.model_loaded:
            return ar.model, ar.llm_down
        model, why = await self._load_model()
        if ar is not None:
            ar.model, ar.model_loaded, ar.llm_down = model, True, why
        return model, why

    async def _extract_llm(self, c: Claimed, watch: Watch,
                           ex: Examined) -> tuple[Examined, tuple[str, str], list[str]]:
        from sidecar.ingest.llm import (
            EXTRACTOR_NAME,
            EXTRACTOR_VERSION,
            LlmExtractor,
            LlmOutputInvalid,
            LlmUnavailable,
            extraction_instructions,
        )

        assert ex.doc is not None and ex.mtime_ns is not None
        ar = self._by_run.get(c.run_id) if c.run_id else None
        model, why = await self._model(ar)
        if model is not None:
            extractor = LlmExtractor(model, chunk_chars=self.options.llm_chunk_chars,
                                     max_chunks=self.options.llm_max_chunks,
                                     user_instructions=await extraction_instructions(self.store))
            try:
                ex.items = await extractor.extract(ex.doc, prompt_template=watch.prompt_template,
                                                   want=watch.data_types, skip_done=watch.skip_done,
                                                   now_ms=ex.mtime_ns // 1_000_000)
                return ex, (EXTRACTOR_NAME, EXTRACTOR_VERSION), []
            except LlmOutputInvalid as exc:
                return Examined("error", exc.reason, sha256=ex.sha256, size=ex.size, mtime_ns=ex.mtime_ns), \
                    (EXTRACTOR_NAME, EXTRACTOR_VERSION), []
            except LlmUnavailable as exc:
                why = f"model unavailable ({exc.reason})"
                if ar is not None:
                    ar.llm_down = why
        ex.items = await asyncio.to_thread(rules_extractor(watch), ex.doc, ex.mtime_ns // 1_000_000)
        return ex, ("rules", _rules_version()), [f"{why}; extracted with rules instead"]

    @atomic
    async def _commit(self, c: Claimed, watch: Watch, ex: Examined, *,
                      extractor: tuple[str, str] = ("rules", ""), notes: Sequence[str] = ()) -> tuple[bool, str | None]:
        """Store the outcome of one claimed row in one transaction. Returns whether the file
        counted as processed (everything but ``later``) and the run it counted on."""
        now = clock.now_ms()
        async with self.repo.transaction() as tx:
            w = tx.w
            row = await w.fetchone("SELECT gen, path, run_id FROM ingest_files WHERE id = ?", (c.id,))
            if row is None:  # the watch was deleted meanwhile
                return False, None
            path, run_id = row["path"], row["run_id"]
            changed_meanwhile = row["gen"] != c.gen
            if ex.outcome == "later":
                await w.execute(
                    "UPDATE ingest_files SET status = 'pending', attempts = max(attempts - 1, 0), due_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (now + ex.delay_ms, now, c.id),
                )
                return False, run_id
            status, reason, created = "done", None, 0
            messages = [f"{self._rel(watch, path)}: {n}" for n in notes]
            if ex.outcome == "gone":
                status, reason = "skipped", DELETED
                await mark_missing(tx, [path])
                for sink in self.document_sinks:
                    await sink.gone(w, [path])
            elif ex.outcome in ("skipped", "error"):
                status, reason = ex.outcome, ex.reason
                if ex.outcome == "error":
                    messages.append(f"{self._rel(watch, path)}: {ex.reason}")
            elif ex.outcome == "unchanged":
                await mark_present(tx, path)
            elif ex.outcome == "document":
                assert ex.sha256 is not None
                source = Source(path=path, sha256=ex.sha256, watch=watch, run_id=run_id,
                                extractor=extractor[0], extractor_version=extractor[1], exists=self.exists)
                stored = await store_items(tx, source, ex.items or [])
                for sink in self.document_sinks:
                    await sink.document(w, path, watch.id, ex.sha256, ex.doc)
                created = stored.created
                messages += [f"{self._rel(watch, path)}: {r}" for r in stored.refused or []]
            final = "pending" if changed_meanwhile else status
            await w.execute(
                "UPDATE ingest_files SET status = ?, reason = ?, sha256 = coalesce(?, sha256),"
                " size = coalesce(?, size), mtime_ns = coalesce(?, mtime_ns), items_created = items_created + ?,"
                " extractor = coalesce(?, extractor), due_at = ?, updated_at = ? WHERE id = ?",
                (final, reason, ex.sha256, ex.size, ex.mtime_ns, created,
                 extractor[0] if ex.outcome == "document" else None, now, now, c.id),
            )
            if run_id:
                await count_file(w, run_id, created=created, failed=status == "error")
                for m in messages:
                    await add_error(w, run_id, m)
        return True, run_id


def _rules_version() -> str:
    from sidecar.ingest.rules import EXTRACTOR_VERSION

    return EXTRACTOR_VERSION
