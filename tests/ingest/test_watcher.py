"""Real folders, real watchdog events, real SQLite: what lands in a watched folder becomes
suggested items exactly once, whatever the editor or the user does to the files."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from watchdog.observers import Observer

from sidecar.appstate import NOTIFICATIONS
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.queue import DELETED
from sidecar.settings import Settings
from tests.fakes.memory_keyring import MemoryKeyring
from tests.ingest.harness import Harness, running, until_async


async def provenance(h: Harness) -> list[dict[str, Any]]:
    rows = await h.service.pipeline.store.fetchall("SELECT * FROM ingest_provenance ORDER BY id")
    return [dict(r) for r in rows]


async def test_editor_style_save_adds_only_the_new_item(ing: Harness, inbox: Path) -> None:
    plan = inbox / "plan.md"
    plan.write_text("- [ ] Book the venue\n")
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    assert await ing.titles() == ["Book the venue"]
    # vim/VS Code style: write a temp file next to it, then rename it over the original
    for tmp_name in (".plan.md.swp", "plan.md.tmp", "~$plan.md"):
        (inbox / tmp_name).write_text("scratch - [ ] not a task\n")
    tmp = inbox / "plan.md.tmp"
    tmp.write_text("- [ ] Book the venue\n- [ ] Order the cake\n")
    os.replace(tmp, plan)
    await ing.settle(w["id"])
    assert await ing.titles() == ["Book the venue", "Order the cake"]
    files = await ing.files(w["id"])
    assert [f["path"] for f in files] == [str(plan)], "temp, hidden and lock files are never queued"
    assert files[0]["status"] == "done"
    # saving the same content again creates nothing
    os.utime(plan)
    plan.write_text(plan.read_text())
    await ing.settle(w["id"])
    assert len(await ing.entities("tasks")) == 2


async def test_burst_of_1000_files(ing: Harness, inbox: Path) -> None:
    w = await ing.create_watch(inbox, dataTypes=["tasks"])
    await ing.settle(w["id"])
    started = time.monotonic()
    for i in range(1000):
        (inbox / f"note-{i:04d}.md").write_text(f"# Note {i}\n\n- [ ] Task number {i}\n")
    await ing.settle(w["id"], timeout=90)
    elapsed = time.monotonic() - started
    files = await ing.files(w["id"])
    assert len(files) == 1000 and {f["status"] for f in files} == {"done"}
    tasks = await ing.entities("tasks")
    assert len(tasks) == 1000 and len({t["title"] for t in tasks}) == 1000
    assert elapsed < 60, elapsed
    runs = await ing.runs(w["id"])
    assert sum(r["itemsProcessed"] for r in runs) >= 1000
    assert sum(r["itemsCreated"] for r in runs) == 1000
    assert all(r["status"] == "success" for r in runs)


async def test_api_stays_responsive_during_a_burst(ing: Harness, inbox: Path) -> None:
    w = await ing.create_watch(inbox, dataTypes=["tasks"])
    for i in range(300):
        (inbox / f"n{i}.md").write_text(f"- [ ] Item {i}\n" * 3)
    worst = 0.0
    deadline = time.monotonic() + 60
    while not await ing.idle(w["id"]) or len(await ing.entities("tasks")) < 300:
        t0 = time.monotonic()
        await ing.ok("GET", "/v1/health")
        worst = max(worst, time.monotonic() - t0)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert worst < 0.5, f"health took {worst:.3f}s during ingest"


async def test_moves_follow_the_file_and_create_nothing(ing: Harness, inbox: Path) -> None:
    (inbox / "a.md").write_text("- [ ] Alpha\n")
    sub = inbox / "sub"
    sub.mkdir()
    (sub / "b.md").write_text("- [ ] Beta\n")
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    os.rename(inbox / "a.md", inbox / "a-renamed.md")
    os.rename(sub, inbox / "moved-sub")
    await ing.settle(w["id"])
    files = {f["path"]: f for f in await ing.files(w["id"])}
    assert set(files) == {str(inbox / "a-renamed.md"), str(inbox / "moved-sub" / "b.md")}
    assert {f["status"] for f in files.values()} == {"done"}
    assert await ing.titles() == ["Alpha", "Beta"]
    prov = await provenance(ing)
    assert sorted(p["source_path"] for p in prov) == sorted(files)
    assert {p["state"] for p in prov} == {"active"}


async def test_move_out_and_delete_keep_items_and_mark_provenance_missing(ing: Harness, inbox: Path,
                                                                         tmp_path: Path) -> None:
    (inbox / "a.md").write_text("- [ ] Alpha\n")
    (inbox / "b.md").write_text("- [ ] Beta\n")
    nested = inbox / "x" / "y"
    nested.mkdir(parents=True)
    (nested / "c.md").write_text("- [ ] Gamma\n")
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    (inbox / "a.md").unlink()
    os.rename(inbox / "b.md", tmp_path / "b-outside.md")
    shutil.rmtree(inbox / "x")
    # an unpaired move arrives as a deletion only after watchdog waited for its pair (~0.5 s)
    for name in ("a.md", "b.md", "x/y/c.md"):
        await ing.wait_file(inbox / name, ("skipped",))
    files = await ing.files(w["id"])
    assert {(Path(f["path"]).name, f["status"], f["reason"]) for f in files} == {
        ("a.md", "skipped", DELETED), ("b.md", "skipped", DELETED), ("c.md", "skipped", DELETED)}
    assert await ing.titles() == ["Alpha", "Beta", "Gamma"], "the items are the user's now"
    assert {p["state"] for p in await provenance(ing)} == {"missing"}
    # the file comes back: nothing new, provenance active again
    (tmp_path / "b-outside.md").rename(inbox / "b.md")
    await ing.wait_file(inbox / "b.md", ("done",))
    await ing.settle(w["id"])
    assert await ing.titles() == ["Alpha", "Beta", "Gamma"]
    states = {Path(p["source_path"]).name: p["state"] for p in await provenance(ing)}
    assert states == {"a.md": "missing", "b.md": "active", "c.md": "missing"}


async def test_nested_folders_and_a_folder_moved_in(ing: Harness, inbox: Path, tmp_path: Path) -> None:
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    deep = inbox / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "deep.md").write_text("- [ ] Deep task\n")
    outside = tmp_path / "prepared"
    (outside / "inner").mkdir(parents=True)
    (outside / "one.md").write_text("- [ ] Moved in one\n")
    (outside / "inner" / "two.txt").write_text("TODO: moved in two\n")
    (outside / ".hidden").mkdir()
    (outside / ".hidden" / "secret.md").write_text("- [ ] Never\n")
    os.rename(outside, inbox / "prepared")
    await ing.settle(w["id"])
    assert await ing.titles() == ["Deep task", "Moved in one", "moved in two"]
    assert all(".hidden" not in f["path"] for f in await ing.files(w["id"]))


async def test_slow_writer_is_extracted_once_after_it_settles(settings: Settings, memory_keyring: MemoryKeyring,
                                                             inbox: Path) -> None:
    options = IngestOptions(debounce_ms=50, settle_ms=600, scan_interval_s=0, progress_interval_s=0.05)
    async with running(settings, options) as h:
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
        lines = [f"- [ ] Step number {i} of the long plan\n" for i in range(8)]
        path = inbox / "slow.md"
        with path.open("w") as fh:
            for line in lines:
                for piece in (line[:10], line[10:]):  # half lines hit the disk too
                    fh.write(piece)
                    fh.flush()
                    os.fsync(fh.fileno())
                    await asyncio.sleep(0.12)
        await h.settle(w["id"], quiet=1.0)
        assert await h.titles() == sorted(line[6:].strip() for line in lines)
        prov = await provenance(h)
        assert len({p["content_sha256"] for p in prov}) == 1, "one extraction, of the final content"
        [f] = await h.files(w["id"])
        assert f["status"] == "done" and f["itemsCreated"] == 8


async def test_rejected_items_are_never_suggested_again(ing: Harness, inbox: Path) -> None:
    path = inbox / "list.md"
    path.write_text("- [ ] Keep this\n- [ ] Reject this\n")
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    rejected = next(t for t in await ing.entities("tasks") if t["title"] == "Reject this")
    await ing.ok("DELETE", f"/v1/tasks/{rejected['id']}")
    path.write_text("- [ ] Keep this\n- [ ] Reject this!\n- [ ] A new one\n")
    await ing.settle(w["id"])
    assert await ing.titles() == ["A new one", "Keep this"]
    await ing.ok("POST", f"/v1/watches/{w['id']}/run", status=202)
    await ing.settle(w["id"])
    assert await ing.titles() == ["A new one", "Keep this"]
    states = {p["fingerprint"][:8]: p["state"] for p in await provenance(ing)}
    assert sorted(states.values()) == ["active", "active", "rejected"]


async def test_copies_and_renames_while_stopped_are_recognised_by_hash(settings: Settings,
                                                                      memory_keyring: MemoryKeyring,
                                                                      inbox: Path) -> None:
    (inbox / "orig.md").write_text("- [ ] Only once\n")
    async with running(settings) as h:
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
        shutil.copy(inbox / "orig.md", inbox / "copy.md")
        await h.settle(w["id"])
        assert await h.titles() == ["Only once"]
    os.rename(inbox / "orig.md", inbox / "renamed.md")  # while the sidecar is not running
    async with running(settings) as h:
        await h.settle(w["id"])
        assert await h.titles() == ["Only once"]
        paths = {Path(p["source_path"]).name: p["state"] for p in await provenance(h)}
        assert paths == {"copy.md": "active", "renamed.md": "active"}
        assert (await h.runs(w["id"]))[0]["trigger"] == "startup"


async def test_changes_while_stopped_are_caught_by_the_startup_scan(settings: Settings,
                                                                   memory_keyring: MemoryKeyring,
                                                                   inbox: Path) -> None:
    async with running(settings) as h:
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
    (inbox / "new.md").write_text("- [ ] Written while stopped\n")
    async with running(settings) as h:
        await h.settle(w["id"])
        assert await h.titles() == ["Written while stopped"]
        [run] = [r for r in await h.runs(w["id"]) if r["trigger"] == "startup"]
        assert run["itemsProcessed"] == 1 and run["itemsCreated"] == 1


class RefusingObserver(Observer):  # type: ignore[misc,valid-type]
    """A native observer that refuses every watch, as inotify does at its limit."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


async def test_polling_fallback_when_the_os_refuses_more_watches(settings: Settings, memory_keyring: MemoryKeyring,
                                                                inbox: Path) -> None:
    options = IngestOptions(debounce_ms=50, settle_ms=150, scan_interval_s=0, poll_interval_s=0.2)
    async with running(settings, options, native_observer=RefusingObserver) as h:
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
        ready = (await h.ok("GET", "/v1/ready"))["components"]["watcher"]
        assert ready["state"] == "degraded" and "polling" in ready["detail"] and "limit" in ready["detail"], ready
        (inbox / "polled.md").write_text("- [ ] Seen by polling\n")
        await h.wait_file(inbox / "polled.md", ("done",))
        assert await h.titles() == ["Seen by polling"]


async def test_watch_disable_stops_events_and_enable_catches_up(ing: Harness, inbox: Path) -> None:
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    await ing.ok("PATCH", f"/v1/watches/{w['id']}", {"enabled": False})
    (inbox / "while-off.md").write_text("- [ ] While disabled\n")
    await asyncio.sleep(0.6)
    assert await ing.files(w["id"]) == []
    await ing.ok("PATCH", f"/v1/watches/{w['id']}", {"enabled": True})
    await ing.wait_file(inbox / "while-off.md", ("done",))
    assert await ing.titles() == ["While disabled"]


async def test_events_publish_progress_and_run_status(ing: Harness, inbox: Path) -> None:
    hub = ing.app[NOTIFICATIONS]
    sub = hub.subscribe()
    try:
        w = await ing.create_watch(inbox)
        for i in range(30):
            (inbox / f"f{i}.md").write_text(f"- [ ] Thing {i}\n")
        await ing.settle(w["id"])
        events: list[tuple[str, Any]] = []
        while not sub.queue.empty():
            events.append(sub.queue.get_nowait())
    finally:
        hub.unsubscribe(sub)
    progress = [d for k, d in events if k == "ingest.progress"]
    runs = [d for k, d in events if k == "ingest.run"]
    assert progress and all(set(p) == {"watchId", "runId", "done", "total"} for p in progress)
    assert all(0 <= p["done"] <= p["total"] for p in progress)
    last = progress[-1]
    assert last["done"] == last["total"] and last["total"] >= 1
    assert {r["status"] for r in runs} >= {"running", "success"}


async def test_schedule_fires_while_running_and_overdue_runs_once_at_startup(
    settings: Settings, memory_keyring: MemoryKeyring, inbox: Path
) -> None:
    async with running(settings) as h:
        w = await h.create_watch(inbox, scheduleCron="* * * * * */1")  # every second (croniter seconds field)

        async def scheduled() -> bool:
            return sum(r["trigger"] == "schedule" for r in await h.runs(w["id"])) >= 2

        await until_async(scheduled, 10, "two scheduled runs")
        await h.ok("PATCH", f"/v1/watches/{w['id']}", {"scheduleCron": "0 3 * * *"})  # daily at 03:00
        await h.settle(w["id"])
    with sqlite3.connect(settings.db_path) as db:  # last run two days ago: a 03:00 slot was missed
        db.execute("UPDATE ingest_watches SET last_run_at = last_run_at - 2 * 86400000")
    async with running(settings) as h:
        await h.settle(w["id"])
        runs = await h.runs(w["id"])
        assert runs[0]["trigger"] == "schedule", [r["trigger"] for r in runs]
        assert not any(r["trigger"] == "startup" for r in runs), "the overdue schedule replaces the startup run"

