"""The LanceDB chunk tables in ``DIR/lancedb`` (DESIGN §6).

One table per embedder (``chunks_<embedder slug>``, or ``chunks_keyword`` with none), each row a
chunk: ``id`` (``<doc id>#<n>``), ``doc_id``, ``kind``, ``entity_id``, ``project_id``, ``title``,
``text`` (empty for memories), ``start``/``end`` (character offsets into the source text),
``path`` (files), ``date`` and ``updated_at`` (Unix ms), ``text_hash`` (SHA-256 of the text
embedded), ``embedder`` and ``dim``, and ``vector`` (float32 × dim, unit length).

LanceDB's traps, handled here: each write makes a fragment, so :meth:`ChunkTable.maintain`
compacts (``optimize``) past a fragment threshold; new rows reach the full-text index only on
``optimize`` (they are still found, by a flat scan, meanwhile; :meth:`ChunkTable.stats` reports
them as unindexed); writers conflict, so only the indexer's one task calls the write methods;
every call blocks, so callers run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "keyword", "vector"]
#: compact once a table has this many fragments
FRAGMENT_THRESHOLD = 24
#: old table versions kept for readers still on them
KEEP_VERSIONS_FOR = timedelta(minutes=1)


def quote(value: str) -> str:
    """A SQL string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def _schema(dim: int | None) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("project_id", pa.string()),
        pa.field("title", pa.string()),
        pa.field("text", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("path", pa.string()),
        pa.field("date", pa.int64()),
        pa.field("updated_at", pa.int64()),
        pa.field("text_hash", pa.string()),
        pa.field("embedder", pa.string()),
        pa.field("dim", pa.int32()),
    ]
    if dim:
        fields.append(pa.field("vector", pa.list_(pa.float32(), dim)))
    return pa.schema(fields)


def _names(db: Any) -> set[str]:
    res = db.list_tables()
    return set(res.tables if hasattr(res, "tables") else res)


@dataclass
class TableStats:
    """What ``/v1/ready`` and ``sidecar doctor`` show about the active table."""

    name: str
    rows: int
    fragments: int
    unindexed_rows: int
    bytes: int


class ChunkTable:
    """One chunk table. Methods block (LanceDB's synchronous API)."""

    def __init__(self, db: Any, name: str, dim: int | None) -> None:
        self.name = name
        self.dim = dim
        if name in _names(db):
            self._t = db.open_table(name)
        else:
            self._t = db.create_table(name, schema=_schema(dim), exist_ok=True)
        self._fts = any(i.index_type == "FTS" for i in self._t.list_indices())
        self._writes_since_optimize = 0
        self._lock = threading.Lock()  # one writer, even if a caller forgets the rule

    # -- writes (the indexer's task only) -----------------------------------------------------

    def upsert(self, rows: list[dict[str, Any]], doc_ids: list[str]) -> None:
        """Make the table's chunks of ``doc_ids`` exactly ``rows`` in one commit: new and changed
        chunks are written, chunks of those documents not in ``rows`` are deleted."""
        import pyarrow as pa

        if not doc_ids:
            return
        in_docs = "doc_id IN (" + ", ".join(quote(d) for d in doc_ids) + ")"
        with self._lock:
            if not rows:
                self._t.delete(in_docs)
            else:
                data = pa.Table.from_pylist(rows, schema=self._t.schema)
                (self._t.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
                 .when_not_matched_by_source_delete(in_docs).execute(data))
            self._writes_since_optimize += 1
            if not self._fts and self._t.count_rows() > 0:
                self._create_fts()

    def _create_fts(self) -> None:
        from lancedb.index import FTS

        # English stemming and stop words; no positions (phrase queries are not offered).
        self._t.create_index("text", config=FTS(with_position=False, stem=True, remove_stop_words=True,
                                                ascii_folding=True), replace=True)
        self._fts = True

    def maintain(self, force: bool = False, keep: timedelta = KEEP_VERSIONS_FOR) -> bool:
        """Compact fragments, prune old versions and bring the FTS index up to date when the
        table needs it (or ``force``). Returns whether it ran."""
        with self._lock:
            if not force:
                if not self._writes_since_optimize:
                    return False
                stats = self._t.stats()
                frags = stats["fragment_stats"]["num_fragments"]
                if frags < FRAGMENT_THRESHOLD and self.unindexed_rows() == 0:
                    return False
            self._t.optimize(cleanup_older_than=keep)
            self._writes_since_optimize = 0
            return True

    # -- reads (any thread) -------------------------------------------------------------------

    def unindexed_rows(self) -> int:
        """Rows not yet in the full-text index (all rows until it exists)."""
        if not self._fts:
            return int(self._t.count_rows())
        idx = self._t.index_stats("text_idx")
        return int(idx.num_unindexed_rows) if idx is not None else int(self._t.count_rows())

    def stats(self) -> TableStats:
        s = self._t.stats()
        return TableStats(self.name, int(s["num_rows"]), int(s["fragment_stats"]["num_fragments"]),
                          self.unindexed_rows(), int(s["total_bytes"]))

    def vectors_of(self, doc_ids: list[str]) -> dict[str, np.ndarray]:
        """``text_hash → vector`` of the chunks stored for these documents (reused, not re-embedded)."""
        if not self.dim or not doc_ids:
            return {}
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(doc_ids), 200):
            where = "doc_id IN (" + ", ".join(quote(d) for d in doc_ids[i:i + 200]) + ")"
            tbl = self._t.search().where(where).select(["text_hash", "vector"]).limit(None).to_arrow()
            hashes = tbl.column("text_hash").to_pylist()
            vectors = tbl.column("vector").to_numpy(zero_copy_only=False)
            for h, v in zip(hashes, vectors, strict=True):
                out[h] = np.asarray(v, dtype=np.float32)
        return out

    def doc_ids(self) -> set[str]:
        tbl = self._t.search().select(["doc_id"]).limit(None).to_arrow()
        return set(tbl.column("doc_id").to_pylist())

    def query(self, mode: Mode, text: str | None, vector: np.ndarray | None, where: str | None,
              limit: int, min_similarity: float = 0.0) -> list[dict[str, Any]]:
        """Chunks best first, each with ``_score`` (higher is better).

        ``hybrid``: LanceDB's hybrid query — full-text (BM25) and vector (cosine) candidates fused
        by reciprocal rank (``RRFReranker``, k = 60); a candidate only the vector side found is
        kept when its cosine similarity is at least ``min_similarity`` (the vector side ranks every
        row, related or not). ``keyword``: full-text only. ``vector``: nearest neighbours with
        similarity ≥ ``min_similarity``; ``_score`` is the cosine similarity.
        """
        from lancedb.rerankers import RRFReranker

        cols = ["id", "doc_id", "kind", "entity_id", "project_id", "title", "text", "start", "end", "path",
                "date", "updated_at"]
        if mode == "hybrid":
            assert vector is not None and text
            q: Any = (self._t.search(query_type="hybrid").vector(vector.tolist()).text(text).distance_type("cosine")
                      .rerank(RRFReranker(return_score="all")))
            extra: list[str] = []
        elif mode == "vector":
            assert vector is not None
            q = self._t.search(vector.tolist(), query_type="vector").distance_type("cosine")
            extra = ["_distance"]
        else:
            assert text
            q = self._t.search(text, query_type="fts")
            extra = ["_score"]
        if where:
            q = q.where(where, prefilter=True)
        rows = q.select(cols + extra).limit(limit).to_list()
        out = []
        for r in rows:
            similarity = 1.0 - float(r["_distance"]) if r.get("_distance") is not None else None
            if mode == "hybrid":
                if r.get("_score") is None and (similarity is None or similarity < min_similarity):
                    continue
                r["_score"] = float(r["_relevance_score"])
            elif mode == "vector":
                if similarity is None or similarity < min_similarity:
                    continue
                r["_score"] = similarity
            else:
                r["_score"] = float(r.get("_score") or 0.0)
            out.append(r)
        return out


class LanceStore:
    """The LanceDB database folder and its tables."""

    def __init__(self, path: Path) -> None:
        # Lance's Rust logger writes plain text to stderr, where only JSON log lines may go.
        os.environ.setdefault("LANCEDB_LOG", "error")
        import lancedb

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = lancedb.connect(str(path))

    def table_names(self) -> set[str]:
        return _names(self._db)

    def open(self, name: str, dim: int | None) -> ChunkTable:
        """Open (creating if needed) a chunk table."""
        return ChunkTable(self._db, name, dim)

    def drop(self, name: str) -> None:
        """Remove a table (after a swap made it unused)."""
        if name in self.table_names():
            self._db.drop_table(name)

    def disk_bytes(self) -> int:
        """Bytes on disk under ``DIR/lancedb``."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
