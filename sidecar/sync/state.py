"""Sync bookkeeping in the database (tables of migration ``008_sync``).

* ``sync_outbox`` — this device's sealed batches, one per batch sequence number. A batch is
  written (blob included) before it is sent and resent byte-for-byte until the server
  acknowledges it, so a crash or a lost response can only duplicate a record, never renumber
  or change one. ``parked_reason`` holds a 4xx the server answered.
* ``sync_records`` — every server record this device has looked at, with what became of it:
  ``applied``, ``own`` (this device's batch), ``duplicate``, ``quarantined`` (never applied,
  with ``reason``), ``held`` (waiting for an earlier batch of its device, blob kept).
  ``position`` is the record's place in the server's listing (negative: a batch of the old
  device a backup was restored from, known without having been listed).
* ``sync_batches`` — the batches applied per device and sequence (replay/rollback detection).
* ``meta`` keys ``sync_last_push``, ``sync_last_pull`` (Unix ms).
"""

from __future__ import annotations

from typing import Any

from sidecar import clock
from sidecar.store.db import Store, Writer


async def set_meta(w: Writer, key: str, value: str) -> None:
    """Upsert one ``meta`` row inside a transaction."""
    await w.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value))


async def get_meta(store: Store, key: str) -> str | None:
    row = await store.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
    return str(row[0]) if row else None


async def mark_record(w: Writer, record_id: str, checksum: str, status: str, *, device: str | None = None,
                      seq: int | None = None, reason: str | None = None, blob: bytes | None = None) -> None:
    """Remember what became of a server record (replacing an earlier ``held`` entry)."""
    row = await w.fetchone("SELECT position FROM sync_records WHERE record_id = ?", (record_id,))
    if row is None:
        row = await w.fetchone("SELECT count(*) FROM sync_records WHERE position >= 0")
    position = int(row[0]) if row else 0
    await w.execute(
        "INSERT OR REPLACE INTO sync_records (record_id, position, device_id, batch_seq, checksum, status, reason, blob,"
        " seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record_id, position, device, seq, checksum, status, reason, blob, clock.now_ms()))


async def counts(store: Store) -> dict[str, Any]:
    """Figures for ``GET /v1/sync``."""
    pending = await store.fetchone(
        "SELECT count(*) FROM change_log WHERE origin = 'local' AND synced_at IS NULL")
    devices = await store.fetchall(
        "SELECT device_id, max(seq), count(*), max(applied_at) FROM sync_batches GROUP BY device_id ORDER BY device_id")
    quarantined = await store.fetchall(
        "SELECT record_id, device_id, batch_seq, status, reason, seen_at FROM sync_records"
        " WHERE status IN ('quarantined', 'held') ORDER BY position")
    parked = await store.fetchone(
        "SELECT seq, parked_reason FROM sync_outbox WHERE parked_reason IS NOT NULL ORDER BY seq LIMIT 1")
    return {
        "pending_events": int(pending[0]) if pending else 0,
        "devices": [{"device_id": r[0], "last_batch": r[1], "batches": r[2], "last_seen_at": r[3]} for r in devices],
        "quarantined": [{"record_id": r[0], "device_id": r[1], "batch_seq": r[2], "state": r[3], "reason": r[4],
                         "seen_at": r[5]} for r in quarantined],
        "parked": {"batch_seq": parked[0], "reason": parked[1]} if parked else None,
    }
