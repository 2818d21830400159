"""The durable per-file queue (``ingest_files``), DESIGN §5.

One row per (watch, path): ``status`` is ``pending | processing | done | skipped | error`` with a
``reason``, ``attempts`` (claims of the current content), and what was last processed — content
``sha256``, ``size`` (bytes), ``mtime_ns``. Watchdog events and the reconciliation scan only
*enqueue* (:meth:`FileQueue.enqueue`); workers :meth:`~FileQueue.claim` rows and finish them in
the same transaction that stores the file's items (:mod:`sidecar.ingest.worker`).

Guarantees:

* ``gen`` grows on every enqueue. A worker finishing a row whose ``gen`` moved on (the file
  changed again while it was being read) leaves it ``pending``, so the newer content is read too;
  a row being processed is never handed to a second worker.
* ``processing`` rows left by a process that died return to ``pending`` at start-up
  (:meth:`~FileQueue.reset_interrupted`), keeping ``attempts``; a row claimed
  ``IngestOptions.max_attempts`` times ends as ``error`` (see the pipeline), so a file that
  kills the process cannot keep killing it.
* ``due_at`` (Unix ms, :func:`sidecar.clock.now_ms`) delays a row: debounced and still-settling
  files wait; claims take due rows with the fewest attempts first.
* A deleted source becomes ``skipped`` with reason :data:`DELETED` (its items stay, their
  provenance turns ``missing``); it returns to ``pending`` if the file comes back.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from sidecar import clock
from sidecar.ingest.atomic import atomic
from sidecar.store.db import Store, Writer
from sidecar.store.models import ApiModel, Offset

FileStatus = Literal["pending", "processing", "done", "skipped", "error"]
FILE_STATUSES: tuple[FileStatus, ...] = ("pending", "processing", "done", "skipped", "error")
#: Reason of a row whose file was deleted.
DELETED = "source deleted (its items are kept)"


def under(column: str, path: str) -> tuple[str, list[object]]:
    """SQL matching ``column`` equal to ``path`` or any path below the folder ``path``
    (case-sensitive, unlike ``LIKE``), with its parameters."""
    prefix = path.rstrip(os.sep) + os.sep
    return f"({column} = ? OR substr({column}, 1, ?) = ?)", [path, len(prefix), prefix]


@dataclass(frozen=True)
class Claimed:
    """A row handed to a worker. ``gen`` is compared when finishing (see the module docstring)."""

    id: int
    watch_id: str
    path: str
    gen: int
    attempts: int
    sha256: str | None
    run_id: str | None


@dataclass(frozen=True)
class Known:
    """What the queue knows of a path, for the reconciliation scan."""

    status: FileStatus
    reason: str | None
    size: int | None
    mtime_ns: int | None


class FileRow(ApiModel):
    """A queue row as ``GET /v1/ingest/files`` returns it (times in Unix ms, size in bytes)."""

    id: int
    watch_id: str
    path: str
    status: FileStatus
    reason: str | None
    attempts: int
    sha256: str | None
    size: int | None
    mtime: int | None
    items_created: int
    extractor: str | None
    run_id: str | None
    queued_at: int
    updated_at: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FileRow:
        """Build from an ``ingest_files`` row (its ``mtime_ns`` shown in ms)."""
        mtime_ns = row["mtime_ns"]
        return cls.from_db({**dict(row), "mtime": None if mtime_ns is None else mtime_ns // 1_000_000})


class FileQuery(ApiModel):
    """Query of ``GET /v1/ingest/files``: filters and a page (oldest row first)."""

    status: FileStatus | None = None
    watch_id: str | None = None
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: Offset = 0


async def enqueue_in(w: Writer, watch_id: str, paths: Iterable[str], *, run_id: str | None, delay_ms: int = 0) -> int:
    """Queue ``paths`` of a watch inside the caller's transaction (see :meth:`FileQueue.enqueue`)."""
    now = clock.now_ms()
    n = 0
    for path in paths:
        await w.execute(
            "INSERT INTO ingest_files (watch_id, path, status, gen, due_at, run_id, queued_at, updated_at)"
            " VALUES (?, ?, 'pending', 1, ?, ?, ?, ?)"
            " ON CONFLICT (watch_id, path) DO UPDATE SET"
            "  gen = gen + 1,"
            "  attempts = CASE WHEN status IN ('pending', 'processing') THEN attempts ELSE 0 END,"
            "  reason = CASE WHEN status = 'processing' THEN reason ELSE NULL END,"
            "  status = CASE WHEN status = 'processing' THEN 'processing' ELSE 'pending' END,"
            "  due_at = excluded.due_at, run_id = excluded.run_id, updated_at = excluded.updated_at",
            (watch_id, path, now + delay_ms, run_id, now, now),
        )
        n += 1
    return n


class FileQueue:
    """Operations on ``ingest_files``; each public coroutine is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @atomic
    async def reset_interrupted(self) -> int:
        """``processing`` rows (left by a process that died) return to ``pending``; returns how many."""
        async with self.store.write() as w:
            return await w.execute(
                "UPDATE ingest_files SET status = 'pending', updated_at = ? WHERE status = 'processing'",
                (clock.now_ms(),),
            )

    @atomic
    async def enqueue(self, watch_id: str, paths: Sequence[str], *, run_id: str | None, delay_ms: int = 0) -> int:
        """Mark ``paths`` of a watch ``pending`` (inserting rows as needed), due after
        ``delay_ms``, attributed to ``run_id``. A row being processed stays ``processing`` but its
        ``gen`` moves on. Returns how many paths were queued. Batches of 500 per transaction."""
        total = 0
        for i in range(0, len(paths), 500):
            async with self.store.write() as w:
                total += await enqueue_in(w, watch_id, paths[i:i + 500], run_id=run_id, delay_ms=delay_ms)
        return total

    @atomic
    async def claim(self, limit: int) -> list[Claimed]:
        """Take up to ``limit`` due ``pending`` rows (fewest attempts first, then oldest due) and
        mark them ``processing``, counting an attempt."""
        if limit <= 0:
            return []
        now = clock.now_ms()
        async with self.store.write() as w:
            rows = await w.fetchall(
                "UPDATE ingest_files SET status = 'processing', attempts = attempts + 1, updated_at = ?"
                " WHERE id IN (SELECT id FROM ingest_files WHERE status = 'pending' AND due_at <= ?"
                "  ORDER BY attempts, due_at, id LIMIT ?)"
                " RETURNING id, watch_id, path, gen, attempts, sha256, run_id",
                (now, now, limit),
            )
        return [
            Claimed(id=r[0], watch_id=r[1], path=r[2], gen=r[3], attempts=r[4], sha256=r[5], run_id=r[6])
            for r in rows
        ]

    async def next_due_ms(self) -> int | None:
        """The earliest ``due_at`` of a pending row (Unix ms), or None when nothing is pending."""
        row = await self.store.fetchone("SELECT min(due_at) FROM ingest_files WHERE status = 'pending'")
        return None if row is None or row[0] is None else int(row[0])

    async def known(self, watch_id: str) -> dict[str, Known]:
        """Every row of a watch by path (for the reconciliation scan)."""
        rows = await self.store.fetchall(
            "SELECT path, status, reason, size, mtime_ns FROM ingest_files WHERE watch_id = ?", (watch_id,)
        )
        return {r[0]: Known(status=r[1], reason=r[2], size=r[3], mtime_ns=r[4]) for r in rows}

    async def remaining(self, run_id: str) -> int:
        """Rows attributed to ``run_id`` still ``pending`` or ``processing``."""
        row = await self.store.fetchone(
            "SELECT count(*) FROM ingest_files WHERE run_id = ? AND status IN ('pending', 'processing')", (run_id,)
        )
        return int(row[0]) if row else 0

    async def list(self, query: FileQuery | None = None) -> tuple[list[FileRow], int]:
        """A page of rows (filtered by status and watch), oldest first, and the total count."""
        q = query or FileQuery()
        where: list[str] = []
        params: list[object] = []
        if q.status is not None:
            where.append("status = ?")
            params.append(q.status)
        if q.watch_id is not None:
            where.append("watch_id = ?")
            params.append(q.watch_id)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = await self.store.fetchall(
            f"SELECT * FROM ingest_files{clause} ORDER BY id LIMIT ? OFFSET ?", [*params, q.limit, q.offset]
        )
        total = await self.store.fetchone(f"SELECT count(*) FROM ingest_files{clause}", params)
        return [FileRow.from_row(r) for r in rows], int(total[0]) if total else 0

    async def counts(self, watch_id: str | None = None, paths_under: Sequence[str] = ()) -> dict[str, int]:
        """Rows per status (every status present, zeros included), optionally for one watch and
        for paths below any of ``paths_under``."""
        where: list[str] = []
        params: list[object] = []
        if watch_id is not None:
            where.append("watch_id = ?")
            params.append(watch_id)
        if paths_under:
            parts = [under("path", p) for p in paths_under]
            where.append("(" + " OR ".join(sql for sql, _ in parts) + ")")
            for _, ps in parts:
                params.extend(ps)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = await self.store.fetchall(f"SELECT status, count(*) FROM ingest_files{clause} GROUP BY status", params)
        out: dict[str, int] = dict.fromkeys(FILE_STATUSES, 0)
        out.update({r[0]: int(r[1]) for r in rows})
        return out


async def mark_deleted(w: Writer, watch_id: str, path: str) -> list[str]:
    """The file or folder at ``path`` is gone: its rows (the path itself and every path below
    it) become ``skipped`` with reason :data:`DELETED`. Returns the affected paths."""
    match, params = under("path", path)
    # A row being processed is looked at again when its worker finishes (gen moved on).
    await w.execute(
        f"UPDATE ingest_files SET gen = gen + 1 WHERE watch_id = ? AND {match} AND status = 'processing'",
        (watch_id, *params),
    )
    rows = await w.fetchall(
        "UPDATE ingest_files SET status = 'skipped', reason = ?, updated_at = ?"
        f" WHERE watch_id = ? AND {match} AND status != 'processing'"
        " AND NOT (status = 'skipped' AND reason = ?)"
        " RETURNING path",
        (DELETED, clock.now_ms(), watch_id, *params, DELETED),
    )
    return [r[0] for r in rows]


async def move_rows(w: Writer, watch_id: str, src: str, dest: str) -> int:
    """Follow a move: rows of ``src`` (a file, or a folder and everything below it) take the
    ``dest`` paths, keeping what was processed (so unchanged content is not read again). Rows
    already at the destination are replaced. Returns how many rows moved."""
    match, params = under("path", src)
    return await w.execute(
        "UPDATE OR REPLACE ingest_files SET path = ? || substr(path, ?), updated_at = ?"
        f" WHERE watch_id = ? AND {match}",
        (dest, len(src) + 1, clock.now_ms(), watch_id, *params),
    )
