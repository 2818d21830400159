"""Pull applies several downloaded records in one transaction (counted in the real WAL file),
each record in its own savepoint: a record refused half-way applies nothing of itself and the
others of the group still apply; the result equals one transaction per record; and a group that
fails as a whole leaves neither its events nor its bookkeeping, so the next pull redoes it."""

from __future__ import annotations

import os
from typing import Any

import pytest
import uuid6

from sidecar import clock
from sidecar.store.writer import ChangeEntry
from sidecar.sync import pull as pull_mod
from sidecar.sync import state
from sidecar.sync.envelope import seal
from tests.sync.harness import Device, domain_hash
from tests.test_group_commit import wal_commits

FORGER = "0190aaaa-0000-7000-8000-00000000f00d"


def _insert(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    now = clock.now_ms()
    return {"event_id": str(uuid6.uuid7()), "device_id": FORGER, "hlc": f"{now:015d}-00000000-{FORGER[-12:]}",
            "entity": entity, "entity_id": str(uuid6.uuid7()), "op": "insert",
            "fields": {**fields, "createdAt": now, "updatedAt": now}}


async def _records(a: Device) -> list[str]:
    """Seven records on the server: six of device a, and in the middle one of another device
    whose first event (a task) is valid and whose second (a note without a title) breaks the
    schema, so the record fails after part of it was written."""
    ids = []
    for i in range(6):
        if i == 3:
            bad = seal(a.chain.current_key, device=FORGER, seq=1, salt=os.urandom(32), events=[
                _insert("tasks", {"title": "half applied", "status": "todo", "priority": "low", "assignee": []}),
                _insert("notes", {"title": "", "content": "no title"})])
            ids.append(await a.client.post_record(bad))
        note = await a.repo.create("notes", {"title": f"note {i}"})
        await a.repo.update("notes", note.id, {"content": f"edited {i}"})
        await a.push()
    return ids


async def _log(d: Device) -> list[tuple[Any, ...]]:
    rows = await d.store.fetchall("SELECT event_id, entity, entity_id, op, fields, hlc, origin FROM change_log"
                                  " ORDER BY seq")
    return [tuple(r) for r in rows]


async def test_records_share_a_transaction_and_a_refused_one_applies_nothing(
        devices: list[Device], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = devices
    (bad_id,) = await _records(a)
    monkeypatch.setattr(pull_mod, "GROUP_WAIT_S", 60.0)  # sized by events and records only
    told: list[ChangeEntry] = []
    b.store.on_commit(told.extend)
    before = wal_commits(b.store.path)
    result = await b.pull()
    grouped_commits = wal_commits(b.store.path) - before
    assert result.records == 7 and result.applied == 6
    assert result.quarantined == [{"record_id": bad_id, "reason": "invalid_row"}]
    assert grouped_commits == 2  # the seven records in one transaction, then the pull's timestamp
    titles = {r[0] for r in await b.store.fetchall("SELECT title FROM notes")}
    assert titles == {f"note {i}" for i in range(6)}
    assert await b.store.fetchall("SELECT title FROM tasks") == []  # its valid first event was rolled back
    assert all(e.entity == "notes" and e.device_id == a.store.device_id for e in told)  # nothing of it announced

    # one transaction per record gives the same data, change log and bookkeeping
    monkeypatch.setattr(pull_mod, "GROUP_RECORDS", 1)
    before = wal_commits(c.store.path)
    await c.pull()
    assert wal_commits(c.store.path) - before == 8
    assert await domain_hash(c.store) == await domain_hash(b.store) == await domain_hash(a.store)
    assert await _log(c) == await _log(b)
    bookkeeping = "SELECT record_id, position, device_id, batch_seq, status, reason FROM sync_records ORDER BY position"
    assert [tuple(r) for r in await c.store.fetchall(bookkeeping)] == \
        [tuple(r) for r in await b.store.fetchall(bookkeeping)]


async def test_a_group_that_fails_whole_leaves_nothing_and_the_next_pull_redoes_it(
        devices: list[Device], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = devices
    await _records(a)
    monkeypatch.setattr(pull_mod, "GROUP_WAIT_S", 60.0)
    real = state.mark_record
    calls = 0

    async def crash_at_the_fifth(*args: Any, **kwargs: Any) -> None:  # as if the process died there
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("power cut")
        await real(*args, **kwargs)

    monkeypatch.setattr(pull_mod, "mark_record", crash_at_the_fifth)
    with pytest.raises(RuntimeError):
        await b.pull()
    for table in ("notes", "tasks", "sync_records", "sync_batches"):
        assert (await b.store.fetchone(f"SELECT count(*) FROM {table}"))[0] == 0, table  # type: ignore[index]
    assert (await b.store.fetchone("SELECT count(*) FROM change_log"))[0] == 0  # type: ignore[index]
    monkeypatch.setattr(pull_mod, "mark_record", real)
    result = await b.pull()
    assert result.records == 7 and result.applied == 6
    assert await domain_hash(b.store) == await domain_hash(a.store)
    dup = await b.store.fetchone("SELECT count(*) - count(DISTINCT event_id) FROM change_log")
    assert dup is not None and dup[0] == 0


async def test_the_collector_pause_ends_with_the_group_even_when_it_fails(
        devices: list[Device], monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's apply pauses Python's garbage collector; it is running again afterwards, also
    after a failure, and a pause someone else made is left to them."""
    import gc

    a, b, _ = devices
    await _records(a)
    seen: list[bool] = []
    real = pull_mod.Applier.apply

    async def watching(self: Any, events: list[Any]) -> int:
        seen.append(gc.isenabled())
        return await real(self, events)

    monkeypatch.setattr(pull_mod.Applier, "apply", watching)
    monkeypatch.setattr(pull_mod, "mark_record", _failing)
    with pytest.raises(RuntimeError):
        await b.pull()
    assert seen == [False] and gc.isenabled()
    monkeypatch.setattr(pull_mod, "mark_record", state.mark_record)
    gc.disable()
    try:
        await b.pull()
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert (await b.store.fetchone("SELECT count(*) FROM notes"))[0] == 6  # type: ignore[index]


async def _failing(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("disk gone")
