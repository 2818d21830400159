"""Push, pull and apply between devices through the reference server: convergence, LWW,
tombstones, idempotency, tampering, and no plaintext on the server."""

from __future__ import annotations

import os

from sidecar import clock
from sidecar.sync.envelope import seal
from sidecar.sync.keys import SyncKey
from tests.sync.conftest import Cloud
from tests.sync.harness import Device, domain_hash


async def converge(devs: list[Device]) -> None:
    for _ in range(2):
        for d in devs:
            await d.sync()
    hashes = {await domain_hash(d.store) for d in devs}
    assert len(hashes) == 1, "devices did not converge"


async def test_edits_on_three_devices_converge_and_the_server_sees_no_plaintext(devices: list[Device],
                                                                                cloud: Cloud) -> None:
    a, b, c = devices
    project = await a.repo.create("projects", {"name": "Project Nightingale"})
    await a.repo.create("notes", {"title": "Quarterly secret", "content": "The merger closes on Friday",
                                  "projectId": project.id})
    await converge(devices)
    task = await b.repo.create("tasks", {"title": "Call the lawyer", "projectId": project.id, "assignee": ["ann"]})
    await c.repo.create("timelines", {"projectId": project.id, "title": "Signing day", "date": 1_800_000_000_000})
    await converge(devices)
    await a.repo.update("tasks", task.id, {"status": "done"})
    await c.repo.update("tasks", task.id, {"priority": "high"})
    await converge(devices)
    got = await b.repo.get("tasks", task.id)
    assert (got.status, got.priority) == ("done", "high")  # both fields kept: LWW is per field
    stored = cloud.stored_bytes()
    for text in ("Project Nightingale", "Quarterly secret", "merger closes", "Call the lawyer", "Signing day", "lawyer"):
        assert text.encode() not in stored
    # remote events are never pushed again: each device pushed only what it wrote
    for d in devices:
        row = await d.store.fetchone("SELECT count(*) FROM change_log WHERE origin = 'local' AND synced_at IS NULL")
        assert row is not None and row[0] == 0


async def test_same_field_last_writer_wins_by_hlc(devices: list[Device]) -> None:
    a, b, _ = devices
    note = await a.repo.create("notes", {"title": "Draft"})
    await converge(devices[:2])
    await a.repo.update("notes", note.id, {"title": "From A"})
    await b.repo.update("notes", note.id, {"title": "From B (later)"})
    await converge(devices[:2])
    assert (await a.repo.get("notes", note.id)).title == "From B (later)"


async def test_delete_wins_over_a_concurrent_update(devices: list[Device]) -> None:
    a, b, _ = devices
    project = await a.repo.create("projects", {"name": "Doomed"})
    await a.repo.create("timelines", {"projectId": project.id, "title": "Kickoff", "date": 1})
    await converge(devices[:2])
    await a.repo.delete("projects", project.id)
    await b.repo.update("projects", project.id, {"name": "Renamed after the delete"})  # later HLC
    await b.repo.create("timelines", {"projectId": project.id, "title": "Made on B meanwhile", "date": 2})
    await converge(devices[:2])
    for d in (a, b):
        assert (await d.store.fetchone("SELECT count(*) FROM projects"))[0] == 0  # type: ignore[index]
        assert (await d.store.fetchone("SELECT count(*) FROM timelines"))[0] == 0  # type: ignore[index]


async def test_a_retried_push_whose_response_was_lost_is_applied_once(devices: list[Device], cloud: Cloud) -> None:
    a, b, _ = devices
    await a.repo.create("notes", {"title": "Only once"})
    cloud.fault("lost_response", path="/api/v1/storage/records")
    await a.push()
    assert cloud.stats()["records"] == 2
    await b.pull()
    rows = await b.store.fetchall("SELECT status FROM sync_records ORDER BY position")
    assert [r[0] for r in rows] == ["applied", "duplicate"]
    assert (await b.store.fetchone("SELECT count(*) FROM notes"))[0] == 1  # type: ignore[index]
    assert (await b.store.fetchone("SELECT count(*) FROM change_log"))[0] == 1  # type: ignore[index]


async def test_listing_with_duplicates_and_growth_while_paging(devices: list[Device], cloud: Cloud) -> None:
    a, b, _ = devices
    from sidecar.sync import push as push_mod

    push_mod.BATCH_EVENTS, old = 1, push_mod.BATCH_EVENTS
    try:
        for i in range(130):
            await a.repo.create("notes", {"title": f"n{i}"})
        await a.push()
    finally:
        push_mod.BATCH_EVENTS = old
    cloud.fault("duplicates", count=5)
    await b.pull()
    assert (await b.store.fetchone("SELECT count(*) FROM notes"))[0] == 130  # type: ignore[index]
    await a.repo.create("notes", {"title": "later"})
    await a.push()
    await b.pull()
    assert (await b.store.fetchone("SELECT count(*) FROM notes"))[0] == 131  # type: ignore[index]


def _event(device: str, title: str, hlc: str | None = None) -> dict[str, object]:
    import uuid6

    now = clock.now_ms()
    return {"event_id": str(uuid6.uuid7()), "device_id": device, "hlc": hlc or f"{now:015d}-00000000-{device[-12:]}",
            "entity": "notes", "entity_id": str(uuid6.uuid7()), "op": "insert",
            "fields": {"title": title, "content": "", "projectId": None, "createdAt": now, "updatedAt": now}}


async def test_tampered_records_are_quarantined_and_sync_goes_on(devices: list[Device], cloud: Cloud) -> None:
    a, b, _ = devices
    key = a.chain.current_key
    dev = "0190aaaa-0000-7000-8000-00000000beef"
    s = lambda seq, evs, k=key: seal(k, device=dev, seq=seq, events=evs, salt=os.urandom(32))  # noqa: E731
    good1 = s(1, [_event(dev, "good one")])
    await a.client.post_record(good1)
    flipped = bytearray(s(2, [_event(dev, "flipped")]))
    flipped[-5] ^= 1
    await a.client.post_record(bytes(flipped))
    await a.client.post_record(s(2, [_event(dev, "wrong key")], SyncKey.generate()))
    await a.client.post_record(s(1, [_event(dev, "replay with other content")]))
    await a.client.post_record(good1)  # a plain duplicate
    future = f"{clock.now_ms() + 3_600_000:015d}-00000000-x"
    await a.client.post_record(s(2, [_event(dev, "from the future", future)]))
    await a.client.post_record(s(4, [_event(dev, "after a gap")]))
    await a.repo.create("notes", {"title": "honest note"})
    await a.push()
    result = await b.pull()
    reasons = sorted(q["reason"] for q in result.quarantined)
    assert reasons == ["auth_failed", "clock_skew", "replayed_batch", "unknown_key"]
    titles = {r[0] for r in await b.store.fetchall("SELECT title FROM notes")}
    assert titles == {"good one", "honest note"}
    held = await b.store.fetchall("SELECT batch_seq, reason FROM sync_records WHERE status = 'held'")
    assert [tuple(r) for r in held] == [(4, "sequence_gap")]
    # the gap fills: seq 2, 3 arrive; the held batch 4 then applies too
    await a.client.post_record(s(2, [_event(dev, "two")]))
    await a.client.post_record(s(3, [_event(dev, "three")]))
    await b.pull()
    titles = {r[0] for r in await b.store.fetchall("SELECT title FROM notes")}
    assert titles == {"good one", "honest note", "two", "three", "after a gap"}


async def test_a_flipped_byte_on_the_server_disk_is_caught_by_the_checksum(devices: list[Device], cloud: Cloud) -> None:
    a, b, _ = devices
    await a.repo.create("notes", {"title": "x"})
    await a.push()
    (path,) = list((cloud.data / "records").glob("*.bin"))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    result = await b.pull()
    assert [q["reason"] for q in result.quarantined] == ["checksum_mismatch"]
    assert (await b.store.fetchone("SELECT count(*) FROM notes"))[0] == 0  # type: ignore[index]


async def test_device_local_memory_events_stay_on_the_device(devices: list[Device], cloud: Cloud) -> None:
    """The agent's memory (search's ``memories`` change-log entries) is not a synced table: its
    events are never pushed (another device would quarantine them as ``bad_event``), and the
    outbox moves past them, so the task written after them still arrives."""
    a, b, _ = devices
    async with a.store.write() as w:
        await w.record("memories", "0190aaaa-0000-7000-8000-00000000cafe", "insert", {"tier": "core", "updatedAt": 1})
    await a.repo.create("tasks", {"title": "after a memory"})
    await a.push()
    result = await b.pull()
    assert result.quarantined == []
    titles = {r[0] for r in await b.store.fetchall("SELECT title FROM tasks")}
    assert titles == {"after a memory"}
    row = await a.store.fetchone("SELECT count(*) FROM change_log WHERE origin = 'local' AND synced_at IS NULL")
    assert row is not None and row[0] == 0
