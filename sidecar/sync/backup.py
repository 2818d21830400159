"""Backup and restore (issue 11): a consistent snapshot, compressed, encrypted in chunks.

A backup is ``VACUUM INTO`` a temporary file (a transactionally consistent copy taken while
the app keeps running), zlib-compressed, then sealed with :mod:`sidecar.sync.stream` (fixed
64 KiB chunks, counter nonces, last-chunk flag). It is uploaded with ``PUT /backup`` when sync
is on and/or written to the configured local folder as ``sidecar-backup-<timestamp>.scbk``.

Restore runs on a fresh data dir only (no domain rows, empty change log). It decrypts and
verifies everything into a temporary database first (``PRAGMA integrity_check``), then copies
in one transaction of the store's one write path (``Store.write``): the domain tables, the change log (events keep their ids, devices and
HLCs; ones the old device had not pushed yet are pushed by this one), user settings, and the
sync bookkeeping — the old device's own batches become "applied" batches of that device, so a
later pull applies only what is newer. Agent history and the ingest queue are not part of a
backup. The new device keeps its own device id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import sqlite3
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sidecar import clock
from sidecar.errors import Conflict, SidecarError
from sidecar.store.db import Store, Writer
from sidecar.store.entities import ENTITIES
from sidecar.sync.keys import Keychain
from sidecar.sync.stream import StreamError, decrypt_file, encrypt_file

FORMAT_VERSION = 1
SUFFIX = ".scbk"
_COPY = 1 << 20


class BackupInvalid(SidecarError):
    """422 ``backup_invalid``: the backup is truncated, altered, for another key, or not one."""

    status, code = 422, "backup_invalid"


@dataclass
class BackupFile:
    """A sealed backup on disk and its metadata."""

    path: Path
    timestamp: int
    chunks: int
    size_bytes: int
    checksum: str
    plain_bytes: int


@contextlib.contextmanager
def _workdir(data_dir: Path) -> Iterator[Path]:
    """A private temporary folder inside the data dir (same file system, removed after)."""
    tmp = Path(tempfile.mkdtemp(prefix=".backup-", dir=data_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compress(src: Path, dst: Path) -> None:
    comp = zlib.compressobj(6)
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(_COPY):
            fout.write(comp.compress(chunk))
        fout.write(comp.flush())


def _decompress(src: Path, dst: Path) -> None:
    dec = zlib.decompressobj()
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(_COPY):
            fout.write(dec.decompress(chunk))
        fout.write(dec.flush())
        if not dec.eof:
            raise zlib.error("incomplete stream")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY):
            h.update(chunk)
    return h.hexdigest()


async def create(store: Store, chain: Keychain, out_dir: Path) -> BackupFile:
    """Snapshot, compress and seal the database into ``out_dir``; returns the sealed file."""
    now = clock.now_ms()
    with _workdir(store.path.parent) as tmp:
        snapshot = tmp / "snapshot.db"
        await store.fetchall("VACUUM INTO ?", (str(snapshot),))
        plain = snapshot.stat().st_size

        def seal() -> tuple[int, Path]:
            packed = tmp / "snapshot.db.z"
            _compress(snapshot, packed)
            sealed = tmp / f"sidecar-backup-{now}{SUFFIX}"
            chunks = encrypt_file(chain.current_key, packed, sealed)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / sealed.name
            shutil.move(str(sealed), target)
            return chunks, target

        chunks, target = await asyncio.to_thread(seal)
    return BackupFile(target, now, chunks, target.stat().st_size, await asyncio.to_thread(_sha256, target), plain)


def open_backup(chain: Keychain, sealed: Path, work: Path) -> Path:
    """Decrypt, decompress and integrity-check ``sealed`` into ``work``; returns the database.

    Raises:
        BackupInvalid: with the reason (``truncated``, ``auth_failed``, ``unknown_key``,
            ``bad_format``, ``corrupt``).
    """
    packed, db_path = work / "restore.db.z", work / "restore.db"
    try:
        decrypt_file(chain.keys, sealed, packed)
    except StreamError as exc:
        raise BackupInvalid(f"the backup cannot be used: {exc}", detail={"reason": exc.reason}) from None
    try:
        _decompress(packed, db_path)
        db = sqlite3.connect(db_path)
        try:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
    except (zlib.error, sqlite3.DatabaseError) as exc:
        raise BackupInvalid(f"the backup decrypted but is not a sound database: {exc}",
                            detail={"reason": "corrupt"}) from None
    if result != "ok":
        raise BackupInvalid(f"the backup's database fails its integrity check: {result}", detail={"reason": "corrupt"})
    return db_path


def verify(chain: Keychain, sealed: Path) -> dict[str, object]:
    """Decrypt and integrity-check a backup without replacing anything → figures of its content.

    Raises BackupInvalid."""
    with tempfile.TemporaryDirectory() as tmp:
        db_path = open_backup(chain, sealed, Path(tmp))
        db = sqlite3.connect(db_path)
        try:
            rows = {spec.name: db.execute(f"SELECT count(*) FROM {spec.table}").fetchone()[0]
                    for spec in ENTITIES.values()}
            events = db.execute("SELECT count(*) FROM change_log").fetchone()[0]
        finally:
            db.close()
    return {"ok": True, "rows": rows, "events": events}


def _quote(text: str) -> str:
    return text.replace("'", "''")


async def _copy(w: Writer, source: sqlite3.Connection, select: str, table: str, columns: str = "",
                verb: str = "INSERT") -> int:
    """Copy the rows of ``select`` on the restored database into ``table``, a batch at a time."""
    cur = source.execute(select)
    width = len(cur.description)
    sql = f"{verb} INTO {table}{f' ({columns})' if columns else ''} VALUES ({', '.join('?' * width)})"
    total = 0
    while batch := await asyncio.to_thread(cur.fetchmany, 5000):
        await w.db.executemany(sql, batch)
        total += len(batch)
    return total


async def is_fresh(store: Store) -> bool:
    """True when the data dir holds no domain rows and no change-log events."""
    row = await store.fetchone("SELECT count(*) FROM change_log")
    if row is None or row[0]:
        return False
    for spec in ENTITIES.values():
        found = await store.fetchone(f"SELECT 1 FROM {spec.table} LIMIT 1")
        if found is not None:
            return False
    return True


async def restore(store: Store, chain: Keychain, sealed: Path) -> dict[str, int]:
    """Restore ``sealed`` into this (fresh) database → ``{"rows", "events"}`` copied.

    Raises:
        Conflict: ``not_fresh`` — the data dir already has data (restore never merges or replaces).
        BackupInvalid: the backup is unusable; nothing was changed.
    """
    if not await is_fresh(store):
        raise Conflict("restore needs a fresh data dir: this one already has data", code="not_fresh")
    with _workdir(store.path.parent) as tmp:
        db_path = await asyncio.to_thread(open_backup, chain, sealed, tmp)
        source = await asyncio.to_thread(sqlite3.connect, db_path, check_same_thread=False)
        try:
            async with store.write() as w:
                if not await is_fresh(store):
                    raise Conflict("restore needs a fresh data dir: this one already has data", code="not_fresh")
                rows = 0
                # Parents before children (foreign keys are checked on each insert).
                for spec in ENTITIES.values():
                    rows += await _copy(w, source, f"SELECT * FROM {spec.table}", spec.table)
                events = await _copy(
                    w, source, "SELECT event_id, device_id, hlc, entity, entity_id, op, fields, origin, synced_at"
                    " FROM change_log ORDER BY seq", "change_log",
                    "event_id, device_id, hlc, entity, entity_id, op, fields, origin, synced_at")
                await _copy(w, source, "SELECT * FROM settings", "settings", verb="INSERT OR REPLACE")
                await _copy(w, source, "SELECT * FROM sync_batches", "sync_batches", verb="INSERT OR IGNORE")
                await _copy(w, source, "SELECT * FROM sync_records WHERE status != 'own'", "sync_records",
                            verb="INSERT OR IGNORE")
                old = source.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
                if old is not None:
                    # The old device's acknowledged batches: applied batches of that device here.
                    now = clock.now_ms()
                    await _copy(w, source, f"SELECT '{_quote(old[0])}', seq, checksum, record_id, {now} FROM sync_outbox"
                                " WHERE acked_at IS NOT NULL", "sync_batches", verb="INSERT OR IGNORE")
                    await _copy(w, source, f"SELECT record_id, -seq, '{_quote(old[0])}', seq, checksum, 'applied', "
                                f"NULL, NULL, {now} FROM sync_outbox WHERE acked_at IS NOT NULL", "sync_records",
                                verb="INSERT OR IGNORE")
                newest = await w.fetchone("SELECT max(hlc) FROM change_log")
        finally:
            source.close()
        if newest and newest[0]:
            store.hlc.receive(newest[0])  # new local stamps sort after every restored one
    return {"rows": rows, "events": events}
