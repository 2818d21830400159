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
5. the events are applied (:class:`~sidecar.sync.apply.Applier`); a refusal quarantines the
   whole record, a :class:`~sidecar.sync.apply.Deferred` holds it.

Quarantined records are never applied; held ones are retried whenever their device's previous
batch has been applied. Either way sync goes on with the other records.

**Several records per transaction.** Downloaded records are verified and decrypted together
off the event loop (one thread hop per group), then applied as a group in one write
transaction (one durable commit) of at most :data:`GROUP_EVENTS` events. Each record runs in
its own savepoint inside it (:meth:`~sidecar.store.db.Writer.savepoint`): a record that is
refused or deferred is rolled back alone and marked, and the others of the group still apply.
A record's outcome and its ``sync_records`` / ``sync_batches`` rows commit together, so a
crash loses (and a restart redoes) whole groups only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar import clock
from sidecar.background import collector_paused
from sidecar.store.db import Store, Writer
from sidecar.sync.apply import Applier, Deferred, Refused
from sidecar.sync.client import CloudClient, RecordMeta, Rejected, checksum
from sidecar.sync.envelope import BatchHeader, EnvelopeError, open_batch, read_header
from sidecar.sync.keys import Keychain, SyncKey
from sidecar.sync.state import mark_record, set_meta

log = logging.getLogger(__name__)

PAGE = 100
#: most events applied in one transaction: one durable commit per group of records, while a
#: local write waits at most one group's apply (≈ 0.2 s) for the write lock
GROUP_EVENTS = 2_000
#: most records in one transaction (a backlog of small batches)
GROUP_RECORDS = 32
#: a group is applied once its first record has waited this long (s) for the others
GROUP_WAIT_S = 0.5


@dataclass
class PullResult:
    records: int = 0
    applied: int = 0
    events: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Downloaded:
    """A record's blob as the server sent it, with the checksums it came with."""

    id: str
    blob: bytes
    listed_checksum: str
    header_checksum: str = ""


@dataclass
class Opened:
    """A verified and decrypted record, or the reason it cannot be (``failure``)."""

    id: str
    digest: str  # the blob's SHA-256 (the listing's checksum when they differ)
    blob: bytes
    header: BatchHeader | None = None
    events: list[Any] = field(default_factory=list)
    failure: str | None = None


def open_records(keys: Mapping[str, SyncKey], records: Iterable[Downloaded]) -> list[Opened]:
    """Verify checksums and decrypt (steps 1 and 2). CPU only: run in a worker thread."""
    out = []
    for rec in records:
        digest = checksum(rec.blob)
        if digest != rec.listed_checksum.lower() or (rec.header_checksum and rec.header_checksum.lower() != digest):
            out.append(Opened(rec.id, rec.listed_checksum, rec.blob, failure="checksum_mismatch"))
            continue
        try:
            header, events = open_batch(keys, rec.blob)
        except EnvelopeError as exc:
            out.append(Opened(rec.id, digest, rec.blob, failure=exc.reason))
            continue
        out.append(Opened(rec.id, digest, rec.blob, header, events))
    return out


def _size(blob: bytes) -> int:
    """A record's event count from its (unauthenticated) header, to size groups; 0 if unreadable."""
    try:
        return read_header(blob)[0].count
    except EnvelopeError:
        return 0


class RecordGroup:
    """Downloaded records gathered for one transaction. It is full at :data:`GROUP_EVENTS`
    events (a larger record is a group of its own), at :data:`GROUP_RECORDS` records, or
    :data:`GROUP_WAIT_S` after its first record arrived (a slow download still shows progress,
    and a crash redoes little)."""

    def __init__(self) -> None:
        self.records: list[Downloaded] = []
        self._events = 0
        self._started = 0.0

    def add(self, rec: Downloaded) -> bool:
        """Add a record; True when the group is now full."""
        now = time.monotonic()
        if not self.records:
            self._started = now
        self.records.append(rec)
        self._events += _size(rec.blob)
        return (self._events >= GROUP_EVENTS or len(self.records) >= GROUP_RECORDS
                or now - self._started >= GROUP_WAIT_S)


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
            group = RecordGroup()
            for meta in await self._unseen(metas):
                self.result.records += 1
                if (rec := await self._download(meta)) is not None and group.add(rec):
                    await self._apply(group.records)
                    group = RecordGroup()
            if group.records:
                await self._apply(group.records)
            if len(distinct) < PAGE:
                break
            page += 1
        await self._retry_held()
        async with self.store.write() as w:
            await set_meta(w, "sync_last_pull", str(clock.now_ms()))
        return self.result

    async def _unseen(self, metas: Sequence[RecordMeta]) -> list[RecordMeta]:
        """The listing's records not looked at before, each once, in listing order."""
        ids = list(dict.fromkeys(m.id for m in metas))
        seen = {r[0] for r in await self.store.fetchall(
            f"SELECT record_id FROM sync_records WHERE record_id IN ({', '.join('?' * len(ids))})", ids)}
        out: dict[str, RecordMeta] = {}
        for m in metas:
            if m.id not in seen and m.id not in out:
                out[m.id] = m
        return list(out.values())

    async def _download(self, meta: RecordMeta) -> Downloaded | None:
        try:
            blob, header_sum = await self.client.get_record(meta.id)
        except Rejected as exc:
            if exc.status == 404:  # deleted since it was listed: nothing to apply
                return None
            raise
        return Downloaded(meta.id, blob, meta.checksum, header_sum)

    async def _apply(self, group: Sequence[Downloaded], *, held: bool = False) -> int:
        opened = await asyncio.to_thread(open_records, self.chain.keys, group)
        return await apply_records(self.store, opened, self.result, held=held)

    async def _retry_held(self) -> None:
        """Apply held records whose turn has come, until a pass makes no progress."""
        while True:
            rows = await self.store.fetchall(
                "SELECT record_id, checksum, blob FROM sync_records WHERE status = 'held' ORDER BY device_id, batch_seq")
            if not rows:
                return
            # a held blob was verified when it arrived; it is opened again (a key may have been removed since)
            applied, group = 0, RecordGroup()
            for r in rows:
                if group.add(Downloaded(r[0], bytes(r[2]), r[1])):
                    applied += await self._apply(group.records, held=True)
                    group = RecordGroup()
            if group.records:
                applied += await self._apply(group.records, held=True)
            if not applied:
                return


async def apply_records(store: Store, records: Sequence[Opened], result: PullResult, *, held: bool = False) -> int:
    """Decide and apply opened records in order, in one transaction, each in its own savepoint
    (steps 3 to 5); returns how many were applied and adds to ``result``. ``held``: records
    already held, retried only when next in their device's sequence (others stay held)."""
    applied = 0
    quarantined: list[dict[str, Any]] = []
    async with store.write() as w:
        # a group's rows and change-log entries (a few objects per event, none cyclic) live until
        # its commit: collecting meanwhile would traverse them, and every few groups the whole
        # heap, for nothing (a quarter of the apply's CPU in bench_sync)
        with collector_paused():
            for rec in records:
                outcome = await _consider(store.device_id, w, rec, held=held)
                if isinstance(outcome, int):
                    applied += 1
                    result.events += outcome
                elif outcome is not None:
                    quarantined.append({"record_id": rec.id, "reason": outcome})
    result.applied += applied
    for q in quarantined:  # told once the group's commit is durable
        log.warning("sync record quarantined", extra=q)
    result.quarantined.extend(quarantined)
    return applied


async def _consider(device_id: str, w: Writer, rec: Opened, *, held: bool) -> int | str | None:
    """One record inside the group's transaction: the number of events applied, a quarantine
    reason, or None (skipped, held, or left as it was)."""
    if rec.failure is not None or rec.header is None:
        return await _quarantine(w, rec, rec.failure or "bad_format", None, None)
    header = rec.header
    if header.device == device_id:
        await mark_record(w, rec.id, rec.digest, "own", device=header.device, seq=header.seq)
        return None
    done = await w.fetchone("SELECT checksum FROM sync_batches WHERE device_id = ? AND seq = ?",
                            (header.device, header.seq))
    if done is not None:
        if done[0] != rec.digest:
            return await _quarantine(w, rec, "replayed_batch", header.device, header.seq)
        await mark_record(w, rec.id, rec.digest, "duplicate", device=header.device, seq=header.seq)
        return None
    row = await w.fetchone("SELECT coalesce(max(seq), 0) FROM sync_batches WHERE device_id = ?", (header.device,))
    last = int(row[0]) if row else 0
    if header.seq <= last:
        return await _quarantine(w, rec, "replayed_batch", header.device, header.seq)
    if header.seq > last + 1:
        if not held:
            await _hold(w, rec, "sequence_gap", header)
        return None
    try:
        async with w.savepoint():  # a refused or deferred record is rolled back alone
            changed = await Applier(w).apply(rec.events)
            await w.execute("INSERT INTO sync_batches (device_id, seq, checksum, record_id, applied_at)"
                            " VALUES (?, ?, ?, ?, ?)", (header.device, header.seq, rec.digest, rec.id, clock.now_ms()))
            await mark_record(w, rec.id, rec.digest, "applied", device=header.device, seq=header.seq)
    except Deferred as exc:
        await _hold(w, rec, exc.reason, header)
        return None
    except Refused as exc:
        return await _quarantine(w, rec, exc.reason, header.device, header.seq)
    return changed


async def _quarantine(w: Writer, rec: Opened, reason: str, device: str | None, seq: int | None) -> str:
    await mark_record(w, rec.id, rec.digest, "quarantined", device=device, seq=seq, reason=reason)
    return reason


async def _hold(w: Writer, rec: Opened, reason: str, header: BatchHeader) -> None:
    await mark_record(w, rec.id, rec.digest, "held", device=header.device, seq=header.seq, reason=reason, blob=rec.blob)


async def pull(store: Store, client: CloudClient, chain: Keychain) -> PullResult:
    """One pull pass (see the module docstring)."""
    return await Puller(store, client, chain).run()
