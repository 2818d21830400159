"""Group commit: concurrent ``Store.write`` callers share one COMMIT (one fsync), each is
released only once it is durable, and one failing change leaves the others committed.

Commits are counted in the real WAL file: every commit writes a commit frame (a frame header
whose "database size after commit" field is non-zero), so the count does not trust the store.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import struct
import threading
import time
from pathlib import Path

import pytest

from sidecar.errors import ValidationFailed
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from tests.e2e.conftest import Sidecar, SpawnFn
from tests.e2e.conftest import spawn_sidecar as spawn_sidecar  # the real-process fixture

N = 8


def wal_commits(db: Path) -> int:
    """Commit frames in the WAL file of ``db`` (SQLite file format §4: WAL frames of this
    WAL generation, i.e. whose salts match the header's)."""
    data = (db.parent / (db.name + "-wal")).read_bytes()
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    count, off = 0, 32
    while off + 24 + page_size <= len(data):
        header = data[off:off + 24]
        if header[8:16] != salts:
            break
        if struct.unpack(">I", header[4:8])[0] != 0:
            count += 1
        off += 24 + page_size
    return count


async def _concurrent_creates(store: Store, bodies: list[dict[str, object]]) -> list[object]:
    repo = Repository(store)
    return await asyncio.gather(*(repo.create("tasks", b) for b in bodies), return_exceptions=True)


async def test_concurrent_writes_share_commits_and_all_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.db"
    store = await Store.open(path)
    before = wal_commits(path)
    results = await _concurrent_creates(store, [{"title": f"t{i}"} for i in range(N)])
    commits = wal_commits(path) - before
    assert all(not isinstance(r, BaseException) for r in results), results
    assert 1 <= commits < N, f"{commits} commits for {N} concurrent writes: no group commit"
    await store.close()
    reopened = await Store.open(path)
    rows = await reopened.fetchall("SELECT title FROM tasks")
    log = await reopened.fetchall("SELECT entity_id FROM change_log WHERE entity = 'tasks'")
    assert sorted(r[0] for r in rows) == sorted(f"t{i}" for i in range(N))
    assert len(log) == N
    await reopened.close()


async def test_with_group_commit_off_every_write_commits_alone(tmp_path: Path) -> None:
    """The control for the test above: the WAL count does see one commit per change."""
    path = tmp_path / "sidecar.db"
    store = await Store.open(path)
    store.max_group = 1
    before = wal_commits(path)
    await _concurrent_creates(store, [{"title": f"t{i}"} for i in range(N)])
    assert wal_commits(path) - before == N
    await store.close()


async def test_a_failing_change_gets_its_own_error_and_the_others_commit(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.db"
    store = await Store.open(path)
    before = wal_commits(path)
    bodies: list[dict[str, object]] = [{"title": f"t{i}"} for i in range(N)]
    bodies[3] = {"title": "bad", "projectId": "0190aaaa-0000-7000-8000-000000000000"}  # no such project
    results = await _concurrent_creates(store, bodies)
    assert isinstance(results[3], ValidationFailed)
    assert [isinstance(r, BaseException) for r in results].count(True) == 1
    assert wal_commits(path) - before < N - 1
    titles = sorted(r[0] for r in await store.fetchall("SELECT title FROM tasks"))
    assert titles == sorted(f"t{i}" for i in range(N) if i != 3)
    assert (await store.fetchone("SELECT count(*) FROM change_log"))[0] == N - 1  # type: ignore[index]
    await store.close()


async def test_a_statement_error_inside_a_group_rolls_back_that_change_alone(tmp_path: Path) -> None:
    """A raw SQL error (a UNIQUE violation) in the middle change of a group: its own earlier
    statement is undone too, the changes before and after it commit."""
    store = await Store.open(tmp_path / "sidecar.db")
    started = asyncio.Event()

    async def change(key: str, fail: bool) -> None:
        async with store.write() as w:
            await w.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (key,))
            started.set()
            await asyncio.sleep(0.01)  # the others queue up behind this change meanwhile
            if fail:
                await w.execute("INSERT INTO meta (key, value) VALUES ('k0', 'dup')")

    results = await asyncio.gather(change("k0", False), change("k1", True), change("k2", False),
                                   return_exceptions=True)
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert results[0] is None and results[2] is None
    keys = {r[0] for r in await store.fetchall("SELECT key FROM meta WHERE key LIKE 'k%'")}
    assert keys == {"k0", "k2"}
    await store.close()


async def test_a_failing_first_change_of_a_group_leaves_nothing_and_the_next_ones_commit(tmp_path: Path) -> None:
    """The first change of a group runs without a savepoint (undoing it is rolling the whole
    transaction back): its statements and change-log row are gone, and the changes that queued
    behind it start a new group and commit."""
    store = await Store.open(tmp_path / "sidecar.db")
    repo = Repository(store)
    started = asyncio.Event()

    async def failing_first() -> None:
        async with repo.transaction() as tx:
            await tx.create("tasks", {"title": "undone"})
            started.set()
            await asyncio.sleep(0.02)  # the others queue up behind this change meanwhile
            raise RuntimeError("the change fails after its writes")

    async def later(i: int) -> None:
        await started.wait()
        await repo.create("tasks", {"title": f"later {i}"})

    results = await asyncio.gather(failing_first(), later(1), later(2), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1:] == [None, None]
    titles = sorted(r[0] for r in await store.fetchall("SELECT title FROM tasks"))
    assert titles == ["later 1", "later 2"]
    assert (await store.fetchone("SELECT count(*) FROM change_log"))[0] == 2  # type: ignore[index]
    async with store.write() as w:  # and the connection is not left inside a transaction
        await w.execute("INSERT INTO meta (key, value) VALUES ('after', 'x')")
    await store.close()


async def test_a_caller_is_released_only_after_the_shared_commit(tmp_path: Path) -> None:
    """Each write() returns only when its change is visible to another connection (committed)."""
    path = tmp_path / "sidecar.db"
    store = await Store.open(path)
    seen: list[bool] = []

    async def change(i: int) -> None:
        async with store.write() as w:
            await w.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"c{i}",))
            await asyncio.sleep(0)
        other = sqlite3.connect(path)
        try:
            seen.append(other.execute("SELECT 1 FROM meta WHERE key = ?", (f"c{i}",)).fetchone() is not None)
        finally:
            other.close()

    await asyncio.gather(*(change(i) for i in range(N)))
    assert seen == [True] * N
    await store.close()


async def test_a_change_cancelled_inside_a_group_leaves_the_others_committed(tmp_path: Path) -> None:
    """A is done and waits for the group's commit; B joined the group and is cancelled mid-change:
    A is still committed and released, B's change is not."""
    store = await Store.open(tmp_path / "sidecar.db")
    release, inside = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.write() as w:
            await w.execute("INSERT INTO meta (key, value) VALUES ('first', 'x')")
            await release.wait()

    async def second() -> None:
        async with store.write() as w:
            await w.execute("INSERT INTO meta (key, value) VALUES ('second', 'x')")
            inside.set()
            await asyncio.Event().wait()  # never returns by itself

    a = asyncio.create_task(first())
    await asyncio.sleep(0.01)
    b = asyncio.create_task(second())  # queued behind `first`, so the group is left open for it
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(inside.wait(), 5)
    assert not a.done(), "first was released before the group it belongs to was committed"
    b.cancel()
    await asyncio.wait_for(a, 5)
    with pytest.raises(asyncio.CancelledError):
        await b
    assert await store.fetchone("SELECT 1 FROM meta WHERE key = 'first'") is not None
    assert await store.fetchone("SELECT 1 FROM meta WHERE key = 'second'") is None
    await store.close()


def test_kill_9_while_8_clients_create_loses_no_acknowledged_change(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    """A real sidecar process, 8 HTTP clients creating notes (so commits are shared), SIGKILL at
    a random moment, twice: every note whose 201 arrived is there after a restart, and the
    database is intact."""
    data = tmp_path / "data"
    rng = random.Random(11)
    acknowledged: set[str] = set()
    for _ in range(2):
        sc = spawn_sidecar(data)
        stop = threading.Event()

        def client(sc: Sidecar = sc, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    row = sc.ok("POST", "/v1/notes", {"title": "kill test"}, status=201)
                except Exception:  # the process is gone
                    return
                acknowledged.add(row["id"])

        threads = [threading.Thread(target=client) for _ in range(N)]
        for t in threads:
            t.start()
        start, deadline = len(acknowledged), time.monotonic() + 20
        while len(acknowledged) < start + 30 and time.monotonic() < deadline:
            time.sleep(0.01)  # the kill must land while writes stream in
        time.sleep(rng.uniform(0.0, 0.5))
        sc.kill()
        stop.set()
        for t in threads:
            t.join(10)
    assert len(acknowledged) >= 60, "too few writes before the kills to test anything"
    db = sqlite3.connect(data / "sidecar.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {r[0] for r in db.execute("SELECT id FROM notes")}
        logged = {r[0] for r in db.execute("SELECT entity_id FROM change_log WHERE entity = 'notes'")}
    finally:
        db.close()
    assert acknowledged <= ids, f"{len(acknowledged - ids)} acknowledged notes lost"
    assert ids == logged
