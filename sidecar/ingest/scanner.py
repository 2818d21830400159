"""The reconciliation scan: the folder's truth, compared with the queue (DESIGN §5).

Watchdog events are hints; this walk is what makes the queue right. It runs at start-up, on
``POST /v1/watches/{id}/run``, on the watch's schedule, periodically, and for a folder that
appeared (created or moved in). :func:`walk` lists candidate files (:mod:`sidecar.ingest.paths`)
with their ``lstat`` size and mtime, without following symlinked folders (so no symlink leads
out of the root or into a loop); :func:`plan` decides what to queue:

* a path the queue does not know, or whose size or mtime changed since it was processed;
* a path whose row says its source was deleted (the file is back);
* with ``retry_errors`` (manual runs), rows that ended in ``error``;
* rows whose file is no longer there are reported as ``gone``.

Symlinked files are queued like any other; the pipeline resolves them and refuses the ones
pointing outside the root (``skipped``) or into a loop (``error``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sidecar.ingest.paths import ignored_name, is_candidate
from sidecar.ingest.queue import DELETED, Known


@dataclass(frozen=True)
class Found:
    """A candidate file: its path, ``lstat`` size (bytes) and mtime (ns)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Walk:
    """The result of :func:`walk`: candidates and folders that could not be listed."""

    files: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing_root: bool = False


def walk(root: str, extensions: Collection[str], *, start: str | None = None) -> Walk:
    """List candidate files below ``start`` (default: ``root``), skipping dot-folders,
    temporary/hidden files and symlinked folders. Blocking: call in a thread.

    Unreadable folders are named in ``problems`` (``"<folder>: permission denied"``); a missing
    ``root`` sets ``missing_root``.
    """
    out = Walk()
    top = start or root
    if not os.path.isdir(root):
        out.missing_root = True
        return out

    def onerror(exc: OSError) -> None:
        out.problems.append(f"{exc.filename}: {exc.strerror or type(exc).__name__}")

    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if ignored_name(name):
                continue
            path = os.path.join(dirpath, name)
            if not is_candidate(path, root, extensions):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue  # vanished between listing and stat
            if stat.S_ISDIR(st.st_mode):
                continue
            out.files.append(Found(path, st.st_size, st.st_mtime_ns))
    return out


@dataclass
class Plan:
    """What a scan changes: paths to queue and paths whose files are gone."""

    enqueue: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def plan(found: list[Found], known: Mapping[str, Known], *, retry_errors: bool = False,
         scope: str | None = None) -> Plan:
    """Compare a walk with the queue's rows (see the module docstring). With ``scope`` (a folder)
    only rows below it can be ``gone``."""
    out = Plan()
    seen: set[str] = set()
    for f in found:
        seen.add(f.path)
        row = known.get(f.path)
        if row is None:
            out.enqueue.append(f.path)
        elif row.status in ("pending", "processing"):
            continue
        elif row.status == "skipped" and row.reason == DELETED:
            out.enqueue.append(f.path)
        elif row.size != f.size or row.mtime_ns != f.mtime_ns:
            out.enqueue.append(f.path)
        elif retry_errors and row.status == "error":
            out.enqueue.append(f.path)
    prefix = None if scope is None else scope.rstrip(os.sep) + os.sep
    for path, row in known.items():
        if path in seen or (row.status == "skipped" and row.reason == DELETED):
            continue
        if prefix is not None and not path.startswith(prefix):
            continue
        if not os.path.lexists(path):
            out.gone.append(path)
    return out
