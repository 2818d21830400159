"""Applying other devices' change-log events through the one write path (``Store.write``).

Rules (DESIGN §6, issue 11):

* **Idempotent by event id.** An event whose id is already in the change log is skipped, so a
  batch delivered twice (a retried push whose first response was lost) changes nothing.
* **Fields by API name.** An event's ``fields`` are keyed by camelCase API name (as the change
  log records them); other names are ignored.
* **Last writer wins per field by HLC.** A field takes the remote value only when the event's
  HLC is greater than the newest HLC that wrote that field here (the change log holds every
  write, local and remote, with its HLC: an insert writes every field). Losing fields are
  dropped; an event whose every field loses records nothing.
* **Deletes are tombstones and win.** A ``delete`` event is kept in the change log even when
  the row is not (yet) here. Once an entity has a tombstone, later inserts and updates of it —
  even ones with a greater HLC made concurrently on another device — are ignored: ids are
  UUIDs that are never reused, so "delete wins" converges whatever the delivery order, and a
  user's deletion is never undone by a stale edit elsewhere.
* **References.** A value naming a row that is tombstoned is resolved like the local cascade
  rule: a required parent (timelines → project, comments → task) turns the event into the
  row's tombstone; an optional one (``set_null``) becomes ``null``. A value naming a row that
  is neither here nor tombstoned means the parent's event has not arrived yet: the whole
  record is :class:`Deferred` and retried after later records.
* Deleting a row here applies the local cascades (children deleted or references cleared),
  recorded with ``origin=remote`` like every applied change, so none of it is pushed again.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

from pydantic.alias_generators import to_camel

from sidecar import clock
from sidecar.store.db import NewChange, Op, Writer
from sidecar.store.entities import ENTITIES, EntitySpec, referencing
from sidecar.store.hlc import decode
from sidecar.store.repository import _to_db  # the one column encoding of the write path

#: a remote HLC further ahead of the local wall clock than this is refused: merging it would drag
#: every later local stamp into the future (issue 11)
MAX_AHEAD_MS = 5 * 60 * 1000
_REQUIRED = ("event_id", "device_id", "hlc", "entity", "entity_id", "op", "fields")


class Deferred(Exception):
    """The record cannot be applied yet (``reason``: ``missing_row``, ``missing_reference``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Refused(Exception):
    """The record must never be applied (``reason``: ``bad_event``, ``clock_skew``, ``invalid_row``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def event_of(entry: Any) -> dict[str, Any]:
    """The wire form of a change-log entry (what is sealed into a batch)."""
    return {"event_id": entry.event_id, "device_id": entry.device_id, "hlc": entry.hlc, "entity": entry.entity,
            "entity_id": entry.entity_id, "op": entry.op, "fields": entry.fields}


_REQUIRED_KEYS = frozenset(_REQUIRED)
_OPS = frozenset(("insert", "update", "delete"))


def _check(ev: Any, now_ms: int) -> dict[str, Any]:
    if not isinstance(ev, dict) or not ev.keys() >= _REQUIRED_KEYS:
        raise Refused("bad_event", "an event lacks required keys")
    if ev["entity"] not in ENTITIES or ev["op"] not in _OPS or not isinstance(ev["fields"], dict) \
            or not all(isinstance(ev[k], str) for k in _REQUIRED[:5]):
        raise Refused("bad_event", f"unknown entity or op in event {ev.get('event_id')}")
    try:
        wall = decode(ev["hlc"])[0]
    except ValueError:
        raise Refused("bad_event", f"bad HLC in event {ev['event_id']}") from None
    ahead = wall - now_ms
    if ahead > MAX_AHEAD_MS:
        raise Refused("clock_skew", f"event {ev['event_id']}: its clock is {ahead // 1000} s ahead of ours")
    return ev


Key = tuple[str, str]  # (entity, entity id)


class _History:
    """The newest HLC per (entity, id, field) and the tombstones, for one batch's entities.

    An insert writes every field: its HLC is kept once per row (``row_hlc``) rather than once
    per field, and a field's clock is the greater of that and its own (``field_hlc``, from
    updates)."""

    __slots__ = ("field_hlc", "row_hlc", "tombstones")

    def __init__(self) -> None:
        self.row_hlc: dict[Key, str] = {}
        self.field_hlc: dict[Key, dict[str, str]] = {}
        self.tombstones: set[Key] = set()

    def note(self, key: Key, op: str, hlc: str, fields: dict[str, Any]) -> None:
        if op == "delete":
            self.tombstones.add(key)
        elif op == "insert":
            if self.row_hlc.get(key, "") < hlc:
                self.row_hlc[key] = hlc
        else:
            clocks = self.field_hlc.get(key)
            if clocks is None:
                clocks = self.field_hlc[key] = {}
            for name in fields:
                if clocks.get(name, "") < hlc:
                    clocks[name] = hlc


def _keys(events: list[dict[str, Any]]) -> set[Key]:
    """The entities the events write, and the ones their references name (maybe tombstoned parents)."""
    keys = {(e["entity"], e["entity_id"]) for e in events}
    for e in events:
        for name, target_entity in _REFERENCE_FIELDS[e["entity"]]:
            target = e["fields"].get(name)
            if isinstance(target, str):
                keys.add((target_entity, target))
    return keys


async def _load_history(w: Writer, events: list[dict[str, Any]], keys: set[Key]) -> tuple[set[str], _History]:
    ids = json.dumps([e["event_id"] for e in events])
    known = {r[0] for r in await w.fetchall(
        "SELECT event_id FROM change_log WHERE event_id IN (SELECT value FROM json_each(?))", (ids,))}
    history = _History()
    entities = sorted({k[0] for k in keys})
    # entity IN (…) AND entity_id IN (…) is served by the change_log(entity, entity_id) index
    rows = await w.fetchall(
        f"SELECT entity, entity_id, op, hlc, fields FROM change_log WHERE entity IN ({', '.join('?' * len(entities))})"
        " AND entity_id IN (SELECT value FROM json_each(?))",
        (*entities, json.dumps(sorted({k[1] for k in keys}))))
    for entity, entity_id, op, hlc, fields in rows:
        key = (entity, entity_id)
        if key in keys:
            history.note(key, op, hlc, json.loads(fields) if op == "update" else {})
    return known, history


class Applier:
    """Applies batches inside one open write transaction (``Store.write``).

    A batch is decided in memory against the rows and change-log history loaded for it in a
    few queries; its inserts, updates and change-log rows are then written with one
    ``executemany`` per table and column set (inserts in reference order, parents first), so a
    batch of 500 events costs a handful of round trips to the database thread rather than
    several per event. A delete of a row that is here flushes what is pending first and runs
    the cascade against the database, as the local delete does.
    """

    def __init__(self, w: Writer) -> None:
        self.w = w
        self.history = _History()
        self.applied = 0
        self._rows: dict[Key, dict[str, Any] | None] = {}  # current row (column → stored value); None: absent
        self._inserts: dict[Key, dict[str, Any]] = {}
        self._updates: dict[Key, dict[str, Any]] = {}
        self._log: list[NewChange] = []

    async def apply(self, events: list[Any]) -> int:
        """Apply one batch's events in order; returns how many changed something.

        Raises:
            Refused: an event is malformed, its HLC more than 5 minutes ahead of the wall clock
                (checked before anything is merged into the local HLC), or its row breaks the schema.
            Deferred: an event needs a row that has not arrived yet.
        """
        now = clock.now_ms()
        checked = [_check(e, now) for e in events]
        keys = _keys(checked)
        known, self.history = await _load_history(self.w, checked, keys)
        await self._load_rows(keys)
        try:
            for ev in checked:
                if ev["event_id"] in known:
                    continue
                known.add(ev["event_id"])
                await self._one(ev)
            await self._flush()
        except sqlite3.IntegrityError as exc:
            raise Refused("invalid_row", f"a row of the batch breaks the schema: {exc}") from None
        return self.applied

    async def _load_rows(self, keys: set[Key]) -> None:
        by_entity: dict[str, list[str]] = defaultdict(list)
        for entity, entity_id in keys:
            if (entity, entity_id) not in self._rows:
                by_entity[entity].append(entity_id)
        for entity, ids in by_entity.items():
            spec = ENTITIES[entity]
            for entity_id in ids:
                self._rows[(entity, entity_id)] = None
            for row in await self.w.fetchall(
                    f"SELECT * FROM {spec.table} WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)):
                self._rows[(entity, row["id"])] = dict(row)

    async def _row(self, key: Key) -> dict[str, Any] | None:
        rows = self._rows
        if key not in rows:
            await self._load_rows({key})
        return rows[key]

    def _record(self, ev: dict[str, Any], op: Op, fields: dict[str, Any], *, own: bool = False) -> None:
        key = (ev["entity"], ev["entity_id"])
        self._log.append(NewChange(key[0], key[1], op, fields, "remote",
                                   None if own else ev["device_id"], ev["hlc"], None if own else ev["event_id"]))
        self.history.note(key, op, ev["hlc"], fields)
        self.applied += 1

    async def _one(self, ev: dict[str, Any]) -> None:
        entity = ev["entity"]
        key = (entity, ev["entity_id"])
        history = self.history
        if key in history.tombstones:
            return  # delete wins
        row = self._rows[key] if key in self._rows else await self._row(key)
        op = ev["op"]
        if op == "delete":
            if row is not None:
                await self._delete_here(ENTITIES[entity], ev)
            self._record(ev, "delete", {})
            return
        if row is None and op == "update":
            raise Deferred("missing_row", f"{ENTITIES[entity].label} {ev['entity_id']} has not arrived yet")
        hlc = ev["hlc"]
        if history.row_hlc.get(key, "") >= hlc:
            return  # every field was written by a newer event
        columns = _COLUMN_OF[entity]
        clocks = history.field_hlc.get(key)
        # the fields that win, by API name (what the change log records); unknown names are ignored
        if clocks is None:
            won = {n: v for n, v in ev["fields"].items() if n in columns}
        else:
            won = {n: v for n, v in ev["fields"].items() if n in columns and clocks.get(n, "") < hlc}
        if not won:
            return
        spec = ENTITIES[entity]
        for name, ref in _REFERENCES[entity]:
            target = won.get(name)
            if target is None:
                continue
            tkey = (ref.target, target)
            if (self._rows[tkey] if tkey in self._rows else await self._row(tkey)) is not None:
                continue
            if tkey not in history.tombstones:
                raise Deferred("missing_reference", f"{ENTITIES[ref.target].label} {target} has not arrived yet")
            if ref.on_delete == "set_null":
                won[name] = None
                continue
            # A required parent was deleted: this row goes with it (as the local cascade does).
            if row is not None:
                await self._delete_here(spec, ev)
            self._record(ev, "delete", {})
            return
        stored: dict[str, Any] = {"id": ev["entity_id"]} if row is None else {}
        for name, value in won.items():
            stored[columns[name]] = value
        for column in _ENCODED[entity]:
            if column in stored:
                stored[column] = _to_db(spec, column, stored[column])
        if row is None:
            # one dict is both the current row and the pending insert: until the insert is
            # flushed, every later change of the row goes to both alike
            self._rows[key] = self._inserts[key] = stored
            self._record(ev, "insert", won)
        else:
            row.update(stored)
            if key not in self._inserts:
                self._updates.setdefault(key, {}).update(stored)
            self._record(ev, "update", won)

    async def _flush(self) -> None:
        """Write the pending inserts (parents first), updates and change-log rows."""
        pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (entity, _), values in self._inserts.items():
            pending[entity].append(values)
        updates: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = defaultdict(list)
        for spec in ENTITIES.values():  # declared in reference order: a row's parents come before it
            if spec.name not in pending:
                continue
            own = _OWN_REFERENCES[spec.name]
            inserts: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
            for values in pending[spec.name]:
                if own and (later := {c: values[c] for c in own if values.get(c) is not None}):
                    # a reference within the table (a client's parent): set once all rows exist
                    updates[(spec.table, tuple(later))].append((*later.values(), values["id"]))
                    values = {c: v for c, v in values.items() if c not in later}
                inserts[tuple(values)].append(tuple(values.values()))
            for cols, rows in inserts.items():
                await self.w.executemany(
                    f"INSERT INTO {spec.table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        for (entity, entity_id), values in self._updates.items():
            updates[(ENTITIES[entity].table, tuple(values))].append((*values.values(), entity_id))
        for (table, cols), rows in updates.items():
            await self.w.executemany(f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?", rows)
        await self.w.record_many(self._log)
        self._inserts.clear()
        self._updates.clear()
        self._log.clear()

    async def _delete_here(self, spec: EntitySpec, ev: dict[str, Any]) -> None:
        """Delete a row that is here, with its cascades, against the database (pending writes first)."""
        await self._flush()
        await self._cascade(spec, ev)
        await self.w.execute(f"DELETE FROM {spec.table} WHERE id = ?", (ev["entity_id"],))
        self._rows[(ev["entity"], ev["entity_id"])] = None

    async def _cascade(self, spec: EntitySpec, ev: dict[str, Any]) -> None:
        """Children of a row deleted by a remote event: deleted or detached, each recorded."""
        for child, ref in referencing(spec.name):
            rows = await self.w.fetchall(
                f"SELECT id FROM {child.table} WHERE {ref.column} = ? AND id != ?", (ev["entity_id"], ev["entity_id"]))
            for (child_id,) in rows:
                sub = {**ev, "entity": child.name, "entity_id": child_id}
                if ref.on_delete == "cascade":
                    await self._cascade(child, sub)
                    await self.w.execute(f"DELETE FROM {child.table} WHERE id = ?", (child_id,))
                    self._rows[(child.name, child_id)] = None
                    self._record(sub, "delete", {}, own=True)
                else:
                    await self.w.execute(f"UPDATE {child.table} SET {ref.column} = NULL WHERE id = ?", (child_id,))
                    if (current := self._rows.get((child.name, child_id))) is not None:
                        current[ref.column] = None
                    self._record(sub, "update", {to_camel(ref.column): None}, own=True)


#: per entity, the fields an event may write (all columns but ``id``): API (camelCase) name → column
_COLUMN_OF = {name: {to_camel(c): c for c in spec.columns if c != "id"} for name, spec in ENTITIES.items()}
#: per entity, the columns whose stored form differs from the API value (JSON text, 0/1)
_ENCODED = {name: tuple(spec.json_columns | spec.bool_columns) for name, spec in ENTITIES.items()}
#: per entity, its references by API field name
_REFERENCES = {name: tuple((to_camel(r.column), r) for r in spec.references) for name, spec in ENTITIES.items()}
_REFERENCE_FIELDS = {name: tuple((n, r.target) for n, r in refs) for name, refs in _REFERENCES.items()}
#: per entity, the columns referencing its own table (a client's parent)
_OWN_REFERENCES = {name: tuple(r.column for r in spec.references if r.target == name) for name, spec in ENTITIES.items()}
