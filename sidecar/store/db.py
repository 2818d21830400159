"""The SQLite database: connections, pragmas, the write transaction and the change log.

One file ``DIR/sidecar.db`` in WAL mode with foreign keys on, a busy timeout and
``synchronous=FULL`` (a commit survives power loss). Two aiosqlite connections: one writer,
used only under :meth:`Store.write` (one transaction at a time, ``BEGIN IMMEDIATE``), and one
reader, which in WAL mode sees only committed data. The change log is appended inside the same
transaction as the change it records (:meth:`Writer.record`), so a rolled-back change leaves no
log row and a committed one always has exactly one per entity change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, NamedTuple

import aiosqlite
import uuid6
from pydantic import BaseModel

from sidecar.errors import DiskFull, StoreFailed
from sidecar.store import hlc as hlc_mod
from sidecar.store.migrations import MIGRATIONS, Migration, migrate

log = logging.getLogger(__name__)

Op = Literal["insert", "update", "delete"]
Origin = Literal["local", "remote"]
BUSY_TIMEOUT_MS = 5_000
#: Free space (bytes) on the data dir's disk below which the store reports ``degraded``.
LOW_SPACE_BYTES = 256 * 1024
HealthState = Literal["ok", "degraded", "error"]
HealthListener = Callable[[HealthState, str], None]


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def tripwire_path(path: Path) -> Path:
    """The file left next to the database when it was replaced under a running sidecar."""
    return path.with_name(path.name + ".replaced")


class ChangeEntry(BaseModel):
    """One change-log row (DESIGN §3). ``fields`` holds the changed fields by API (camelCase)
    name with their new values; empty for a delete."""

    seq: int
    event_id: str
    device_id: str
    hlc: str
    entity: str
    entity_id: str
    op: Op
    fields: dict[str, Any]
    origin: Origin
    synced_at: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ChangeEntry:
        """Build from a ``change_log`` row."""
        return cls(
            seq=row["seq"],
            event_id=row["event_id"],
            device_id=row["device_id"],
            hlc=row["hlc"],
            entity=row["entity"],
            entity_id=row["entity_id"],
            op=row["op"],
            fields=json.loads(row["fields"]),
            origin=row["origin"],
            synced_at=row["synced_at"],
        )


CommitListener = Callable[[list[ChangeEntry]], None]


class NewChange(NamedTuple):
    """A change-log row to append (:meth:`Writer.record_many`); ``None`` values are filled in as
    :meth:`Writer.record` does (a new event id, this device, a new HLC stamp)."""

    entity: str
    entity_id: str
    op: Op
    fields: dict[str, Any]
    origin: Origin = "local"
    device_id: str | None = None
    hlc: str | None = None
    event_id: str | None = None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


async def _connect(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
    db.row_factory = sqlite3.Row
    try:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await db.close()  # its worker thread would otherwise keep the process alive
        raise
    return db


class Writer:
    """The open write transaction handed out by :meth:`Store.write`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.db = store._writer
        self.changes: list[ChangeEntry] = []

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        async with self.db.execute(sql, tuple(params)) as cur:
            return cur.rowcount

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """One row, read inside this transaction (sees its own uncommitted writes)."""
        async with self.db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()  # type: ignore[no-any-return]

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """All rows, read inside this transaction."""
        async with self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement once per parameter row (one round trip to the connection's thread)."""
        await self.db.executemany(sql, [tuple(r) for r in rows])

    async def record(
        self,
        entity: str,
        entity_id: str,
        op: Op,
        fields: dict[str, Any],
        *,
        origin: Origin = "local",
        device_id: str | None = None,
        hlc: str | None = None,
        event_id: str | None = None,
    ) -> ChangeEntry:
        """Append a change-log row in this transaction. Local changes get a new UUIDv7 event id
        and HLC timestamp; remote ones (sync) pass the originating device's values."""
        row = self._log_row(NewChange(entity, entity_id, op, fields, origin, device_id, hlc, event_id))
        async with self.db.execute(_LOG_INSERT, row) as cur:
            seq = cur.lastrowid
        assert seq is not None
        entry = _entry(seq, row, fields)
        self.changes.append(entry)
        return entry

    async def record_many(self, changes: Sequence[NewChange]) -> list[ChangeEntry]:
        """Append many change-log rows in order, in one statement run (as :meth:`record` each)."""
        if not changes:
            return []
        rows = [self._log_row(c) for c in changes]
        await self.db.executemany(_LOG_INSERT, rows)
        # One writer holds the transaction, so the rows got consecutive seqs ending at the last rowid.
        last = await self.fetchone("SELECT last_insert_rowid()")
        assert last is not None
        first = int(last[0]) - len(rows) + 1
        entries = [_entry(first + i, row, c.fields) for i, (row, c) in enumerate(zip(rows, changes, strict=True))]
        self.changes.extend(entries)
        return entries

    def _log_row(self, c: NewChange) -> tuple[Any, ...]:
        store = self._store
        if c.hlc is None:
            hlc = store.hlc.now()
        else:
            store.hlc.receive(c.hlc)
            hlc = c.hlc
        payload = json.dumps(c.fields, separators=(",", ":"), ensure_ascii=False)
        return (c.event_id or str(uuid6.uuid7()), c.device_id or store.device_id, hlc, c.entity, c.entity_id, c.op,
                payload, c.origin)


_LOG_INSERT = ("INSERT INTO change_log (event_id, device_id, hlc, entity, entity_id, op, fields, origin)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _entry(seq: int, row: tuple[Any, ...], fields: dict[str, Any]) -> ChangeEntry:
    event_id, device_id, hlc, entity, entity_id, op, _, origin = row
    return ChangeEntry.model_construct(seq=seq, event_id=event_id, device_id=device_id, hlc=hlc, entity=entity,
                                       entity_id=entity_id, op=op, fields=fields, origin=origin, synced_at=None)


class Store:
    """The open database. Create with :meth:`open`, release with :meth:`close`."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._listeners: list[CommitListener] = []
        self._health_listeners: list[HealthListener] = []
        #: ``(state, detail)``: ``degraded`` while the disk is full, ``error`` once the file was replaced
        self.health: tuple[HealthState, str] = ("ok", "")
        self._identity = _identity(path)
        self.device_id = ""
        self.hlc = hlc_mod.HybridLogicalClock("")

    @classmethod
    async def open(cls, path: Path, migrations: list[tuple[str, Migration]] | None = None) -> Store:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        Raises:
            sqlite3.DatabaseError: the file is not a usable SQLite database.
            StoreFailed: ``database_replaced`` — a previous run found the file replaced or
                deleted under it (:func:`tripwire_path` says when and how to go on).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        trip = tripwire_path(path)
        if trip.exists():
            raise StoreFailed(f"{trip.read_text(encoding='utf-8', errors='replace').strip()}; acknowledged writes may"
                              f" be missing from {path.name}. Restore the right file, or delete {trip.name} to"
                              " start with the database now in place", code="database_replaced")
        writer = await _connect(path)
        try:
            applied = await migrate(writer, migrations if migrations is not None else MIGRATIONS)
            if applied:
                log.info("migrations applied", extra={"migrations": applied})
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        store = cls(path, writer, reader)
        await store._load_identity()
        return store

    async def _load_identity(self) -> None:
        async with self.write() as w:
            row = await w.fetchone("SELECT value FROM meta WHERE key = 'device_id'")
            if row is None:
                device_id = str(uuid6.uuid7())
                await w.execute("INSERT INTO meta (key, value) VALUES ('device_id', ?)", (device_id,))
            else:
                device_id = row[0]
            last = await w.fetchone("SELECT max(hlc) FROM change_log WHERE device_id = ?", (device_id,))
        self.device_id = device_id
        # Resume after the newest stamp this device issued, so a wall clock that moved back
        # while we were not running cannot make new stamps sort before old ones.
        self.hlc = hlc_mod.HybridLogicalClock(device_id[-12:], last=last[0] if last else None)

    async def close(self) -> None:
        """Checkpoint the WAL and close both connections (waits for a running transaction)."""
        async with self._lock:
            try:
                await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # another process holding a read lock is not fatal here
                log.warning("wal checkpoint skipped at close")
            await self._reader.close()
            await self._writer.close()

    # -- health ---------------------------------------------------------------------------

    def on_health(self, listener: HealthListener) -> None:
        """Call ``listener(state, detail)`` whenever :attr:`health` changes."""
        self._health_listeners.append(listener)

    def _set_health(self, state: HealthState, detail: str) -> None:
        if self.health == (state, detail) or self.health[0] == "error":  # error is final
            return
        self.health = (state, detail)
        (log.info if state == "ok" else log.error)("store health", extra={"state": state, "detail": detail})
        for listener in self._health_listeners:
            try:
                listener(state, detail)
            except Exception:
                log.exception("store health listener failed")

    def check_identity(self) -> None:
        """Raise :class:`StoreFailed` (and report ``error``) when the file at :attr:`path` is no
        longer the one opened (device/inode): replaced or deleted under us. Writes then stop; a
        tripwire file makes the next start refuse with a clear error."""
        if self.health[0] == "error":
            raise StoreFailed(self.health[1])
        if _identity(self.path) == self._identity:
            return
        detail = f"the database file {self.path} was replaced or deleted while the sidecar ran"
        with contextlib.suppress(OSError):
            tripwire_path(self.path).write_text(detail + "\n", encoding="utf-8")
        self._set_health("error", detail)
        raise StoreFailed(detail)

    def check_health(self) -> None:
        """The periodic check (call every few seconds): identity, then free disk space."""
        import shutil

        with contextlib.suppress(StoreFailed):
            self.check_identity()
        if self.health[0] == "error":
            return
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return
        if free < LOW_SPACE_BYTES:
            self._set_health("degraded", f"disk full: {free} bytes free on the data dir's disk; writes may fail")
        elif self.health[0] == "degraded":
            self._set_health("ok", "disk space is back")

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener(entries)`` after every commit that logged changes (in commit order)."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Writer]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), serialised with all others.

        An exception inside rolls everything back, change-log rows included, and propagates.
        """
        async with self._lock, self._disk_full_as_507():
            self.check_identity()
            w = Writer(self)
            try:
                await asyncio.shield(self._writer.execute("BEGIN IMMEDIATE"))
            except asyncio.CancelledError:
                # The BEGIN runs on the connection's thread whatever happens to us; end the
                # transaction it opened, or every later write would fail ("within a transaction").
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                raise
            try:
                yield w
            except BaseException:
                try:
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                except sqlite3.Error:
                    pass
                raise
            # Shielded so that a cancelled caller cannot leave the commit half-way; the
            # transaction's fate is decided by SQLite either way.
            try:
                await asyncio.shield(self._writer.execute("COMMIT"))
            except sqlite3.Error:  # e.g. SQLITE_FULL at commit: never leave the transaction open
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                raise
            if self.health[0] == "degraded":
                self._set_health("ok", "writes succeed again")
        if w.changes:
            for listener in self._listeners:
                try:
                    listener(w.changes)
                except Exception:  # a broken listener must not undo or hide a commit
                    log.exception("commit listener failed")

    @asynccontextmanager
    async def _disk_full_as_507(self) -> AsyncIterator[None]:
        """SQLITE_FULL anywhere in a write → :class:`DiskFull` and ``degraded`` (rolled back)."""
        try:
            yield
        except sqlite3.Error as exc:
            if not _is_disk_full(exc):
                raise
            self._set_health("degraded", "disk full: the last write failed and was rolled back")
            raise DiskFull("the disk holding the data dir is full; nothing was written. Free some space"
                           " and try again") from None

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """One row of committed data."""
        async with self._reader.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()  # type: ignore[no-any-return]

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """All rows of committed data."""
        async with self._reader.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def changes_after(self, seq: int, limit: int = 1000) -> list[ChangeEntry]:
        """Committed change-log entries with ``seq`` greater than the one given, oldest first."""
        rows = await self.fetchall(
            "SELECT * FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [ChangeEntry.from_row(r) for r in rows]

    async def last_seq(self) -> int:
        """The newest committed change-log sequence number (0 when empty)."""
        row = await self.fetchone("SELECT coalesce(max(seq), 0) FROM change_log")
        return int(row[0]) if row else 0
