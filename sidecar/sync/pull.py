"""Pull: list the records this device has not seen, verify, decrypt and apply them.

Paging starts at the page holding the first record not yet looked at (every record seen is
remembered in ``sync_records``, in listing order, in the same transaction as its outcome), so
a pull resumes after a crash, skips the duplicates a listing may contain, and picks up records
added while it pages. Per record, in this order:

1. the blob's SHA-256 must equal the listing's checksum and ``X-Checksum`` → else
   ``checksum_mismatch``;
2. it must authenticate and decrypt (:func:`~sidecar.sync.envelope.open_batch`) → else its
   envelope reason (``auth_failed``, ``unknown_key``, ``bad_format``, ``header_mismatch``);
3. this device's own batches are skipped (``own``);
4. per device, batch sequences must follow on: an already-applied sequence with the same
   checksum is a ``duplicate`` (a retried push), with another one a ``replayed_batch``; a
   sequence beyond the next is ``held`` (``sequence_gap``) until the missing one arrives;
5. the events are applied in one transaction (:class:`~sidecar.sync.apply.Applier`); a
   refusal quarantines the whole record, a :class:`~sidecar.sync.apply.Deferred` holds it.

Quarantined records are never applied; held ones are retried whenever their device's previous
batch has been applied. Either way sync goes on with the other records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sidecar import clock
from sidecar.store.db import Store
from sidecar.sync.apply import Applier, Deferred, Refused
from sidecar.sync.client import CloudClient, RecordMeta, Rejected, checksum
from sidecar.sync.envelope import BatchHeader, EnvelopeError, open_batch
from sidecar.sync.keys import Keychain
from sidecar.sync.state import mark_record, set_meta

log = logging.getLogger(__name__)

PAGE = 100


@dataclass
class PullResult:
    records: int = 0
    applied: int = 0
    events: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)


class Puller:
    """One pull pass of one device."""

    def __init__(self, store: Store, client: CloudClient, chain: Keychain) -> None:
        self.store = store
        self.client = client
        self.chain = chain
        self.result = PullResult()

    async def run(self) -> PullResult:
        """Page through the listing from the first unseen record; raises the client's errors."""
        seen_row = await self.store.fetchone("SELECT count(*) FROM sync_records WHERE position >= 0")
        page = int(seen_row[0]) // PAGE + 1 if seen_row else 1
        while True:
            metas = await self.client.list_records(page, PAGE)
            if not metas:
                break
            distinct = {m.id for m in metas}
            for meta in metas:
                await self._one(meta)
            if len(distinct) < PAGE:
                break
            page += 1
        await self._retry_held()
        async with self.store.write() as w:
            await set_meta(w, "sync_last_pull", str(clock.now_ms()))
        return self.result

    async def _one(self, meta: RecordMeta) -> None:
        if await self.store.fetchone("SELECT 1 FROM sync_records WHERE record_id = ?", (meta.id,)) is not None:
            return
        self.result.records += 1
        try:
            blob, header_sum = await self.client.get_record(meta.id)
        except Rejected as exc:
            if exc.status == 404:  # deleted since it was listed: nothing to apply
                return
            raise
        actual = checksum(blob)
        if actual != meta.checksum.lower() or (header_sum and header_sum.lower() != actual):
            await self._quarantine(meta.id, meta.checksum, "checksum_mismatch", None, None)
            return
        try:
            header, events = open_batch(self.chain.keys, blob)
        except EnvelopeError as exc:
            await self._quarantine(meta.id, actual, exc.reason, None, None)
            return
        await self._consider(meta.id, actual, header, events, blob)

    async def _last_seq(self, device: str) -> int:
        row = await self.store.fetchone("SELECT coalesce(max(seq), 0) FROM sync_batches WHERE device_id = ?", (device,))
        return int(row[0]) if row else 0

    async def _consider(self, record_id: str, digest: str, header: BatchHeader, events: list[Any],
                        blob: bytes) -> bool:
        """Decide and apply one authenticated batch; True when it was applied."""
        if header.device == self.store.device_id:
            async with self.store.write() as w:
                await mark_record(w, record_id, digest, "own", device=header.device, seq=header.seq)
            return False
        done = await self.store.fetchone("SELECT checksum FROM sync_batches WHERE device_id = ? AND seq = ?",
                                         (header.device, header.seq))
        if done is not None:
            if done[0] == digest:
                async with self.store.write() as w:
                    await mark_record(w, record_id, digest, "duplicate", device=header.device, seq=header.seq)
            else:
                await self._quarantine(record_id, digest, "replayed_batch", header.device, header.seq)
            return False
        last = await self._last_seq(header.device)
        if header.seq <= last:
            await self._quarantine(record_id, digest, "replayed_batch", header.device, header.seq)
            return False
        if header.seq > last + 1:
            await self._hold(record_id, digest, "sequence_gap", header, blob)
            return False
        try:
            async with self.store.write() as w:
                applier = Applier(w)
                changed = await applier.apply(events)
                await w.execute("INSERT INTO sync_batches (device_id, seq, checksum, record_id, applied_at)"
                                " VALUES (?, ?, ?, ?, ?)", (header.device, header.seq, digest, record_id, clock.now_ms()))
                await mark_record(w, record_id, digest, "applied", device=header.device, seq=header.seq)
        except Deferred as exc:
            await self._hold(record_id, digest, exc.reason, header, blob)
            return False
        except Refused as exc:
            await self._quarantine(record_id, digest, exc.reason, header.device, header.seq)
            return False
        self.result.applied += 1
        self.result.events += changed
        return True

    async def _quarantine(self, record_id: str, digest: str, reason: str, device: str | None, seq: int | None) -> None:
        log.warning("sync record quarantined", extra={"record_id": record_id, "reason": reason})
        async with self.store.write() as w:
            await mark_record(w, record_id, digest, "quarantined", device=device, seq=seq, reason=reason)
        self.result.quarantined.append({"record_id": record_id, "reason": reason})

    async def _hold(self, record_id: str, digest: str, reason: str, header: BatchHeader, blob: bytes) -> None:
        async with self.store.write() as w:
            await mark_record(w, record_id, digest, "held", device=header.device, seq=header.seq, reason=reason,
                              blob=blob)

    async def _retry_held(self) -> None:
        """Apply held records whose turn has come, until a pass makes no progress."""
        progress = True
        while progress:
            progress = False
            rows = await self.store.fetchall(
                "SELECT record_id, checksum, blob FROM sync_records WHERE status = 'held' ORDER BY device_id, batch_seq")
            for record_id, digest, blob in rows:
                try:
                    header, events = open_batch(self.chain.keys, bytes(blob))
                except EnvelopeError as exc:  # the key was removed since: keep it quarantined
                    await self._quarantine(record_id, digest, exc.reason, None, None)
                    continue
                if header.seq == await self._last_seq(header.device) + 1 and \
                        await self._consider(record_id, digest, header, events, bytes(blob)):
                    progress = True


async def pull(store: Store, client: CloudClient, chain: Keychain) -> PullResult:
    """One pull pass (see the module docstring)."""
    return await Puller(store, client, chain).run()
