"""The index's one writer: feeds LanceDB from the change log (and the files feed), in one task.

Every committed change wakes the writer (:meth:`Indexer.wake`, a store commit listener); it
waits for the burst to end (``debounce_ms`` without a change, a trailing debounce, but never
more than ``max_delay_ms`` after the first change) and for the foreground to be quiet (no agent
run in progress, at most ``defer_max_ms``), then takes the entries after its cursor in
batches (``batch`` entries), re-reads the rows they touched, chunks them, embeds only chunks
whose text changed (vectors of unchanged chunks are reused by text hash), and writes each batch
to LanceDB in one ``merge_insert`` (new and changed chunks in, the touched documents' other
chunks out). Only after LanceDB has committed does it advance the cursor in SQLite
(``search_cursors``), so a crash in between replays the batch (idempotent) and a restart resumes
where it stopped.

A :class:`Target` is a table being fed. There is the *active* one (what searches read) and,
while the embedder changes or ``sidecar reindex`` runs, a *building* one, filled from every
current row (a rebuild) and then from the change log like the active one; once it has caught
up, :meth:`Indexer.swap` makes it active in one SQLite write, and the old table is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sidecar import clock
from sidecar.background import ForegroundWork
from sidecar.search.chunking import chunk_text
from sidecar.search.documents import (
    ENTITY_KINDS,
    SEARCH_KINDS,
    SourceDoc,
    all_entity_ids,
    file_doc,
    load_entities,
)
from sidecar.search.embedders import Embedder
from sidecar.search.index import ChunkTable, LanceStore
from sidecar.store.db import Store

if TYPE_CHECKING:  # numpy loads with the index, after the handshake
    import numpy as np

log = logging.getLogger(__name__)

#: How long the foreground must have been quiet (no agent run) before a batch is indexed (s).
QUIET_SETTLE_S = 0.25

#: loads memory documents by id (decrypting them); missing ids are gone
MemoryLoader = Callable[[list[str]], Awaitable[dict[str, SourceDoc]]]
Publish = Callable[[str, dict[str, Any]], None]


@dataclass
class Target:
    """A chunk table fed by the writer, with its cursors."""

    table: ChunkTable
    embedder: Embedder | None
    seq: int = 0
    files_version: int = 0
    #: while rebuilding: documents still to index, and the cursors to take when done
    todo: list[tuple[str, str]] | None = None
    rebuild_seq: int = 0
    rebuild_files_version: int = 0
    done_total: int = 0
    total: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.table.name


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Indexer:
    """The writer task and the targets it feeds. See the module docstring."""

    def __init__(self, store: Store, lance: LanceStore, load_memories: MemoryLoader, *,
                 publish: Publish | None = None, debounce_ms: int = 50, max_delay_ms: int = 1000,
                 foreground: ForegroundWork | None = None, defer_max_ms: int = 10_000,
                 batch: int = 500) -> None:
        """``foreground``: agent runs in progress; each batch waits until none has been for
        :data:`QUIET_SETTLE_S`, at most ``defer_max_ms`` (so search lags a long run by that much)."""
        self.store = store
        self.lance = lance
        self.load_memories = load_memories
        self.publish = publish
        self.debounce_ms = debounce_ms
        self.max_delay_ms = max_delay_ms
        self.foreground = foreground
        self.defer_max_ms = defer_max_ms
        self.batch = batch
        self.active: Target | None = None
        self.building: Target | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._on_swap: list[Callable[[Target], None]] = []
        self.error: str | None = None

    # -- cursors ------------------------------------------------------------------------------

    async def cursor(self, name: str) -> tuple[int, int] | None:
        row = await self.store.fetchone("SELECT seq, files_version FROM search_cursors WHERE name = ?", (name,))
        return (int(row[0]), int(row[1])) if row else None

    async def active_name(self) -> str | None:
        row = await self.store.fetchone("SELECT table_name FROM search_cursors WHERE name = 'active'")
        return str(row[0]) if row and row[0] else None

    async def _save_cursor(self, t: Target, *, activate: bool = False) -> None:
        now = clock.now_ms()
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO search_cursors (name, seq, files_version, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, files_version = excluded.files_version,"
                " updated_at = excluded.updated_at", (t.name, t.seq, t.files_version, now))
            if activate:
                await w.execute(
                    "INSERT INTO search_cursors (name, table_name, updated_at) VALUES ('active', ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET table_name = excluded.table_name,"
                    " updated_at = excluded.updated_at", (t.name, now))

    async def _forget_cursor(self, name: str) -> None:
        async with self.store.write() as w:
            await w.execute("DELETE FROM search_cursors WHERE name = ?", (name,))

    # -- targets ------------------------------------------------------------------------------

    async def open_target(self, name: str, embedder: Embedder | None) -> Target:
        """Open a table and resume it from its cursor; one without a cursor (new, or a rebuild
        that was interrupted) is emptied and rebuilt from every current row."""
        dim = embedder.dim if embedder else None
        cur = await self.cursor(name)
        if cur is None:
            await asyncio.to_thread(self.lance.drop, name)
        table = await asyncio.to_thread(self.lance.open, name, dim)
        t = Target(table, embedder)
        if cur is None:
            await self._plan_rebuild(t)
        else:
            t.seq, t.files_version = cur
            t.ready.set()
        return t

    async def _plan_rebuild(self, t: Target) -> None:
        t.rebuild_seq = await self.store.last_seq()
        row = await self.store.fetchone("SELECT coalesce(max(version), 0) FROM search_files")
        t.rebuild_files_version = int(row[0]) if row else 0
        todo: list[tuple[str, str]] = []
        for kind in SEARCH_KINDS:
            if kind != "file":
                todo += [(kind, i) for i in await all_entity_ids(self.store, kind)]
        todo += [("file", r[0]) for r in await self.store.fetchall("SELECT file_id FROM search_files"
                                                                    " WHERE text IS NOT NULL")]
        todo += [("memory", r[0]) for r in await self.store.fetchall("SELECT id FROM memories")]
        t.todo, t.total, t.done_total = todo, len(todo), 0

    def set_active(self, t: Target) -> None:
        self.active = t
        self.wake()

    def start_building(self, t: Target) -> None:
        self.building = t
        self.wake()

    def on_swap(self, fn: Callable[[Target], None]) -> None:
        self._on_swap.append(fn)

    # -- the task -----------------------------------------------------------------------------

    def wake(self, *_: Any) -> None:
        """Something changed (a store commit listener, or a file hook): index soon."""
        self._idle.clear()
        self._wake.set()

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until every target has caught up (tests, the CLI)."""
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                if not self._wake.is_set():
                    return
                await asyncio.sleep(0.01)

    async def run(self) -> None:
        """The writer loop (one task for the app's lifetime)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            if self._wake.is_set() and self.debounce_ms:
                await self._burst_end()
            await self._foreground_quiet()
            self._wake.clear()
            try:
                more = await self._step()
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("indexing failed; retrying")
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                await asyncio.sleep(2.0)
                more = True
            if more:
                self._wake.set()
            else:
                await self._maintain()
                if not self._wake.is_set():
                    self._idle.set()

    async def _burst_end(self) -> None:
        """Return once no change has come for ``debounce_ms``, or ``max_delay_ms`` after the
        call. Why trailing: an agent run's tool calls commit every few ms, and indexing
        (embedding, a LanceDB write) in the middle of them took the CPU they were waiting for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_ms / 1000
        while True:
            self._wake.clear()
            await asyncio.sleep(min(self.debounce_ms / 1000, max(0.0, deadline - loop.time())))
            if not self._wake.is_set() or loop.time() >= deadline:
                return

    async def _foreground_quiet(self) -> None:
        """Wait until no agent run has been in progress for :data:`QUIET_SETTLE_S`, at most
        ``defer_max_ms``. Why: a run's tool calls wait for the CPU, and embedding and LanceDB
        writes (~0.1 s a batch on 2 cores) ran between them, batch after batch, as the run's own
        changes came in; and a batch begun the moment a run ended slowed the start of the next
        run, posted right after (back-to-back runs: RUN_STARTED 6 → 16 ms median)."""
        if self.foreground is not None:
            await self.foreground.settled(QUIET_SETTLE_S, self.defer_max_ms / 1000)

    async def _step(self) -> bool:
        """One batch for each target; True when there is more to do."""
        more = False
        for t in (self.active, self.building):
            if t is None:
                continue
            if t.todo is not None:
                more |= await self._rebuild_batch(t)
            else:
                more |= await self._feed_batch(t)
        b = self.building
        if b is not None and b.todo is None and not more:
            await self.swap(b)
        return more

    async def _maintain(self) -> None:
        for t in (self.active, self.building):
            if t is not None:
                await asyncio.to_thread(t.table.maintain)

    async def swap(self, t: Target) -> None:
        """Make the caught-up building table the active one (one SQLite write); drop the old."""
        old = self.active
        await self._save_cursor(t, activate=True)
        self.active = t  # searches read the new table from here on
        if old is not None and old.name != t.name:
            await self._forget_cursor(old.name)
            # searches that took the old table before the switch finish on it first
            if not await asyncio.to_thread(old.table.retire):
                log.warning("queries still read the replaced search table; dropping it anyway",
                            extra={"table": old.name})
            await asyncio.to_thread(self.lance.drop, old.name)
        self.building = None  # only now: "changing" ends once the old table is gone
        for fn in self._on_swap:
            fn(t)
        self._progress(t, swapped=True)
        log.info("search index swapped", extra={"table": t.name})

    # -- batches ------------------------------------------------------------------------------

    async def _rebuild_batch(self, t: Target) -> bool:
        assert t.todo is not None
        part, t.todo = t.todo[:self.batch], t.todo[self.batch:]
        await self._index(t, part, fresh=True)
        t.done_total += len(part)
        if not t.todo:
            t.todo = None
            t.seq, t.files_version = t.rebuild_seq, t.rebuild_files_version
            await self._save_cursor(t, activate=self.active is t)
            t.ready.set()
        self._progress(t)
        return True

    async def _feed_batch(self, t: Target) -> bool:
        changes = await self.store.changes_after(t.seq, self.batch)
        files = await self.store.fetchall(
            "SELECT file_id, version FROM search_files WHERE version > ? ORDER BY version LIMIT ?",
            (t.files_version, self.batch))
        if not changes and not files:
            return False
        touched: dict[tuple[str, str], None] = {}
        for c in changes:
            kind = ENTITY_KINDS.get(c.entity)
            if kind is not None:
                touched[(kind, c.entity_id)] = None
        for r in files:
            touched[("file", r[0])] = None
        await self._index(t, list(touched))
        if changes:
            t.seq = changes[-1].seq
        if files:
            t.files_version = int(files[-1][1])
        await self._save_cursor(t)
        self._progress(t)
        return len(changes) == self.batch or len(files) == self.batch

    async def _load(self, keys: list[tuple[str, str]]) -> tuple[list[str], list[SourceDoc]]:
        by_kind: dict[str, list[str]] = {}
        for kind, eid in keys:
            by_kind.setdefault(kind, []).append(eid)
        docs: list[SourceDoc] = []
        for kind, ids in by_kind.items():
            if kind == "memory":
                docs += (await self.load_memories(ids)).values()
            elif kind == "file":
                for i in range(0, len(ids), 500):
                    part = ids[i:i + 500]
                    rows = await self.store.fetchall(
                        f"SELECT * FROM search_files WHERE file_id IN ({', '.join('?' * len(part))})", part)
                    docs += [d for d in (file_doc(r) for r in rows) if d is not None]
            else:
                docs += (await load_entities(self.store, kind, ids)).values()
        return [f"{k}:{i}" for k, i in keys], docs

    async def _index(self, t: Target, keys: list[tuple[str, str]], fresh: bool = False) -> None:
        doc_ids, docs = await self._load(keys)
        rows: list[dict[str, Any]] = []
        texts: list[str] = []
        for d in docs:
            if d.kind == "memory":
                pieces = [(0, 0, "", d.embed_text or "")]
            else:
                pieces = [(c.start, c.end, c.text, c.text) for c in chunk_text(d.text)]
            for n, (start, end, text, embed) in enumerate(pieces):
                rows.append({
                    "id": f"{d.doc_id}#{n}", "doc_id": d.doc_id, "kind": d.kind, "entity_id": d.entity_id,
                    "project_id": d.project_id, "title": d.title, "text": text, "start": start, "end": end,
                    "path": d.path, "date": d.date, "updated_at": d.updated_at, "text_hash": _hash(embed),
                    "embedder": t.embedder.id if t.embedder else None, "dim": t.embedder.dim if t.embedder else None,
                })
                texts.append(embed)
        if t.embedder is not None and rows:
            known = {} if fresh else await asyncio.to_thread(t.table.vectors_of, [d.doc_id for d in docs])
            missing = [i for i, r in enumerate(rows) if r["text_hash"] not in known]
            new: dict[str, np.ndarray] = {}
            if missing:
                vectors = await t.embedder.embed([texts[i] for i in missing])
                new = {rows[i]["text_hash"]: vectors[j] for j, i in enumerate(missing)}
            for r in rows:
                v = known.get(r["text_hash"])
                r["vector"] = (v if v is not None else new[r["text_hash"]]).tolist()
        await asyncio.to_thread(t.table.upsert, rows, doc_ids, fresh=fresh)

    def _progress(self, t: Target, swapped: bool = False) -> None:
        if self.publish is None:
            return
        data: dict[str, Any] = {"table": t.name, "seq": t.seq, "building": t is self.building,
                                "done": t.done_total, "total": t.total, "swapped": swapped}
        try:
            self.publish("index.progress", data)
        except Exception:
            log.exception("index progress listener failed")
