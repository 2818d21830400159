"""Backup and restore: a restored fresh data dir equals the original; a truncated or altered
backup is refused with a clear error and changes nothing; restore then pulls newer events."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import Conflict
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from sidecar.sync import backup
from sidecar.sync.keys import Keychain, SyncKey
from tests.sync.conftest import CLOUD_TOKEN, Cloud
from tests.sync.harness import domain_hash, open_device


async def _filled(path: Path) -> tuple[Store, Repository]:
    store = await Store.open(path / "sidecar.db")
    repo = Repository(store)
    client = await repo.create("clients", {"name": "Acme"})
    project = await repo.create("projects", {"name": "Apollo", "clientId": client.id})
    for i in range(50):
        task = await repo.create("tasks", {"title": f"task {i}", "projectId": project.id, "assignee": ["a", "b"]})
        await repo.create("taskComments", {"taskId": task.id, "author": "me", "content": "ok " * (i + 1)})
    await repo.create("notes", {"title": "Plan", "content": "# Plan\n" + "words " * 2000})
    await repo.create("timelines", {"projectId": project.id, "title": "Launch", "date": 1_800_000_000_000})
    return store, repo


async def test_restore_on_a_fresh_data_dir_equals_the_original(tmp_path: Path) -> None:
    chain = Keychain.of(SyncKey.generate())
    original, _ = await _filled(tmp_path / "a")
    made = await backup.create(original, chain, tmp_path / "out")
    assert made.path.exists() and made.chunks >= 1 and made.size_bytes < made.plain_bytes
    assert b"Apollo" not in made.path.read_bytes()
    fresh = await Store.open(tmp_path / "b" / "sidecar.db")
    try:
        got = await backup.restore(fresh, Keychain.parse(chain.dump()), made.path)
        assert got["events"] == (await original.fetchone("SELECT count(*) FROM change_log"))[0]  # type: ignore[index]
        assert await domain_hash(fresh) == await domain_hash(original)
        assert fresh.device_id != original.device_id
        assert (await fresh.fetchone("PRAGMA integrity_check"))[0] == "ok"  # type: ignore[index]
        with pytest.raises(Conflict) as exc:
            await backup.restore(fresh, chain, made.path)
        assert exc.value.code == "not_fresh"
        # new local stamps sort after every restored one
        newest = (await fresh.fetchone("SELECT max(hlc) FROM change_log"))[0]  # type: ignore[index]
        row = await Repository(fresh).create("notes", {"title": "after"})
        mine = await fresh.fetchone("SELECT hlc FROM change_log WHERE entity_id = ?", (row.id,))
        assert mine is not None and mine[0] > newest
    finally:
        await fresh.close()
        await original.close()


def _header_only(blob: bytes) -> bytes:
    import io

    from sidecar.sync.stream import read_stream_header

    return read_stream_header(io.BytesIO(blob))[1]


@pytest.mark.parametrize("damage, reason", [
    (_header_only, "truncated"),
    (lambda b: b[: len(b) - 100], "auth_failed"),  # cut inside the last chunk
    (lambda b: b[:-70] + bytes([b[-70] ^ 1]) + b[-69:], "auth_failed"),
    (lambda b: b[:300] + bytes([b[300] ^ 1]) + b[301:], "auth_failed"),
    (lambda b: b"not a backup at all", "bad_format"),
])
async def test_a_damaged_backup_is_refused_and_changes_nothing(tmp_path: Path, damage, reason) -> None:  # type: ignore[no-untyped-def]
    chain = Keychain.of(SyncKey.generate())
    original, _ = await _filled(tmp_path / "a")
    made = await backup.create(original, chain, tmp_path / "out")
    await original.close()
    bad = tmp_path / "bad.scbk"
    bad.write_bytes(damage(made.path.read_bytes()))
    fresh = await Store.open(tmp_path / "b" / "sidecar.db")
    try:
        with pytest.raises(backup.BackupInvalid) as exc:
            await backup.restore(fresh, chain, bad)
        assert exc.value.code == "backup_invalid" and exc.value.detail == {"reason": reason}
        assert await backup.is_fresh(fresh)
        with pytest.raises(backup.BackupInvalid):
            backup.verify(chain, bad)
    finally:
        await fresh.close()
    assert backup.verify(chain, made.path)["rows"]["tasks"] == 50  # type: ignore[index]
    with pytest.raises(backup.BackupInvalid) as wrong:
        backup.verify(Keychain.of(SyncKey.generate()), made.path)
    assert wrong.value.detail == {"reason": "unknown_key"}


async def test_restored_device_pulls_newer_events_and_does_not_reapply_old_ones(tmp_path: Path, cloud: Cloud) -> None:
    chain = Keychain.of(SyncKey.generate())
    a = await open_device(tmp_path / "a", cloud.base, chain, CLOUD_TOKEN)
    other = await open_device(tmp_path / "o", cloud.base, Keychain.parse(chain.dump()), CLOUD_TOKEN)
    try:
        await a.repo.create("notes", {"title": "before the backup"})
        await other.repo.create("notes", {"title": "from another device"})
        await other.sync()
        await a.sync()
        made = await backup.create(a.store, chain, tmp_path / "out")
        await a.repo.create("notes", {"title": "after the backup"})
        await a.sync()
        b = await open_device(tmp_path / "b", cloud.base, Keychain.parse(chain.dump()), CLOUD_TOKEN)
        try:
            await backup.restore(b.store, b.chain, made.path)
            result = await b.pull()
            assert result.events == 1  # only what was newer than the backup
            assert await domain_hash(b.store) == await domain_hash(a.store)
            assert not result.quarantined
        finally:
            await b.close()
    finally:
        await a.close()
        await other.close()
