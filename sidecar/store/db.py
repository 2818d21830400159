"""The SQLite database: connections, pragmas, the write transaction and the change log.

One file ``DIR/sidecar.db`` in WAL mode with foreign keys on, a busy timeout and
``synchronous=FULL`` (a commit survives power loss). Two aiosqlite connections: one writer,
used only under :meth:`Store.write` (one change at a time, each in a ``SAVEPOINT`` of a
``BEGIN IMMEDIATE`` transaction that concurrent changes share: group commit, one fsync for all
of them, each caller released only once it is durable), and one reader, which in WAL mode sees
only committed data. The change log is appended inside the same change it records
(:meth:`Writer.record`), so a rolled-back change leaves no log row and a committed one always
has exactly one per entity change.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import uuid6

from sidecar.errors import DiskFull, StoreFailed
from sidecar.store import hlc as hlc_mod
from sidecar.store.migrations import MIGRATIONS, Migration, migrate
from sidecar.store.writer import ChangeEntry, CommitListener, NewChange, Op, Origin, Writer

__all__ = ["ChangeEntry", "NewChange", "Op", "Origin", "Store", "Writer", "tripwire_path"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
#: most changes one group commit takes (bounds the latency a caller waits for the others)
MAX_GROUP = 64
#: Free space (bytes) on the data dir's disk below which the store reports ``degraded``.
LOW_SPACE_BYTES = 256 * 1024
HealthState = Literal["ok", "degraded", "error"]
HealthListener = Callable[[HealthState, str], None]


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def tripwire_path(path: Path) -> Path:
    """The file left next to the database when it was replaced under a running sidecar."""
    return path.with_name(path.name + ".replaced")


@dataclass
class _Group:
    """The changes sharing one open transaction; ``done`` resolves once their commit is durable."""

    done: asyncio.Future[None]
    members: list[Writer] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None


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


class Store:
    """The open database. Create with :meth:`open`, release with :meth:`close`."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()  # one change runs at a time on the writer connection
        self._waiting = 0  # callers of write() queued for the lock
        self._group: _Group | None = None  # the open group transaction
        #: most changes committed together; 1 turns group commit off (one COMMIT per change)
        self.max_group = MAX_GROUP
        #: COMMITs issued since open (a figure for benchmarks)
        self.commits = 0
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
        """Checkpoint the WAL and close both connections (waits for a running transaction).

        A read statement that was never reset keeps a snapshot open, and the TRUNCATE
        checkpoint would wait the busy timeout (5 s, past the 3 s shutdown bound) for it. Such
        a cursor is usually held only by a reference cycle (the frame of a query cancelled at
        shutdown, through its exception), so a collection frees it first; one still held, or
        another process's reader, leaves the WAL in place at once (it is replayed at the next
        open), never a wait."""
        async with self._lock:
            if self._group is not None:
                await self._commit(self._group)
            gc.collect()
            await self._reader.close()
            try:
                await self._writer.execute("PRAGMA busy_timeout = 0")
                rows = list(await self._writer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))
                if rows and rows[0][0]:
                    log.warning("wal checkpoint incomplete at close: a reader holds a snapshot")
            except sqlite3.Error:
                log.warning("wal checkpoint skipped at close")
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
        """One change, atomic and durable: it is committed whole or not at all, change-log rows
        included, and the block exits only once its commit is on disk (``synchronous=FULL``).

        Group commit: changes run one at a time, each inside its own ``SAVEPOINT``; callers that
        arrive while another change runs join the same transaction, which is committed — one
        ``COMMIT``, one fsync — when nobody else is waiting (or :attr:`max_group` changes are in
        it). Each caller is released only after that shared commit. An exception inside the
        block rolls back this change alone (``ROLLBACK TO``) and propagates to this caller; the
        others in the group are unaffected. If SQLite itself ends the transaction (the disk
        is full, an I/O error), every change in the group fails with that error and none was
        acknowledged.

        Raises:
            DiskFull: the disk is full (this change, or the group's commit).
            StoreFailed: the database file was replaced (:meth:`check_identity`).
        """
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            async with self._disk_full_as_507():
                self.check_identity()
                group, savepoint = await self._join()
                w = Writer(self)
                try:
                    yield w
                except BaseException:
                    await asyncio.shield(self._undo(group, savepoint))
                    await self._settle(group)
                    raise
                if savepoint:
                    await asyncio.shield(self._writer.execute("RELEASE change"))
                group.members.append(w)
                await self._settle(group)
        finally:
            if self._group is not None:
                self._flush_later(self._group)
            self._lock.release()
        async with self._disk_full_as_507():
            await asyncio.shield(group.done)

    async def _join(self) -> tuple[_Group, bool]:
        """The open group transaction (begun if none is) and whether this change has a savepoint:
        the first change of a group needs none (undoing it is rolling the transaction back),
        which saves two of a lone change's four round trips to the connection's thread."""
        if self._group is None:
            try:
                await asyncio.shield(self._writer.execute("BEGIN IMMEDIATE"))
            except asyncio.CancelledError:
                # The BEGIN runs on the connection's thread whatever happens to us; end the
                # transaction it opened, or every later write would fail ("within a transaction").
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                raise
            self._group = _Group(asyncio.get_running_loop().create_future())
        group = self._group
        if not group.members:
            return group, False
        try:
            await asyncio.shield(self._writer.execute("SAVEPOINT change"))
        except BaseException:
            await self._settle(group)
            raise
        return group, True

    async def _undo(self, group: _Group, savepoint: bool) -> None:
        """Roll back the running change alone; if SQLite ended the whole transaction, fail the group."""
        if not savepoint:  # the group's first change: the transaction holds nothing else
            with contextlib.suppress(sqlite3.Error):
                await self._writer.execute("ROLLBACK")
            self._group = None
            group.done.set_result(None)
            return
        if self._writer.in_transaction:
            try:
                await self._writer.execute("ROLLBACK TO change")
                await self._writer.execute("RELEASE change")
                return
            except sqlite3.Error as exc:
                error: BaseException = exc
                with contextlib.suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")
        else:
            error = StoreFailed("SQLite rolled back the shared transaction after an error in another change")
        self._group = None
        if group.members:
            group.done.set_exception(error)
        else:
            group.done.set_result(None)

    async def _settle(self, group: _Group) -> None:
        """After a change: leave the group open for a waiting caller, or commit (or end) it now."""
        if self._group is not group:
            return  # already failed
        if not self._waiting and len(group.members) < self.max_group:
            await asyncio.sleep(0)  # let a caller that is ready to write get in line
        if self._waiting and len(group.members) < self.max_group:
            return  # the next change joins; write() leaves a flusher in case it goes away
        await asyncio.shield(self._commit(group))

    def _flush_later(self, group: _Group) -> None:
        """Make sure an open group gets committed even if no caller comes back to it (a waiting
        caller was cancelled, or this one was cancelled before deciding)."""
        if group.flusher is None:
            group.flusher = asyncio.get_running_loop().create_task(self._flush(group))

    async def _flush(self, group: _Group) -> None:
        async with self._lock:
            if self._group is group:
                await asyncio.shield(self._commit(group))

    async def _commit(self, group: _Group) -> None:
        """COMMIT (or, with no change in it, ROLLBACK) the group and release its callers."""
        self._group = None
        if not group.members:
            with contextlib.suppress(sqlite3.Error):
                await self._writer.execute("ROLLBACK")
            group.done.set_result(None)
            return
        self.commits += 1
        try:
            await self._writer.execute("COMMIT")
        except sqlite3.Error as exc:  # e.g. SQLITE_FULL at commit: never leave the transaction open
            with contextlib.suppress(sqlite3.Error):
                await self._writer.execute("ROLLBACK")
            group.done.set_exception(exc)
            return
        if self.health[0] == "degraded":
            self._set_health("ok", "writes succeed again")
        for member in group.members:
            if member.changes:
                for listener in self._listeners:
                    try:
                        listener(member.changes)
                    except Exception:  # a broken listener must not undo or hide a commit
                        log.exception("commit listener failed")
        group.done.set_result(None)

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
        """The first row of committed data, or None. For statements of one row (by key, an
        aggregate, ``LIMIT 1``): it reads every row the statement returns, in one round trip to
        the reader's thread (a cursor's execute, fetch and close were three)."""
        rows = await self._reader.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """All rows of committed data (one round trip to the reader's thread)."""
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

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
