"""The text of watched files for the index: a hook the ingest pipeline calls with the document
it has already parsed, inside the transaction that records the file's outcome.

``search_files`` keeps the reader's text per path (offsets of chunks index into it) and a
``version`` that grows with every change: the files feed the indexer follows with its own
cursor, next to the change log's. A file that is gone leaves a tombstone (``text`` NULL), so
the indexer removes its chunks.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sidecar import clock
from sidecar.store.db import Writer

if TYPE_CHECKING:
    from sidecar.search.service import SearchService

#: files longer than this (characters of text) are indexed up to here
MAX_FILE_TEXT = 2_000_000


def file_id(path: str) -> str:
    """A stable entity id for a file path (the API's ``entityId`` of ``kind = file``)."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:32]


async def _next_version(w: Writer) -> int:
    row = await w.fetchone("SELECT coalesce(max(version), 0) + 1 FROM search_files")
    return int(row[0]) if row else 1


class FileTextSink:
    """``Pipeline.document_sinks`` entry: keeps ``search_files`` in step with ingest."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    async def document(self, w: Writer, path: str, watch_id: str, sha256: str, doc: Any) -> None:
        """A file was read (``doc``: :class:`sidecar.ingest.items.Document`)."""
        row = await w.fetchone("SELECT sha256 FROM search_files WHERE path = ? AND text IS NOT NULL", (path,))
        if row is not None and row[0] == sha256:
            return
        text = (doc.text or "")[:MAX_FILE_TEXT]
        await w.execute(
            "INSERT INTO search_files (path, file_id, watch_id, sha256, title, text, doc_date, version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET watch_id = excluded.watch_id,"
            " sha256 = excluded.sha256, title = excluded.title, text = excluded.text, doc_date = excluded.doc_date,"
            " version = excluded.version, updated_at = excluded.updated_at",
            (path, file_id(path), watch_id, sha256, doc.title, text, doc.doc_date_ms, await _next_version(w),
             clock.now_ms()))
        self._wake()

    async def gone(self, w: Writer, paths: list[str]) -> None:
        """Files were deleted (or left the watch): tombstones, so their chunks go."""
        version = await _next_version(w)
        for i, path in enumerate(paths):
            await w.execute("UPDATE search_files SET text = NULL, sha256 = NULL, version = ?, updated_at = ?"
                            " WHERE path = ? AND text IS NOT NULL", (version + i, clock.now_ms(), path))
        self._wake()

    def _wake(self) -> None:
        if self.service.indexer is not None:
            # after the commit: the indexer reads committed rows only
            self.service.indexer.wake()
