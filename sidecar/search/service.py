"""Search and memory inside ``sidecar serve``: wiring into the app, the query path, embedder
changes and readiness (DESIGN §6).

:func:`setup` adds :func:`search_ctx` (a ``cleanup_ctx`` after the store's), the search,
embedder and memory routes, and the commit listener that wakes the indexer. After the handshake
(:func:`sidecar.background.after_handshake`) only memory unlocks and SQLite is asked whether the
index has work (:meth:`SearchService.begin`). Everything heavy — importing LanceDB and pyarrow,
loading the embedder, catching up with the change log — happens on the first search (which
waits for it), the first change to an indexed entity or watched file, an embedder change, or at
start-up when the cursor is behind (:meth:`SearchService.kick`). Until then ``/v1/ready`` shows
``vectors: ok`` "idle: the index is not loaded …"; while loading, ``vectors: starting``.

``/v1/ready`` component ``vectors``: ``ok`` (hybrid search; embedder, rows, fragments,
unindexed rows), ``degraded`` (keyword-only, with the reason: no embedder configured, it
failed to load or is unreachable, or the index is rebuilding for another embedder), and a
``memory`` component: ``ok`` or ``degraded`` with why memory is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from sidecar.appstate import AGENT, INGEST, NOTIFICATIONS, READINESS, SEARCH, SECRETS, SETTINGS, STORE
from sidecar.background import after_handshake
from sidecar.errors import Unavailable
from sidecar.search.documents import ENTITY_KINDS, SEARCH_KINDS
from sidecar.search.embedders import (
    EMBEDDER_SETTING_KEY,
    Embedder,
    EmbedderSettings,
    EmbedderUnavailable,
    embedder_id,
    load_embedder,
    table_slug,
)
from sidecar.search.index import LanceStore, Mode, TableRetired
from sidecar.search.indexer import Indexer, Target
from sidecar.search.memory import Memory
from sidecar.search.query import nearest_memories, search_table, where
from sidecar.store.db import Store

log = logging.getLogger(__name__)

#: a search whose table was swapped out before its query ran starts again this many times in all
SWAP_RETRIES = 3

R = TypeVar("R")

IDLE_DETAIL = ("idle: the index is not loaded (LanceDB and the embedder load on the first search or the first "
               "change to index)")


class SearchService:
    """The index, the embedder, memory and the query path for one app."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.store: Store = app[STORE]
        self.lance: LanceStore | None = None
        self.indexer: Indexer | None = None
        self.memory = Memory(self.store, app[SECRETS])
        self.embedder: Embedder | None = None
        self.embedder_problem: str | None = "the index starts after the handshake"
        self.settings = EmbedderSettings()
        self._task: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        self._change: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._unlocked: bool | None = None
        self.memory.nearest = self._nearest_memories

    # -- lifecycle ----------------------------------------------------------------------------

    async def begin(self) -> None:
        """After the handshake: unlock memory, and load the index only if there is work — the
        change log or the files feed is ahead of the active table's cursor, or the embedder
        setting names another table. Otherwise nothing heavy (LanceDB, pyarrow, numpy, the
        embedder) is imported until the first search or the first change to index
        (:meth:`kick`); ``/v1/ready`` says ``vectors: ok`` with "idle, not loaded"."""
        await self._unlock()
        self.settings = await self._load_settings()
        if await self._behind():
            self.kick()
        elif self._loading is None:
            self.app[READINESS].set("vectors", "ok", IDLE_DETAIL)

    async def _unlock(self) -> None:
        if self._unlocked is None:
            self._unlocked = await self.memory.unlock()
            self.app[READINESS].set("memory", "ok" if self._unlocked else "degraded", self.memory.reason)

    async def _behind(self) -> bool:
        """Whether the index has work to do (read from SQLite only)."""
        rows = await self.store.fetchall("SELECT name, table_name, seq, files_version FROM search_cursors")
        active = next((r[1] for r in rows if r[0] == "active" and r[1]), None)
        cursors = {str(r[0]): (int(r[2]), int(r[3])) for r in rows if r[0] != "active"}
        if active is not None:
            if set(cursors) - {active} or active not in cursors:
                return True  # an embedder change or a rebuild was under way
            if active.removesuffix("_r") != table_slug(embedder_id(self.settings)):
                return True  # the embedder setting names another table
        seq, files_version = cursors.get(active, (0, 0)) if active else (0, 0)
        kinds = ", ".join(f"'{e}'" for e in ENTITY_KINDS)
        change = await self.store.fetchone(
            f"SELECT 1 FROM change_log WHERE seq > ? AND entity IN ({kinds}) LIMIT 1", (seq,))
        newer_file = await self.store.fetchone("SELECT 1 FROM search_files WHERE version > ? LIMIT 1",
                                               (files_version,))
        return change is not None or newer_file is not None

    @property
    def loaded(self) -> bool:
        """LanceDB and the embedder are loaded and the index is being served."""
        return self.indexer is not None and self.indexer.active is not None

    def kick(self) -> None:
        """Start loading the index in the background (once); a no-op when loaded or loading."""
        if self._loading is None:
            self.app[READINESS].set("vectors", "starting", "loading the search index")
            self._loading = asyncio.get_running_loop().create_task(self.start(), name="search-load")
            self._loading.add_done_callback(self._load_done)

    def _load_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("search index failed to load", exc_info=task.exception())
            self.app[READINESS].set("vectors", "degraded", f"the index failed to load: {task.exception()}")

    async def ensure_loaded(self) -> None:
        """Load the index now if it is not loaded (a search asked for it).

        Raises:
            Unavailable: loading failed (code ``search_starting``; ``/v1/ready`` says why).
        """
        if self.loaded:
            return
        self.kick()
        assert self._loading is not None
        try:
            await asyncio.shield(self._loading)
        except asyncio.CancelledError:
            raise
        except Exception:
            raise Unavailable("the search index failed to load", code="search_starting") from None

    def wake(self, *_: Any) -> None:
        """New data to index (a commit, a watched file's text): wake the writer, or load."""
        if self.indexer is not None:
            self.indexer.wake()
        else:
            self.kick()

    def on_commit(self, entries: list[Any]) -> None:
        """Store commit listener: changes to indexed entities wake (or load) the index."""
        if self.indexer is not None:
            self.indexer.wake()
        elif any(e.entity in ENTITY_KINDS for e in entries):
            self.kick()

    async def start(self) -> None:
        """Open LanceDB, load the embedder, resume or build the index, unlock memory (blocking
        work in threads). :meth:`begin` calls it when there is work; the CLI calls it directly."""
        if self.indexer is not None:
            return
        await self._unlock()
        unlocked = bool(self._unlocked)
        self.lance = await asyncio.to_thread(LanceStore, self.app[SETTINGS].data_dir / "lancedb")
        publish = self.app[NOTIFICATIONS].publish
        indexer = Indexer(self.store, self.lance, self.memory.load_docs, publish=publish,
                          foreground=self.app[AGENT].foreground if AGENT in self.app else None)
        indexer.on_swap(self._swapped)
        self.settings = await self._load_settings()
        self.embedder = await self._try_load(self.settings)
        desired = table_slug(self.embedder.id if self.embedder else None)
        self.indexer = indexer
        active_name = await self.indexer.active_name()
        if active_name in (desired, desired + "_r"):  # "_r": rebuilt by `sidecar reindex`
            desired = active_name
        if active_name is None or active_name == desired:
            target = await self.indexer.open_target(desired, self.embedder)
            if active_name is None:
                await self._mark_active(desired)
            self.indexer.set_active(target)
        else:  # an embedder change was under way: serve the old table by keyword, rebuild the new
            old = await self.indexer.open_target(active_name, None)
            self.indexer.set_active(old)
            self.indexer.start_building(await self.indexer.open_target(desired, self.embedder))
        self._task = asyncio.get_running_loop().create_task(self.indexer.run(), name="search-indexer")
        self._task.add_done_callback(self._writer_done)
        self.refresh_readiness()
        if unlocked:
            with contextlib.suppress(Exception):
                await self.memory.derive_patterns()

    def _swapped(self, t: Target) -> None:
        self.embedder = t.embedder
        self.refresh_readiness()

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("search indexer stopped", exc_info=task.exception())
            self.app[READINESS].set("vectors", "degraded", f"the indexer stopped: {task.exception()}")

    async def _mark_active(self, name: str) -> None:
        async with self.store.write() as w:
            await w.execute("INSERT INTO search_cursors (name, table_name, updated_at) VALUES ('active', ?, 0)"
                            " ON CONFLICT(name) DO UPDATE SET table_name = excluded.table_name", (name,))

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loading
        if self._change is not None:
            self._change.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._change
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _load_settings(self) -> EmbedderSettings:
        import json

        row = await self.store.fetchone("SELECT value FROM settings WHERE key = ?", (EMBEDDER_SETTING_KEY,))
        if row is None:
            return EmbedderSettings()
        try:
            return EmbedderSettings.model_validate(json.loads(row[0]))
        except ValueError:
            return EmbedderSettings()

    async def _try_load(self, settings: EmbedderSettings) -> Embedder | None:
        try:
            api_key = await self.app[SECRETS].get(settings.api_key_secret) if settings.api_key_secret else None
            embedder = await load_embedder(settings, api_key)
        except EmbedderUnavailable as exc:
            self.embedder_problem = f"embedder unavailable: {exc.reason}; keyword search only"
            log.warning("embedder unavailable", extra={"reason": exc.reason})
            return None
        self.embedder_problem = None if embedder else "no embedder configured (model \"none\"); keyword search only"
        return embedder

    # -- embedder changes ---------------------------------------------------------------------

    async def set_embedder(self, settings: EmbedderSettings) -> None:
        """Store the setting and return; in the background load the embedder (a remote one is
        probed, which can take its timeout), re-embed into a new table and swap when done.
        Search keeps answering from the current table meanwhile; ``status()`` shows progress."""
        import json

        from sidecar import clock

        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                " SET value = excluded.value, updated_at = excluded.updated_at",
                (EMBEDDER_SETTING_KEY, json.dumps(settings.model_dump(mode="json")), clock.now_ms()))
        self.settings = settings
        if self.indexer is None:
            self.kick()  # loading reads the stored setting and re-embeds into the new table
            return
        if self._change is not None and not self._change.done():
            self._change.cancel()
        self.embedder_problem = f"loading embedder {settings.model}"
        self._change = asyncio.get_running_loop().create_task(self._apply(settings), name="search-embedder-change")
        self.refresh_readiness()

    async def _apply(self, settings: EmbedderSettings) -> None:
        try:
            await self._apply_locked(settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background change must end in a stated problem, never silently
            log.warning("embedder change failed", exc_info=True)
            self.embedder_problem = f"embedder change failed: {type(exc).__name__}: {exc}"[:300]
            self.refresh_readiness()

    async def _apply_locked(self, settings: EmbedderSettings) -> None:
        assert self.indexer is not None
        async with self._changing:
            embedder = await self._try_load(settings)
            name = table_slug(embedder.id if embedder else None)
            active = self.indexer.active
            if active is not None and active.name in (name, name + "_r"):
                self.embedder = embedder
                active.embedder = embedder
                self.indexer.building = None
            else:
                building = self.indexer.building
                if building is not None and building.name != name:
                    self.indexer.building = None
                    if self.lance is not None:
                        await asyncio.to_thread(self.lance.drop, building.name)
                    await self.indexer._forget_cursor(building.name)
                if self.indexer.building is None:
                    self.indexer.start_building(await self.indexer.open_target(name, embedder))
        self.refresh_readiness()

    @property
    def changing(self) -> bool:
        """An embedder change is loading or re-embedding."""
        idx = self.indexer
        return ((self._change is not None and not self._change.done()) or (idx is not None and idx.building is not None)
                or (self._loading is not None and not self._loading.done()))

    async def reindex(self) -> None:
        """Rebuild the active table from scratch into a fresh one, then swap (``sidecar reindex``)."""
        assert self.indexer is not None and self.lance is not None
        active = self.indexer.active
        name = table_slug(self.embedder.id if self.embedder else None)
        fresh = name + "_r" if active is not None and active.name == name else name
        target = await self.indexer.open_target(fresh, self.embedder)
        self.indexer.start_building(target)

    # -- queries ------------------------------------------------------------------------------

    async def search(self, q: str, *, kind: str | None = None, project_id: str | None = None,
                     date_from: int | None = None, date_to: int | None = None, limit: int = 20,
                     mode: Mode | None = None) -> tuple[list[dict[str, Any]], Mode]:
        """Best documents first (one hit per document: its best chunk) and the mode used.

        Raises:
            Unavailable: the index has not started yet, or swaps kept retiring the table under
                the search (code ``search_starting``).
        """
        await self.ensure_loaded()
        if self.indexer is None or self.indexer.active is None:
            raise Unavailable("the search index is starting", code="search_starting")
        filters = where(kind=kind, project_id=project_id, date_from=date_from, date_to=date_to)
        return await self._on_active(lambda t: search_table(t, q, filters, limit, mode))

    async def _on_active(self, query: Callable[[Target], Awaitable[R]]) -> R:
        """``query`` on the active table; if a swap retired that table before the query read it
        (``TableRetired``: its embedder's vector does not fit the new table), again from the
        start on the new one, :data:`SWAP_RETRIES` times in all.

        Raises:
            Unavailable: every try met a swap (code ``search_starting``).
        """
        assert self.indexer is not None
        for _ in range(SWAP_RETRIES):
            active = self.indexer.active
            assert active is not None  # set once loaded; a swap replaces it, never unsets it
            try:
                return await query(active)
            except TableRetired:
                continue
        raise Unavailable("the search index is being swapped; try again", code="search_starting")

    async def _nearest_memories(self, text: str, tier: str, limit: int) -> list[tuple[str, float]]:
        """``Memory.nearest``: ``[(memory id, cosine)]`` of the tier's memories nearest ``text``;
        [] without vectors (not loaded, no embedder, or swaps kept retiring the table)."""
        await self.ensure_loaded()
        if self.indexer is None or self.indexer.active is None:
            return []
        try:
            return await self._on_active(lambda t: nearest_memories(t, text, tier, limit))
        except Unavailable:
            return []

    # -- readiness ----------------------------------------------------------------------------

    def refresh_readiness(self) -> None:
        """Put the ``vectors`` component into ``/v1/ready``."""
        readiness = self.app[READINESS]
        idx = self.indexer
        if idx is None or idx.active is None:
            if self._loading is None:
                readiness.set("vectors", "ok", IDLE_DETAIL)
            else:
                readiness.set("vectors", "starting", "loading the search index")
            return
        t = idx.active
        try:
            stats = t.table.stats()
            counts = f"{stats.rows} chunks, {stats.fragments} fragments, {stats.unindexed_rows} not yet in the full-text index"
        except Exception as exc:  # a broken table must not break /v1/ready
            counts = f"stats unavailable ({type(exc).__name__})"
        if idx.building is not None:
            b = idx.building
            readiness.set("vectors", "degraded" if t.embedder is None else "ok",
                          f"re-embedding into {b.name} ({b.done_total}/{b.total}); serving {t.name}: {counts}")
        elif idx.error:
            readiness.set("vectors", "degraded", f"indexing failed: {idx.error}; {counts}")
        elif t.embedder is None:
            readiness.set("vectors", "degraded", f"{self.embedder_problem or 'no embedder'}; {counts}")
        else:
            readiness.set("vectors", "ok", f"hybrid search, embedder {t.embedder.id} ({t.embedder.dim}-d); {counts}")

    def status(self) -> dict[str, Any]:
        """The embedder view of ``GET /v1/settings/embedder``."""
        idx = self.indexer
        active = idx.active.name if idx and idx.active else None
        building = idx.building.name if idx and idx.building else None
        emb = idx.active.embedder if idx and idx.active else None
        return {"settings": self.settings.model_dump(mode="json", by_alias=True),
                "active": {"table": active, "embedder": emb.id if emb else None, "dim": emb.dim if emb else None},
                "building": building, "changing": self.changing, "problem": self.embedder_problem}


async def search_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the service exists while the app runs; heavy start after the handshake."""
    service = SearchService(app)
    app[SEARCH] = service
    app[READINESS].set("vectors", "starting", "the search index starts after the handshake")
    app[READINESS].set("memory", "starting", "memory starts after the handshake")
    app[STORE].on_commit(service.on_commit)
    if AGENT in app:  # memory before and after each run, and the search tool
        from sidecar.search.agent import SearchExtension

        app[AGENT].extensions.append(SearchExtension(service))
    if INGEST in app:  # the text of watched files, written with the ingest's own commit
        from sidecar.search.files import FileTextSink

        app[INGEST].pipeline.document_sinks.append(
            FileTextSink(service.wake))
    after_handshake(app, "search-start", service.begin)
    try:
        yield
    finally:
        await service.stop()


def setup(app: web.Application) -> None:
    """Add search and memory to an application made by :func:`sidecar.app.create_app`."""
    from sidecar.api import search as search_api

    app.cleanup_ctx.append(search_ctx)
    app.router.add_routes(search_api.routes)


__all__ = ["SEARCH_KINDS", "SearchService", "setup"]
