"""The open write transaction's handle (:class:`Writer`) and the change-log rows it appends.

:meth:`sidecar.store.db.Store.write` hands out a :class:`Writer`; every change to domain data
appends its change-log row through :meth:`Writer.record` or :meth:`Writer.record_many` in the
same transaction (DESIGN §3).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import uuid6
from pydantic import TypeAdapter

from sidecar import clock
from sidecar.basemodel import Model

if TYPE_CHECKING:
    from sidecar.store.db import Store

Op = Literal["insert", "update", "delete"]
Origin = Literal["local", "remote"]


class ChangeEntry(Model):
    """One change-log row (DESIGN §3). ``fields`` holds the changed fields by API (camelCase)
    name with their new values; empty for a delete. ``synced_at`` (Unix ms): when the event was
    known to be on the server — a local one's push was acknowledged, a remote one was applied."""

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
        return cls.from_db(row, json_columns=("fields",))


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


class Writer:
    """The open write transaction handed out by :meth:`Store.write`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.db = store._writer
        self.changes: list[ChangeEntry] = []

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed. One round trip to the
        connection's thread: a write statement is complete once executed, so its cursor needs no
        separate close (each hop costs about as much as the statement itself)."""
        cur = await self.db.execute(sql, tuple(params))
        return cur.rowcount

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """The first row, read inside this transaction (sees its own uncommitted writes), or
        None. For statements of one row, as :meth:`Store.fetchone` (one round trip)."""
        rows = await self.db.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """All rows, read inside this transaction (one round trip)."""
        return list(await self.db.execute_fetchall(sql, tuple(params)))

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
        inserted = await self.db.execute_insert(_LOG_INSERT, row)  # with its rowid: one round trip
        assert inserted is not None
        seq = int(inserted[0])
        (entry,) = _entries(seq, [row], [fields])
        self.changes.append(entry)
        return entry

    async def record_many(self, changes: Sequence[NewChange]) -> list[ChangeEntry]:
        """Append many change-log rows in order, in one statement run (as :meth:`record` each;
        the HLC merges the newest remote stamp among them once)."""
        if not changes:
            return []
        remote = [c.hlc for c in changes if c.hlc is not None]
        if remote:
            self._store.hlc.receive(max(remote))
        rows = [self._log_row(c, merged=True) for c in changes]
        await self.db.executemany(_LOG_INSERT, rows)
        # One writer holds the transaction, so the rows got consecutive seqs ending at the last rowid.
        last = await self.fetchone("SELECT last_insert_rowid()")
        assert last is not None
        entries = _entries(int(last[0]) - len(rows) + 1, rows, [c.fields for c in changes])
        self.changes.extend(entries)
        return entries

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A part of this change that fails alone: when the block raises, its writes and
        change-log entries are rolled back (``ROLLBACK TO`` a savepoint), the rest of the change
        stays, and the exception propagates. Savepoints nest."""
        mark = len(self.changes)
        await self.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:  # else SQLite ended the transaction: Store.write fails the change
                await asyncio.shield(self.execute("ROLLBACK TO part"))
                await asyncio.shield(self.execute("RELEASE part"))
            del self.changes[mark:]
            raise
        await self.execute("RELEASE part")

    def _log_row(self, c: NewChange, *, merged: bool = False) -> tuple[Any, ...]:
        store = self._store
        if c.hlc is None:
            hlc = store.hlc.now()
        else:
            if not merged:
                store.hlc.receive(c.hlc)
            hlc = c.hlc
        payload = _compact_json(c.fields)
        # A remote event came from the server: it is synced as it is applied, so the unsynced
        # index (change_log_unsynced) holds only local events waiting to be pushed.
        return (c.event_id or str(uuid6.uuid7()), c.device_id or store.device_id, hlc, c.entity, c.entity_id, c.op,
                payload, c.origin, clock.now_ms() if c.origin == "remote" else None)


_LOG_INSERT = ("INSERT INTO change_log (event_id, device_id, hlc, entity, entity_id, op, fields, origin, synced_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


#: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` without building an encoder per call
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
@functools.cache
def _entry_list() -> TypeAdapter[list[ChangeEntry]]:
    """Builds a list of entries in one call (pydantic-core: a few times cheaper per entry than
    ``model_construct``, whose per-field loop is Python). Made on first use, not at import."""
    return TypeAdapter(list[ChangeEntry])


def _entries(first_seq: int, rows: Sequence[tuple[Any, ...]], fields: Sequence[dict[str, Any]]) -> list[ChangeEntry]:
    """The entries of log rows just inserted with consecutive seqs from ``first_seq``."""
    return _entry_list().validate_python([
        {"seq": first_seq + i, "event_id": r[0], "device_id": r[1], "hlc": r[2], "entity": r[3], "entity_id": r[4],
         "op": r[5], "fields": f, "origin": r[7], "synced_at": r[8]} for i, (r, f) in enumerate(zip(rows, fields, strict=True))])
