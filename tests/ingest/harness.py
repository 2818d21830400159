"""Helpers for the folder-ingestion tests: a real app on a loopback server with fast ingest
tuning, and polling helpers over its API. Real folders, real watchdog, real SQLite.

The watch fixtures every watcher test uses are declared here once: ``ing`` (a started app with
:data:`FAST` tuning) and ``inbox`` (an empty folder to watch); ``tests/ingest/conftest.py``
registers them for the whole folder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE, INGEST, INGEST_OPTIONS, NATIVE_OBSERVER, READINESS
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.service import IngestService
from sidecar.settings import Settings
from tests.conftest import Api
from tests.fakes.memory_keyring import MemoryKeyring

#: Fast tuning for tests: short debounce and settle, no periodic scan.
FAST = IngestOptions(debounce_ms=50, settle_ms=150, scan_interval_s=0, progress_interval_s=0.05,
                     max_file_bytes=5 << 20)


class Harness(Api):
    """:class:`tests.conftest.Api` plus ingest helpers."""

    @property
    def service(self) -> IngestService:
        return self.app[INGEST]

    async def wait_started(self, timeout: float = 10.0) -> None:
        await until(lambda: self.app[READINESS].get("watcher").state != "starting", timeout, "watcher start")

    async def create_watch(self, path: Path | str, **fields: Any) -> dict[str, Any]:
        body = {"name": fields.pop("name", Path(path).name or "root"), "paths": [str(path)], **fields}
        return await self.ok("POST", "/v1/watches", body, status=201)  # type: ignore[no-any-return]

    async def files(self, watch_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        q = "&".join(f"{k}={v}" for k, v in (("watchId", watch_id), ("status", status)) if v)
        data = await self.ok("GET", f"/v1/ingest/files?limit=10000&{q}")
        return data["items"]  # type: ignore[no-any-return]

    async def file(self, path: Path | str) -> dict[str, Any] | None:
        return next((f for f in await self.files() if f["path"] == str(path)), None)

    async def idle(self, watch_id: str) -> bool:
        """No queued or running file of the watch and no active run."""
        files = await self.files(watch_id)
        busy = any(f["status"] in ("pending", "processing") for f in files)
        return not busy and self.service.pipeline.active_run(watch_id) is None

    async def settle(self, watch_id: str, timeout: float = 20.0, quiet: float = 0.4) -> None:
        """Wait until the watch is idle and stays idle for ``quiet`` seconds (events may trail)."""
        deadline = time.monotonic() + timeout
        calm_since: float | None = None
        while True:
            if await self.idle(watch_id):
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= quiet:
                    return
            else:
                calm_since = None
            if time.monotonic() > deadline:
                raise AssertionError(f"watch not idle after {timeout}s: {await self.files(watch_id)}")
            await asyncio.sleep(0.05)

    async def wait_file(self, path: Path | str, statuses: tuple[str, ...] = ("done", "skipped", "error"),
                        timeout: float = 15.0) -> dict[str, Any]:
        box: list[dict[str, Any]] = []

        async def check() -> bool:
            f = await self.file(path)
            if f and f["status"] in statuses:
                box.append(f)
                return True
            return False

        await until_async(check, timeout, f"{path} in {statuses}")
        return box[-1]

    async def entities(self, entity: str) -> list[dict[str, Any]]:
        data = await self.ok("GET", f"/v1/{entity}?limit=10000&order=asc")
        return data["items"]  # type: ignore[no-any-return]

    async def titles(self, entity: str = "tasks") -> list[str]:
        """The sorted titles of every ``entity`` row (``tasks``, ``milestones``, ``notes``)."""
        return sorted(str(t["title"]) for t in await self.entities(entity))

    async def runs(self, watch_id: str) -> list[dict[str, Any]]:
        data = await self.ok("GET", f"/v1/watches/{watch_id}/runs?limit=1000")
        return data["items"]  # type: ignore[no-any-return]


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def until_async(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.03)


@asynccontextmanager
async def running(settings: Settings, options: IngestOptions = FAST,
                  native_observer: Callable[[], Any] | None = None) -> AsyncIterator[Harness]:
    """A started app (handshake done, ingest started) on a loopback test server."""
    app = create_app(settings)
    app[INGEST_OPTIONS] = options
    if native_observer is not None:
        app[NATIVE_OBSERVER] = native_observer
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        h = Harness(client)
        await h.wait_started()
        yield h


@pytest.fixture
async def ing(settings: Settings, memory_keyring: MemoryKeyring) -> AsyncIterator[Harness]:
    """A started app with :data:`FAST` ingest tuning (keyring in memory)."""
    async with running(settings) as h:
        yield h


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """An empty folder to watch (``tmp_path / "inbox"``)."""
    d = tmp_path / "inbox"
    d.mkdir()
    return d
