"""The run log of watches (DESIGN §5): one row per run in ``ingest_runs``.

A run is ``{id, watchId, trigger (watch|schedule|manual|startup), status
(running|success|partial|error), itemsProcessed, itemsCreated, errors[], startedAt,
completedAt}``. ``itemsProcessed`` counts files handled in the run, ``itemsCreated`` the
tasks, milestones and notes they produced; both are incremented in the same transaction that
stores a file's items, so the log stays exact across crashes. ``errors`` holds human-readable
strings (``"notes/a.pdf: encrypted PDF"``), at most :data:`MAX_ERRORS` of them.

Final status: ``error`` when the run itself failed (e.g. a watched folder is gone) or every
file it processed failed; ``partial`` when some files failed or a fallback was used (model
unavailable → rules); ``success`` otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Literal

import uuid6
from pydantic import Field

from sidecar import clock
from sidecar.errors import NotFound
from sidecar.ingest.atomic import atomic
from sidecar.store.db import Store, Writer
from sidecar.store.models import ApiModel, Offset

Trigger = Literal["watch", "schedule", "manual", "startup"]
RunStatus = Literal["running", "success", "partial", "error"]
#: Most error strings kept on one run (later ones are counted, not stored).
MAX_ERRORS = 200
#: Reason recorded on runs that were still running when the process stopped.
INTERRUPTED = "interrupted: the sidecar stopped before this run finished; its files continue in the next run"


class Run(ApiModel):
    """One run as the API returns it (times in Unix ms)."""

    id: str
    watch_id: str
    trigger: Trigger
    status: RunStatus
    items_processed: int
    items_created: int
    errors: list[str]
    started_at: int
    completed_at: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        """Build from an ``ingest_runs`` row."""
        return cls.from_db(row, json_columns=("errors",))


class RunQuery(ApiModel):
    """Query of ``GET /v1/watches/{id}/runs`` (newest first)."""

    limit: int = Field(default=50, ge=1, le=1000)
    offset: Offset = 0
    status: RunStatus | None = None


async def add_error(w: Writer, run_id: str, message: str) -> None:
    """Append ``message`` to the run's ``errors`` (inside the caller's transaction)."""
    await w.execute(
        "UPDATE ingest_runs SET errors = json_insert(errors, '$[#]', ?)"
        " WHERE id = ? AND json_array_length(errors) < ?",
        (message[:1000], run_id, MAX_ERRORS),
    )


async def count_file(w: Writer, run_id: str, *, created: int, failed: bool) -> None:
    """Count one processed file (and the items it created) on its run, in the caller's transaction."""
    await w.execute(
        "UPDATE ingest_runs SET items_processed = items_processed + 1, items_created = items_created + ?,"
        " files_failed = files_failed + ? WHERE id = ?",
        (created, int(failed), run_id),
    )


class RunLog:
    """Reads and writes ``ingest_runs``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @atomic
    async def start(self, watch_id: str, trigger: Trigger) -> Run:
        """Open a run: the row (``running``), the watch's ``lastRunAt``, and every file of the
        watch still waiting in the queue is attributed to it (files left by an earlier process)."""
        run_id = str(uuid6.uuid7())
        now = clock.now_ms()
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO ingest_runs (id, watch_id, trigger, status, started_at) VALUES (?, ?, ?, 'running', ?)",
                (run_id, watch_id, trigger, now),
            )
            await w.execute("UPDATE ingest_watches SET last_run_at = ? WHERE id = ?", (now, watch_id))
            await w.execute(
                "UPDATE ingest_files SET run_id = ? WHERE watch_id = ? AND status IN ('pending', 'processing')",
                (run_id, watch_id),
            )
        return await self.get(run_id)

    @atomic
    async def finish(self, run_id: str, *, run_error: str | None = None) -> Run:
        """Close a run, computing its status (see the module docstring). ``run_error`` is a
        failure of the run as a whole; it is added to ``errors``."""
        async with self.store.write() as w:
            if run_error:
                await add_error(w, run_id, run_error)
            row = await w.fetchone("SELECT * FROM ingest_runs WHERE id = ?", (run_id,))
            if row is None:
                raise NotFound(f"no run with id {run_id}")
            processed, failed = row["items_processed"], row["files_failed"]
            if run_error or (processed > 0 and failed == processed):
                status: RunStatus = "error"
            elif json.loads(row["errors"]):
                status = "partial"
            else:
                status = "success"
            await w.execute(
                "UPDATE ingest_runs SET status = ?, completed_at = ? WHERE id = ? AND status = 'running'",
                (status, clock.now_ms(), run_id),
            )
        return await self.get(run_id)

    @atomic
    async def close_interrupted(self) -> int:
        """Runs left ``running`` by a process that died become ``partial`` with a reason
        (call once at start-up, before any run starts). Returns how many were closed."""
        async with self.store.write() as w:
            rows = await w.fetchall("SELECT id FROM ingest_runs WHERE status = 'running'")
            for (run_id,) in rows:
                await add_error(w, run_id, INTERRUPTED)
            await w.execute(
                "UPDATE ingest_runs SET status = 'partial', completed_at = ? WHERE status = 'running'",
                (clock.now_ms(),),
            )
        return len(rows)

    async def get(self, run_id: str) -> Run:
        """One run. Raises NotFound."""
        row = await self.store.fetchone("SELECT * FROM ingest_runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFound(f"no run with id {run_id}", detail={"entity": "runs", "id": run_id})
        return Run.from_row(row)

    async def list(self, watch_id: str, query: RunQuery | None = None) -> tuple[list[Run], int]:
        """A page of the watch's runs, newest first, and the total count."""
        q = query or RunQuery()
        where, params = "WHERE watch_id = ?", [watch_id]
        if q.status is not None:
            where += " AND status = ?"
            params.append(q.status)
        rows = await self.store.fetchall(
            f"SELECT * FROM ingest_runs {where} ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, q.limit, q.offset],
        )
        total = await self.store.fetchone(f"SELECT count(*) FROM ingest_runs {where}", params)
        return [Run.from_row(r) for r in rows], int(total[0]) if total else 0
