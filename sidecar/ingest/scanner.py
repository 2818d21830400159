"""The reconciliation scan: the folder's truth, compared with the queue (DESIGN §5).

Watchdog events are hints; this walk is what makes the queue right. It runs at start-up, on
``POST /v1/watches/{id}/run``, on the watch's schedule, periodically, and for a folder that
appeared (created or moved in). :func:`walk` lists candidate files (:mod:`sidecar.ingest.paths`)
with their ``lstat`` size and mtime through the watch's opener (:mod:`sidecar.ingest.opener`:
no symlinked folder is entered); :func:`plan` decides what to queue:

* a path the queue does not know, or whose size or mtime changed since it was processed;
* a path whose row says its source was deleted (the file is back);
* with ``retry_errors`` (manual runs), rows that ended in ``error``;
* rows whose file is no longer there are reported as ``gone``.

Symlinked files are queued like any other; the pipeline's opener refuses them (``skipped``:
symlinks are not followed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from sidecar.ingest.opener import Found, Walk, WatchRoot
from sidecar.ingest.queue import DELETED, Known

__all__ = ["Found", "Plan", "Walk", "plan", "walk"]


def walk(root: str, extensions: Collection[str], *, start: str | None = None,
         max_files: int | None = None) -> Walk:
    """List candidate files below ``start`` (default: ``root``) through the watch's opener
    (:meth:`sidecar.ingest.opener.WatchRoot.walk`): dot-folders, temporary/hidden files and
    symlinked folders are skipped; names are in their stored (escaped) form. Blocking: call
    in a thread. Unreadable folders are named in ``problems``; a missing ``root`` sets
    ``missing_root``; ``capped`` when more than ``max_files`` candidates were found."""
    return WatchRoot(root).walk(extensions, start=start, max_files=max_files)


@dataclass
class Plan:
    """What a scan changes: paths to queue and paths whose files are gone."""

    enqueue: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def plan(found: list[Found], known: Mapping[str, Known], *, retry_errors: bool = False,
         scope: str | None = None, exists: Callable[[str], bool] = os.path.lexists) -> Plan:
    """Compare a walk with the queue's rows (see the module docstring). With ``scope`` (a folder)
    only rows below it can be ``gone``; ``exists(path)`` tells whether a known path is still
    there (the watch's :meth:`~sidecar.ingest.opener.WatchRoot.exists`)."""
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
        if not exists(path):
            out.gone.append(path)
    return out
