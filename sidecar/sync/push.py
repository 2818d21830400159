"""Push: the change log is the outbox. Unsynced local events go out in sealed batches.

A batch is at most :data:`BATCH_EVENTS` events, sealed (:mod:`sidecar.sync.envelope`) and
stored in ``sync_outbox`` *before* it is sent; ``synced_at`` is set on its events only in the
transaction that records the server's acknowledgement. Only ``origin='local'`` events are ever
pushed: remotely applied ones never go out again.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

from sidecar import clock
from sidecar.store.db import ChangeEntry, Store
from sidecar.store.entities import ENTITIES
from sidecar.sync.apply import event_of
from sidecar.sync.client import CloudClient, Rejected, checksum
from sidecar.sync.envelope import seal
from sidecar.sync.keys import Keychain
from sidecar.sync.state import set_meta

BATCH_EVENTS = 500


@dataclass
class PushResult:
    batches: int = 0
    events: int = 0
    parked: str | None = None


async def _next_batch(store: Store, chain: Keychain, retry_parked: bool) -> sqlite3.Row | None:
    """The oldest unacknowledged batch, sealing a new one from the change log when none is."""
    pending = await store.fetchone(
        "SELECT * FROM sync_outbox WHERE acked_at IS NULL ORDER BY seq LIMIT 1")
    if pending is not None:
        return pending if retry_parked or pending["parked_reason"] is None else None
    async with store.write() as w:
        last = await w.fetchone("SELECT coalesce(max(last_seq), 0), coalesce(max(seq), 0) FROM sync_outbox")
        after, batch_seq = (int(last[0]), int(last[1])) if last else (0, 0)
        while True:
            rows = await w.fetchall(
                "SELECT * FROM change_log WHERE seq > ? AND origin = 'local' AND synced_at IS NULL ORDER BY seq LIMIT ?",
                (after, BATCH_EVENTS))
            if not rows:
                return None
            # Device-local entities never leave the device: the agent's memory (search's
            # `memories`, sealed with this device's key) is not a synced table, and another
            # device would refuse its events. They count as synced so the outbox moves on.
            local = [r["seq"] for r in rows if r["entity"] not in ENTITIES]
            if local:
                await w.execute(f"UPDATE change_log SET synced_at = ? WHERE seq IN ({','.join('?' * len(local))})",
                                (clock.now_ms(), *local))
            rows = [r for r in rows if r["entity"] in ENTITIES]
            if rows:
                break
        events = [event_of(ChangeEntry.from_row(r)) for r in rows]
        blob = seal(chain.current_key, device=store.device_id, seq=batch_seq + 1, events=events, salt=os.urandom(32))
        plain = sum(len(r["fields"]) for r in rows)
        await w.execute(
            "INSERT INTO sync_outbox (seq, first_seq, last_seq, event_count, plain_bytes, blob, checksum, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch_seq + 1, rows[0]["seq"], rows[-1]["seq"], len(rows), plain, blob, checksum(blob), clock.now_ms()))
    return await store.fetchone("SELECT * FROM sync_outbox WHERE seq = ?", (batch_seq + 1,))


async def push(store: Store, client: CloudClient, chain: Keychain, *, retry_parked: bool = False) -> PushResult:
    """Send every unsynced local event. Stops at a batch the server rejects (4xx): it is
    parked with its reason and later batches wait behind it, so sequences stay gap-free.

    Raises the client's Transient / AuthExpired (nothing is lost: the batch is resent next time).
    """
    result = PushResult()
    while (batch := await _next_batch(store, chain, retry_parked)) is not None:
        try:
            record_id = await client.post_record(bytes(batch["blob"]))
        except Rejected as exc:
            async with store.write() as w:
                await w.execute("UPDATE sync_outbox SET parked_reason = ? WHERE seq = ?", (str(exc), batch["seq"]))
            result.parked = str(exc)
            return result
        now = clock.now_ms()
        async with store.write() as w:
            await w.execute("UPDATE sync_outbox SET record_id = ?, acked_at = ?, parked_reason = NULL WHERE seq = ?",
                            (record_id, now, batch["seq"]))
            await w.execute(
                "UPDATE change_log SET synced_at = ? WHERE seq BETWEEN ? AND ? AND origin = 'local' AND synced_at IS NULL",
                (now, batch["first_seq"], batch["last_seq"]))
            await set_meta(w, "sync_last_push", str(now))
        result.batches += 1
        result.events += int(batch["event_count"])
    return result
