"""The disk and the database under failure (issue 9): a full disk is a 507 ``disk_full`` with
``store: degraded`` and recovers by itself; a database file replaced or deleted under the
running sidecar stops writes (``store: error``) and makes the next start refuse clearly.

The full disk is real: a 4 MiB tmpfs mounted for the test (root only; skipped otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE
from sidecar.errors import StoreFailed
from sidecar.settings import Settings
from sidecar.store.db import Store
from tests.conftest import TOKEN, Api
from tests.fakes.memory_keyring import MemoryKeyring
from tests.schema_check import PROBLEMS, validating_middleware


@asynccontextmanager
async def serving(data_dir: Path) -> AsyncIterator[Api]:
    app = create_app(Settings(data_dir=data_dir, token=TOKEN, heartbeat_s=0.5))
    app[PROBLEMS] = []
    app.middlewares.insert(0, validating_middleware)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        yield Api(client)
    assert not app[PROBLEMS], app[PROBLEMS]


async def store_state(api: Api) -> tuple[str, str]:
    _, body = await api.call("GET", "/v1/ready")
    s = body["components"]["store"]
    return s["state"], s["detail"]


async def wait_state(api: Api, state: str, timeout: float = 5.0) -> float:
    """Seconds until the store reports ``state``."""
    t0 = time.monotonic()
    while (await store_state(api))[0] != state:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"store never became {state}: {await store_state(api)}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    with open(path, "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())


async def test_a_full_disk_is_507_degraded_and_recovers_by_itself(small_disk: Path, memory_keyring: MemoryKeyring) -> None:
    async with serving(small_disk / "data") as api:
        await api.ok("POST", "/v1/tasks", {"title": "before"}, status=201)
        assert (await store_state(api))[0] == "ok"
        filler = small_disk / "filler"
        await asyncio.to_thread(_fill, filler)
        filled_at = time.monotonic()
        statuses = []
        for i in range(30):
            status, body = await api.call("POST", "/v1/tasks", {"title": f"while full {i}", "description": "x" * 20_000})
            statuses.append(status)
            if status != 201:
                assert status == 507 and body["error"]["code"] == "disk_full", (status, body)
        assert 507 in statuses, statuses
        await wait_state(api, "degraded")
        print(f"\ndisk filled → store degraded in {time.monotonic() - filled_at:.3f} s")
        filler.unlink()
        await wait_state(api, "ok")
        await api.ok("POST", "/v1/tasks", {"title": "after"}, status=201)
        titles = [t["title"] for t in (await api.ok("GET", "/v1/tasks?limit=1000"))["items"]]
        assert "before" in titles and "after" in titles
        assert sum(s == 201 for s in statuses) + 2 == len(titles)  # every 201 is there, nothing else


async def test_a_filling_disk_is_seen_without_a_write(small_disk: Path, memory_keyring: MemoryKeyring) -> None:
    async with serving(small_disk / "data") as api:
        await api.ok("POST", "/v1/tasks", {"title": "before"}, status=201)
        await asyncio.to_thread(_fill, small_disk / "filler")
        took = await wait_state(api, "degraded", timeout=10)
        print(f"\ndisk filled → store degraded (no write) in {took:.3f} s")
        (small_disk / "filler").unlink()
        await wait_state(api, "ok")


@pytest.mark.parametrize("how", ["replaced", "deleted"])
async def test_a_database_file_replaced_under_the_sidecar_stops_writes(tmp_path: Path, memory_keyring: MemoryKeyring,
                                                                      how: str) -> None:
    data = tmp_path / "data"
    async with serving(data) as api:
        await api.ok("POST", "/v1/tasks", {"title": "acknowledged"}, status=201)
        db = data / "sidecar.db"
        if how == "replaced":
            shutil.copy(db, tmp_path / "other.db")
            os.replace(tmp_path / "other.db", db)
        else:
            db.unlink()
        statuses = [(await api.call("POST", "/v1/tasks", {"title": f"after {i}"}))[0] for i in range(20)]
        assert 201 not in statuses and set(statuses) == {503}, statuses
        _, body = await api.call("POST", "/v1/tasks", {"title": "x"})
        assert body["error"]["code"] == "store_error"
        await wait_state(api, "error", timeout=3)
        assert "replaced or deleted" in (await store_state(api))[1]
    with pytest.raises(StoreFailed) as info:
        await Store.open(data / "sidecar.db")
    assert info.value.code == "database_replaced" and "sidecar.db.replaced" in info.value.message


async def test_ingest_waits_out_a_full_disk_and_loses_no_file(small_disk: Path, tmp_path: Path,
                                                              memory_keyring: MemoryKeyring) -> None:
    from tests.ingest.harness import running

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with running(Settings(data_dir=small_disk / "data", token=TOKEN, heartbeat_s=0.5)) as h:
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
        filler = small_disk / "filler"
        await asyncio.to_thread(_fill, filler)
        for i in range(3):
            (inbox / f"while-full-{i}.md").write_text(f"- [ ] Written while the disk was full {i}\n" + "x" * 30_000)
        await asyncio.sleep(2.0)
        assert not [f for f in await h.files(w["id"]) if f["status"] == "error"]
        filler.unlink()
        for i in range(3):
            f = await h.wait_file(inbox / f"while-full-{i}.md", timeout=20)
            assert f["status"] == "done", f
