"""Storing extracted items exactly once, with their provenance (DESIGN §3 "Provenance", §5).

Every item goes through the repository (:class:`~sidecar.store.repository.RepoTx`, so it is in
the change log) with ``isAiSuggested=1, isApproved=0`` (notes have neither column), and in the
same transaction a row of ``ingest_provenance``: source path, content SHA-256, span (character
offsets and lines), extractor name and version, watch id, run id and the item's fingerprint
(:meth:`~sidecar.ingest.items.ExtractedItem.fingerprint`: type + normalised title).

Identity rules — one row per (source path, fingerprint), never deleted:

* re-ingesting unchanged content creates nothing; a modified file creates only items whose
  fingerprint was not already extracted from that path;
* a file whose content (SHA-256) was already ingested under another path is recognised: if that
  path no longer exists (a rename the watcher did not see as a move) its rows are re-pointed to
  the new path; if it still exists (a copy) the new path is linked to the same items. Either
  way nothing is created;
* a move seen by the watcher re-points rows directly (:func:`relink`), whatever the content;
* a deleted source leaves its items and marks its rows ``missing`` (:func:`mark_missing`); they
  turn ``active`` again if the file comes back;
* deleting an item turns its row ``rejected`` (a trigger of migration ``005_ingest``, in the
  deleting transaction); the fingerprint stays, so the item is never suggested again from that
  source.

Milestones need a project: a watch without ``projectId`` files them under a project named after
the watch, created once through the repository and remembered on the watch.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar import clock
from sidecar.errors import ValidationFailed
from sidecar.ingest.items import ExtractedItem
from sidecar.ingest.queue import under
from sidecar.ingest.watches import Watch, set_auto_project
from sidecar.store.repository import RepoTx

#: Entity (change-log name) of each extracted item type.
ENTITY_OF_TYPE: dict[str, str] = {"task": "tasks", "timeline": "timelines", "note": "notes"}
_MAX_MS = 253_402_300_799_999  # EpochMs upper bound (year 9999)
_MAX_TEXT = 1_000_000  # LongText limit of the domain models (characters)
_MAX_ASSIGNEES = 100


@dataclass(frozen=True)
class Source:
    """Where a batch of items came from."""

    path: str
    sha256: str
    watch: Watch
    run_id: str | None
    extractor: str
    extractor_version: str
    #: whether a source path (stored form) still exists; the pipeline passes its opener's check
    exists: Callable[[str], bool] = os.path.lexists


@dataclass
class StoreResult:
    """What :func:`store_items` did: items created, linked from an identical source, already
    known, and items refused by the domain models (with reasons)."""

    created: int = 0
    linked: int = 0
    known: int = 0
    refused: list[str] | None = None


def _epoch(value: int | None) -> int | None:
    return value if value is not None and 0 <= value <= _MAX_MS else None


def _body(item: ExtractedItem, project_id: str | None) -> dict[str, Any]:
    """The repository create body of an item (camelCase keys), clamped to the models' limits."""
    if item.type == "task":
        return {
            "title": item.title,
            "description": item.description[:_MAX_TEXT] if item.description else None,
            "status": item.status,
            "priority": item.priority or "medium",
            "assignee": [a.strip()[:500] for a in item.assignees if a.strip()][:_MAX_ASSIGNEES],
            "dueDate": _epoch(item.due_date),
            "projectId": project_id,
            "isAiSuggested": True,
            "isApproved": False,
        }
    if item.type == "timeline":
        return {
            "projectId": project_id,
            "title": item.title,
            "date": item.date,
            "isAiSuggested": True,
            "isApproved": False,
        }
    return {"title": item.title, "content": (item.description or "")[:_MAX_TEXT], "projectId": project_id}


async def _project_exists(tx: RepoTx, project_id: str | None) -> bool:
    if project_id is None:
        return False
    return await tx.w.fetchone("SELECT 1 FROM projects WHERE id = ?", (project_id,)) is not None


class _Projects:
    """Resolves, once per transaction, the project of tasks/notes and of milestones."""

    def __init__(self, tx: RepoTx, watch: Watch) -> None:
        self.tx = tx
        self.watch = watch
        self._own: str | bool | None = False  # False = not looked up yet
        self._milestones: str | None = None

    async def own(self) -> str | None:
        if self._own is False:
            self._own = self.watch.project_id if await _project_exists(self.tx, self.watch.project_id) else None
        return self._own if isinstance(self._own, str) else None

    async def milestones(self) -> str:
        own = await self.own()
        if own is not None:
            return own
        if self._milestones is None:
            row = await self.tx.w.fetchone("SELECT auto_project_id FROM ingest_watches WHERE id = ?", (self.watch.id,))
            auto = row[0] if row else None
            if not await _project_exists(self.tx, auto):
                project = await self.tx.create("projects", {"name": self.watch.name})
                auto = project.id
                await set_auto_project(self.tx.w, self.watch.id, auto)
            assert auto is not None
            self._milestones = auto
        return self._milestones


_PROVENANCE_COLUMNS = (
    "source_path, fingerprint, entity, entity_id, content_sha256, span_start, span_end, line_start, line_end,"
    " extractor, extractor_version, watch_id, run_id, state, created_at, updated_at"
)
#: Rows per INSERT statement (16 parameters each; SQLite allows 32,766 per statement).
_BATCH = 500


def _row(source: Source, item: ExtractedItem, fp: str, entity: str, entity_id: str, state: str,
         now: int) -> tuple[object, ...]:
    span = item.span
    return (source.path, fp, entity, entity_id, source.sha256, span.start, span.end, span.line_start, span.line_end,
            source.extractor, source.extractor_version, source.watch.id, source.run_id, state, now, now)


async def _insert_rows(tx: RepoTx, rows: list[tuple[object, ...]]) -> None:
    for i in range(0, len(rows), _BATCH):
        batch = rows[i:i + _BATCH]
        values = ", ".join(["(" + ", ".join("?" * 16) + ")"] * len(batch))
        await tx.w.execute(f"INSERT INTO ingest_provenance ({_PROVENANCE_COLUMNS}) VALUES {values}",
                           [v for r in batch for v in r])


async def store_items(tx: RepoTx, source: Source, items: Sequence[ExtractedItem]) -> StoreResult:
    """Store ``items`` found in ``source`` that are new for it, with provenance, in ``tx``.

    Returns counts (see :class:`StoreResult`). An item the domain models refuse (e.g. a
    milestone date outside year 1970..9999) is left out and named in ``refused``; the rest are
    stored. Other errors propagate (and roll the caller's transaction back).
    """
    w = tx.w
    result = StoreResult(refused=[])
    # one query for both: this file's rows, and rows of other files with the same content
    rows_here_or_same = await w.fetchall(
        "SELECT source_path, fingerprint, entity, entity_id, state FROM ingest_provenance"
        " WHERE source_path = ? OR content_sha256 = ?",
        (source.path, source.sha256),
    )
    known = {r[1] for r in rows_here_or_same if r[0] == source.path}
    same_content: dict[str, tuple[str, str, str]] = {}
    if not known:
        others = [r for r in rows_here_or_same if r[0] != source.path]
        candidates = {r[0] for r in others}
        vanished: set[str] = set()
        if candidates:
            vanished = await asyncio.to_thread(lambda: {p for p in candidates if not source.exists(p)})
        for path in vanished:  # a rename we did not see as a move: follow it
            await relink(tx, path, source.path)
        if vanished:
            known = {r[0] for r in await w.fetchall(
                "SELECT fingerprint FROM ingest_provenance WHERE source_path = ?", (source.path,))}
        same_content = {r[1]: (r[2], r[3], r[4]) for r in others if r[0] not in vanished}
    if known:
        await mark_present(tx, source.path)
    now = clock.now_ms()
    rows: list[tuple[object, ...]] = []
    projects = _Projects(tx, source.watch)
    for item in items:
        fp = item.fingerprint()
        if fp in known:
            result.known += 1
            continue
        known.add(fp)
        if fp in same_content:  # a copy of a file already ingested: link, do not duplicate
            entity, entity_id, state = same_content[fp]
            rows.append(_row(source, item, fp, entity, entity_id, "rejected" if state == "rejected" else "active", now))
            result.linked += 1
            continue
        entity = ENTITY_OF_TYPE[item.type]
        try:
            if item.type == "timeline":
                if _epoch(item.date) is None:
                    raise ValidationFailed.field("date", f"date {item.date} is outside 1970..9999")
                project_id: str | None = await projects.milestones()
            else:
                project_id = await projects.own()
            row = await tx.create(entity, _body(item, project_id))
        except ValidationFailed as exc:
            # Validation happens before anything is written, so the transaction is intact.
            assert result.refused is not None
            result.refused.append(f"{item.type} {item.title[:80]!r} refused: {exc.message}")
            continue
        rows.append(_row(source, item, fp, entity, row.id, "active", now))
        result.created += 1
    await _insert_rows(tx, rows)
    return result


async def mark_missing(tx: RepoTx, paths: Sequence[str]) -> None:
    """The sources at ``paths`` were deleted: their active rows become ``missing`` (items stay)."""
    now = clock.now_ms()
    for path in paths:
        await tx.w.execute(
            "UPDATE ingest_provenance SET state = 'missing', updated_at = ? WHERE source_path = ? AND state = 'active'",
            (now, path),
        )


async def mark_present(tx: RepoTx, path: str) -> None:
    """The source at ``path`` is here (again): its rows marked ``missing`` become ``active``."""
    await tx.w.execute(
        "UPDATE ingest_provenance SET state = 'active', updated_at = ? WHERE source_path = ? AND state = 'missing'",
        (clock.now_ms(), path),
    )


async def relink(tx: RepoTx, src: str, dest: str) -> int:
    """Follow a move of a file or folder: rows of ``src`` (and below it) now name ``dest``.

    A row whose fingerprint ``dest`` already has stays behind and is marked ``missing``.
    Returns how many rows moved.
    """
    match, params = under("source_path", src)
    moved = await tx.w.execute(
        "UPDATE OR IGNORE ingest_provenance SET source_path = ? || substr(source_path, ?), updated_at = ?"
        f" WHERE {match}",
        (dest, len(src) + 1, clock.now_ms(), *params),
    )
    await tx.w.execute(
        f"UPDATE ingest_provenance SET state = 'missing' WHERE {match} AND state = 'active'", params
    )
    return moved

