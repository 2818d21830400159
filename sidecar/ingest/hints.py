"""Hints: what a file-system event asks of the pipeline, debounced (DESIGN §5).

:class:`sidecar.ingest.watcher.FolderWatcher` hands each relevant watchdog event to
:meth:`Hints.event` (in the loop). Events are never processed directly: they become *hints*,
**debounced** per path (``debounce_ms`` of quiet) and then checked against the file system:

* a file that exists is queued (:meth:`Pipeline.enqueue`), on the watch's active run (a ``watch``
  run is opened when none is);
* a path that no longer exists is a deleted source (:meth:`Pipeline.sources_gone`);
* a folder that appeared (created, or moved in) is scanned (:meth:`Pipeline.scan` of that folder).

Moves inside a watch (``dest_path``) are applied first, in order: queue rows and provenance
follow the file (:meth:`Pipeline.moved`), then the destination is hinted. A move from an ignored
name onto a candidate (an editor's "write temp, rename over") is a change of the destination; a
move out of the watch (or to an ignored name) is a deletion. While the disk is full, hints are
kept and tried again after :data:`DISK_FULL_RETRY_S`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping

from sidecar.errors import DiskFull
from sidecar.ingest import paths as path_rules
from sidecar.ingest.atomic import wait_event
from sidecar.ingest.pipeline import Pipeline
from sidecar.ingest.watches import Watch

log = logging.getLogger(__name__)

#: How long hints wait before being tried again while the disk is full (seconds).
DISK_FULL_RETRY_S = 2.0


class Hints:
    """The pending hints and moves of every watch, and the task that acts on them (:meth:`run`).

    Args:
        pipeline: where hints go.
        watches: the watches observed, by id (the watcher's own map: a watch gone from it is
            no longer acted on).
        debounce_ms: quiet time per path before a hint is acted on.
    """

    def __init__(self, pipeline: Pipeline, watches: Mapping[str, Watch], *, debounce_ms: int = 200) -> None:
        self.pipeline = pipeline
        self.debounce_s = debounce_ms / 1000
        self._watches = watches
        self._hints: dict[tuple[str, str], tuple[float, bool]] = {}  # (watch, path) → (deadline, is_dir)
        self._moves: list[tuple[str, str, str]] = []  # (watch, src, dest)
        self._kick = asyncio.Event()

    def add(self, watch_id: str, path: str, is_dir: bool) -> None:
        """Hint ``path`` of the watch (a folder when ``is_dir``): acted on after the debounce."""
        self._hints[(watch_id, path)] = (time.monotonic() + self.debounce_s, is_dir)
        self._kick.set()

    def forget(self, watch_id: str) -> None:
        """Drop the pending hints of a watch no longer observed."""
        self._hints = {k: v for k, v in self._hints.items() if k[0] != watch_id}

    def event(self, watch: Watch, root: str, kind: str, src: str, dest: str, is_dir: bool) -> None:
        """One watchdog event below the watched folder ``root`` of ``watch`` (paths in stored
        form; ``dest`` only for ``moved``): turned into hints and moves, see the module docstring."""
        if is_dir:
            self._dir_event(watch, root, kind, src, dest)
        else:
            self._file_event(watch, root, kind, src, dest)

    def _file_event(self, watch: Watch, root: str, kind: str, src: str, dest: str) -> None:
        exts = watch.file_extensions
        src_ok = path_rules.is_candidate(src, root, exts)
        if kind != "moved":
            if src_ok:
                self.add(watch.id, src, False)
            return
        dest_ok = path_rules.is_candidate(dest, root, exts)
        if src_ok and dest_ok:
            self._moves.append((watch.id, src, dest))
            self._kick.set()
        if src_ok and not dest_ok:
            self.add(watch.id, src, False)
        if dest_ok:
            self.add(watch.id, dest, False)

    def _dir_event(self, watch: Watch, root: str, kind: str, src: str, dest: str) -> None:
        src_ok = path_rules.is_dir_candidate(src, root) and src != root
        if kind == "created" and src_ok:
            self.add(watch.id, src, True)
        elif kind == "deleted" and src_ok:
            self.add(watch.id, src, False)
        elif kind == "moved":
            dest_ok = path_rules.is_dir_candidate(dest, root) and dest != root
            if src_ok and dest_ok:
                self._moves.append((watch.id, src, dest))
                self._kick.set()
            elif src_ok:
                self.add(watch.id, src, False)
            if dest_ok:
                self.add(watch.id, dest, True)

    async def run(self) -> None:
        """Act on hints as their debounce passes, forever (cancel to stop); a failure is logged."""
        while True:
            timeout = None
            if self._hints:
                timeout = max(0.0, min(d for d, _ in self._hints.values()) - time.monotonic())
            self._kick.clear()
            if timeout is None or timeout > 0:
                await wait_event(self._kick, timeout)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("acting on file events failed")

    async def flush(self, *, everything: bool = False) -> None:
        """Apply pending moves, then act on hints whose debounce has passed (all, with ``everything``)."""
        moves, self._moves = self._moves, []
        for wid, src, dest in moves:
            watch = self._watches.get(wid)
            if watch is not None:
                await self.pipeline.moved(watch, src, dest)
        now = time.monotonic()
        due = [(k, is_dir) for k, (d, is_dir) in self._hints.items() if everything or d <= now]
        if not due:
            return
        for k, _ in due:
            del self._hints[k]
        by_watch: dict[str, list[tuple[str, bool]]] = {}
        for (wid, path), is_dir in due:
            by_watch.setdefault(wid, []).append((path, is_dir))
        for wid, items in by_watch.items():
            watch = self._watches.get(wid)
            if watch is None:
                continue
            kinds = await asyncio.to_thread(_classify, [p for p, _ in items], self._lstat_under(watch))
            files = [p for p, k in kinds if k == "file"]
            gone = [p for p, k in kinds if k == "gone"]
            dirs = [p for p, k in kinds if k == "dir"]
            try:
                if files:
                    await self.pipeline.enqueue(watch, files)
                if gone:
                    await self.pipeline.sources_gone(watch, gone)
                for d in dirs:
                    await self.pipeline.scan(watch, start=d)
            except DiskFull:  # keep the hints: acted on once the disk has room again
                log.warning("file events kept for later: the disk is full", extra={"watch_id": wid})
                later = time.monotonic() + DISK_FULL_RETRY_S
                for path, is_dir in items:
                    self._hints.setdefault((wid, path), (later, is_dir))
                self._kick.set()

    def _lstat_under(self, watch: Watch) -> Callable[[str], os.stat_result | None]:
        """``lstat`` of a path of ``watch`` through its root's opener (None: not there)."""
        def lstat(path: str) -> os.stat_result | None:
            root = path_rules.root_of(path, watch.paths)
            return self.pipeline.opener(root).lstat(path) if root is not None else None

        return lstat


def _classify(paths: list[str], lstat: Callable[[str], os.stat_result | None]) -> list[tuple[str, str]]:
    """Each path as ``file`` (anything but a folder, symlinks included), ``dir`` or ``gone``,
    looked up with ``lstat`` (the watch's opener: no symlinked folder on the way is followed)."""
    out = []
    for p in paths:
        try:
            st = lstat(p)
        except Exception:  # unreadable but there: let the pipeline give it a status
            out.append((p, "file"))
            continue
        if st is None:
            out.append((p, "gone"))
            continue
        out.append((p, "dir" if stat.S_ISDIR(st.st_mode) else "file"))
    return out
