"""Shared fixtures: a real app on a real loopback aiohttp server, a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sidecar import clock
from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE
from sidecar.settings import Settings
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from tests.fakes.memory_keyring import MemoryKeyring
from tests.schema_check import PROBLEMS, validating_middleware

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(autouse=True)
def _restore_clock() -> Iterator[None]:
    yield
    clock.set_wall_clock(None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(previous)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", token=TOKEN, heartbeat_s=0.5, allow_origins=("app://-",))


def auth(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers with the test token."""
    return {"Authorization": f"Bearer {TOKEN}", **(extra or {})}


class Api:
    """A thin JSON client over the aiohttp test client with the token attached."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.app = client.server.app

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        headers = auth(kw.pop("headers", None))
        resp = await self.client.request(method, path, json=body, headers=headers, **kw)
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, data

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, data = await self.call(method, path, body)
        assert got == status, (got, data)
        return data


@pytest.fixture
async def api(settings: Settings, memory_keyring: MemoryKeyring) -> AsyncIterator[Api]:
    """The app on a real loopback server; every JSON response is checked against schemas/."""
    app = create_app(settings)
    app[PROBLEMS] = []
    app.middlewares.insert(0, validating_middleware)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        yield Api(client)
    assert not app[PROBLEMS], "responses that do not match schemas/:\n" + "\n".join(app[PROBLEMS])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "sidecar.db")
    yield s
    await s.close()


@pytest.fixture
def repo(store: Store) -> Repository:
    return Repository(store)
