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

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sidecar import heap
from sidecar.search.fusion import promote, weighted_rrf

if TYPE_CHECKING:  # numpy loads with the index, after the handshake
    import numpy as np


log = logging.getLogger(__name__)

Mode = Literal["hybrid", "keyword", "vector"]
#: compact once a table has this many fragments
FRAGMENT_THRESHOLD = 24
#: old table versions kept for readers still on them (queries take milliseconds)
KEEP_VERSIONS_FOR = timedelta(seconds=10)
#: new rows reach the full-text index at most this often (they are found by a flat scan meanwhile)
FTS_REFRESH_S = 5.0
#: LanceDB's caches are unbounded by default; a desktop service bounds them (bytes)
INDEX_CACHE_BYTES = 64 << 20
METADATA_CACHE_BYTES = 32 << 20
#: past this many rows the vector leg uses an IVF_SQ index instead of a flat scan (a flat scan of
#: 256-d float32 costs ≈ 1.3 ms per 1,000 rows here: 13 ms at 10,000, 130 ms at 100,000)
ANN_MIN_ROWS = 20_000
#: rows per IVF partition when the index is (re)built (100,000 rows → 32 partitions)
ANN_ROWS_PER_PARTITION = 3_000
#: the vector leg probes 1/ANN_PROBE_DIVISOR of the partitions and re-ranks ANN_REFINE × the
#: candidates by exact distance (measured at 100,000 rows: recall@10 vs the flat scan below)
ANN_PROBE_DIVISOR = 2
ANN_REFINE = 4


#: the columns a query returns
_COLS = ("id", "doc_id", "kind", "entity_id", "project_id", "title", "text", "start", "end", "path", "date",
         "updated_at")


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


#: seconds a swap waits for the queries still reading the old table before dropping it
RETIRE_WAIT_S = 30.0


class TableRetired(Exception):
    """The table was retired (a swap replaced it and drops it) before this query could start;
    the caller asks the table that is active now."""


class ChunkTable:
    """One chunk table. Methods block (LanceDB's synchronous API).

    Queries run in threads while the indexer writes, and a swap drops the table it replaced:
    :meth:`retire` refuses new queries (:class:`TableRetired`) and waits for those reading, so a
    drop never pulls the data files from under a query (LanceDB: "Not found: …/data/….lance").
    """

    def __init__(self, db: Any, name: str, dim: int | None) -> None:
        self.name = name
        self.dim = dim
        if name in _names(db):
            self._t = db.open_table(name)
        else:
            self._t = db.create_table(name, schema=_schema(dim), exist_ok=True)
        indices = self._t.list_indices()
        self._fts = any(i.index_type == "FTS" for i in indices)
        self._kind_idx = any(list(i.columns) == ["kind"] for i in indices)
        #: IVF partitions of the vector index (0: none, vectors are scanned flat)
        self._ann_partitions = 0
        #: rows when the vector index was trained (it is retrained once the table doubles)
        self._ann_rows = 0
        if dim and any(i.name == "vector_idx" for i in indices):
            self._ann_rows = int(self._t.count_rows())
            self._ann_partitions = max(2, self._ann_rows // ANN_ROWS_PER_PARTITION)
        self._writes_since_optimize = 0
        self._last_optimize = 0.0
        self._lock = threading.Lock()  # one writer, even if a caller forgets the rule
        self._readers = 0
        self._retired = False
        self._no_readers = threading.Condition()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with self._no_readers:
            if self._retired:
                raise TableRetired(self.name)
            self._readers += 1
        try:
            yield
        finally:
            with self._no_readers:
                self._readers -= 1
                self._no_readers.notify_all()

    def retire(self, timeout_s: float = RETIRE_WAIT_S) -> bool:
        """Refuse new queries from now on and wait (blocking, at most ``timeout_s`` seconds) until
        the queries reading the table have finished. Returns False if some still read."""
        with self._no_readers:
            self._retired = True
            return self._no_readers.wait_for(lambda: self._readers == 0, timeout_s)

    # -- writes (the indexer's task only) -----------------------------------------------------

    def upsert(self, rows: list[dict[str, Any]], doc_ids: list[str], *, fresh: bool = False) -> None:
        """Make the table's chunks of ``doc_ids`` exactly ``rows`` in one commit: new and changed
        chunks are written, chunks of those documents not in ``rows`` are deleted. ``fresh``:
        the table holds none of these documents yet (a rebuild), so a plain append does."""
        import pyarrow as pa

        if not doc_ids:
            return
        in_docs = "doc_id IN (" + ", ".join(quote(d) for d in doc_ids) + ")"
        with self._lock:
            if fresh:
                if rows:
                    self._t.add(pa.Table.from_pylist(rows, schema=self._t.schema))
            elif not rows:
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
        self._create_kind_index()

    def _create_kind_index(self) -> None:
        # a bitmap index on ``kind``: every vector query filters on it (``kind != 'memory'``)
        from lancedb.index import Bitmap

        self._t.create_index("kind", config=Bitmap(), replace=True)
        self._kind_idx = True

    def maintain(self, force: bool = False, keep: timedelta = KEEP_VERSIONS_FOR) -> bool:
        """Compact fragments, prune old versions and bring the FTS index up to date when the
        table needs it (or ``force``). Returns whether it ran."""
        with self._lock:
            if not force:
                if not self._writes_since_optimize:
                    return False
                stats = self._t.stats()
                frags = stats["fragment_stats"]["num_fragments"]
                stale = self.unindexed_rows() > 0 and time.monotonic() - self._last_optimize >= FTS_REFRESH_S
                if frags < FRAGMENT_THRESHOLD and not stale:
                    return False
            self._t.optimize(cleanup_older_than=keep)
            self._writes_since_optimize = 0
            self._last_optimize = time.monotonic()
            if self._fts and not self._kind_idx:  # a table made before the bitmap index existed
                self._create_kind_index()
            self._train_ann()
        heap.trim_native_heap()  # the compaction's freed native memory (≈ 35 MB measured)
        return True

    def _train_ann(self) -> None:
        """Build the vector index once the table is past :data:`ANN_MIN_ROWS`, and rebuild it
        when the table has doubled since (``optimize`` adds new rows to the existing partitions,
        which drift as the data grows). IVF_SQ: k-means partitions over int8-quantised vectors;
        100,000 rows take ≈ 9 s on this 2-core machine (IVF_PQ took 215 s, IVF_HNSW_SQ 177 s)."""
        if not self.dim:
            return
        rows = int(self._t.count_rows())
        if rows < ANN_MIN_ROWS or (self._ann_partitions and rows < 2 * self._ann_rows):
            return
        from lancedb.index import IvfSq

        partitions = max(2, rows // ANN_ROWS_PER_PARTITION)
        self._t.create_index("vector", config=IvfSq(distance_type="cosine", num_partitions=partitions,
                                                    max_iterations=20), replace=True)
        self._ann_partitions, self._ann_rows = partitions, rows
        log.info("vector index built", extra={"table": self.name, "rows": rows, "partitions": partitions})

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
        import numpy as np

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
              limit: int, min_similarity: float = 0.0, vector_weight: float = 1.0,
              text_where: str | None = None, vector_slot: int = 0) -> list[dict[str, Any]]:
        """Chunks best first, each with ``_score`` (higher is better).

        ``hybrid``: a full-text (BM25) leg and a vector (cosine) leg, each ``limit`` long, run
        side by side and fused by :func:`weighted_rrf` (reciprocal rank, k = 60, the vector
        leg's ranks weighted by ``vector_weight``); with ``vector_slot`` = n > 0, the vector
        leg's best document is then moved up to be at worst the n-th document
        (:func:`promote`), so a weakly weighted vector leg still shows its best match on the
        first page when keyword search missed it. ``keyword``: the full-text leg only.
        ``vector``: the vector leg only; ``_score`` is the cosine similarity. The vector leg
        keeps only chunks with cosine similarity ≥ ``min_similarity`` (it ranks every row,
        related or not). ``where`` filters both legs; ``text_where`` (default ``where``)
        replaces it for the full-text leg, for filters that cannot match there (memory rows have
        no text, so ``kind != 'memory'`` only costs the full-text leg time).

        The legs are run here rather than as LanceDB's hybrid query because (measured at 100,000
        chunks) its one filter for both legs doubles the full-text leg (8 → 17 ms p50), it starts
        two threads per query, and its ``RRFReranker`` weighs both legs equally, which lets the
        bundled embedder drag good keyword ranks down (``tests/search/quality.py``).

        Past :data:`ANN_MIN_ROWS` rows the vector leg uses the table's IVF_SQ index
        (:meth:`maintain` builds it); rows added since it was built are scanned flat.

        Raises:
            TableRetired: a swap retired the table before the query started.
        """
        with self._reading():
            return self._query(mode, text, vector, where, limit, min_similarity, vector_weight, text_where, vector_slot)

    def _query(self, mode: Mode, text: str | None, vector: np.ndarray | None, where: str | None,
               limit: int, min_similarity: float, vector_weight: float,
               text_where: str | None, vector_slot: int) -> list[dict[str, Any]]:
        if text is not None:
            # A double quote makes LanceDB parse a phrase query, which needs positions this index
            # does not store: the user's quotes are just text here.
            text = text.replace('"', " ").strip() or None
            if text is None and mode != "vector":
                return []
        tw = where if text_where is None else (text_where or None)
        if mode == "keyword":
            assert text
            return self._fts_leg(text, tw, limit)
        assert vector is not None
        if mode == "vector":
            return self._vector_leg(vector, where, limit, min_similarity)
        assert text
        other = _pool().submit(self._vector_leg, vector, where, limit, min_similarity)
        fts = self._fts_leg(text, tw, limit)
        vec = other.result()
        fused = weighted_rrf(fts, vec, vector_weight)
        if vector_slot > 0 and vec:
            fused = promote(fused, vec[0]["doc_id"], vector_slot)
        return fused[:limit]

    def _fts_leg(self, text: str, where: str | None, limit: int) -> list[dict[str, Any]]:
        q = self._t.search(text, query_type="fts")
        if where:
            q = q.where(where, prefilter=True)
        rows: list[dict[str, Any]] = q.select([*_COLS, "_score"]).limit(limit).to_list()
        for r in rows:
            r["_score"] = float(r.get("_score") or 0.0)
        return rows

    def _vector_leg(self, vector: np.ndarray, where: str | None, limit: int,
                    min_similarity: float) -> list[dict[str, Any]]:
        # cosine distance = 1 - similarity; LanceDB keeps distances in [lower, upper)
        q = (self._t.search(vector.tolist(), query_type="vector").distance_type("cosine")
             .distance_range(upper_bound=1.0 - min_similarity + 1e-6))
        if self._ann_partitions:
            q = q.nprobes(max(1, self._ann_partitions // ANN_PROBE_DIVISOR)).refine_factor(ANN_REFINE)
        if where:
            q = q.where(where, prefilter=True)
        rows: list[dict[str, Any]] = q.select([*_COLS, "_distance"]).limit(limit).to_list()
        for r in rows:
            r["_score"] = 1.0 - float(r["_distance"])
        return rows


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One thread for the vector leg of hybrid queries (the caller's thread runs the other)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="search-leg")
    return _POOL


class LanceStore:
    """The LanceDB database folder and its tables."""

    def __init__(self, path: Path) -> None:
        # Lance's Rust logger writes plain text to stderr, where only JSON log lines may go.
        os.environ.setdefault("LANCEDB_LOG", "error")
        # Each LanceDB worker thread would get a malloc arena of its own (up to 8 × cores), and the
        # freed memory of its writes stays there: 3,000 notes indexed and updated 3,000 times
        # added 466 MB of RSS uncapped, 374 MB with 2 arenas.
        heap.bound_native_heap(2)
        from sidecar.background import loading_libraries

        with loading_libraries():  # the import is a million objects: no GC pauses on the loop meanwhile
            import lancedb

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        session = lancedb.Session(index_cache_size_bytes=INDEX_CACHE_BYTES,
                                  metadata_cache_size_bytes=METADATA_CACHE_BYTES)
        self._db = lancedb.connect(str(path), session=session)

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
