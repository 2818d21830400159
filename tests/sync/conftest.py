"""Sync fixtures: the reference cloud server on a real loopback port (in-process or as its own process)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from sidecar.sync.keys import Keychain, SyncKey
from tests.e2e.conftest import spawn_sidecar  # noqa: F401 (the real-process fixture, for test_processes)
from tests.fakes.cloud_server import STATE, CloudState, make_app
from tests.sync.harness import Device, open_device

REPO = Path(__file__).resolve().parents[2]
CLOUD_TOKEN = "cloud-access-token-for-tests"
CLOUD_REFRESH = "cloud-refresh-token-for-tests"


class Cloud:
    """Handle on a running reference server: its base URL, faults and request counts."""

    def __init__(self, base: str, data: Path, state: CloudState | None = None) -> None:
        self.base = base
        self.data = data
        self.state = state

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def fault(self, kind: str, count: int = 1, seconds: float = 1.0, path: str = "") -> None:
        if self.state is not None:
            from tests.fakes.cloud_server import Fault

            self.state.faults.append(Fault(kind, count, seconds, path))
        else:
            self._control("POST", "/_control/faults", {"kind": kind, "count": count, "seconds": seconds, "path": path})

    def clear_faults(self) -> None:
        if self.state is not None:
            self.state.faults.clear()
        else:
            self._control("DELETE", "/_control/faults")

    def stats(self) -> dict[str, Any]:
        if self.state is not None:
            return {"requests": self.state.stats["requests"], "by_route": dict(self.state.stats),
                    "records": len(self.state.records)}
        return self._control("GET", "/_control/stats")  # type: ignore[no-any-return]

    def stored_bytes(self) -> bytes:
        """Every byte the server keeps on disk."""
        return b"".join(p.read_bytes() for p in sorted(self.data.rglob("*")) if p.is_file())


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    """The reference server in this process, on 127.0.0.1 port 0."""
    data = tmp_path / "cloud"
    app = make_app(data, token=CLOUD_TOKEN, refresh_token=CLOUD_REFRESH)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Cloud(str(server.make_url("")).rstrip("/"), data, app[STATE])
    finally:
        await server.close()


@pytest.fixture
async def devices(tmp_path: Path, cloud: Cloud) -> AsyncIterator[list[Device]]:
    """Three in-process devices (a, b, c) sharing one sync key, against the in-process server."""
    chain = Keychain.of(SyncKey.generate())
    devs = [await open_device(tmp_path / name, cloud.base, Keychain.parse(chain.dump()), CLOUD_TOKEN)
            for name in ("a", "b", "c")]
    yield devs
    for d in devs:
        await d.close()


@pytest.fixture
def cloud_process(tmp_path: Path) -> Iterator[Cloud]:
    """The reference server as its own process."""
    data = tmp_path / "cloud-proc"
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.cloud_server", "--data", str(data),
                             "--token", CLOUD_TOKEN, "--refresh-token", CLOUD_REFRESH],
                            cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    try:
        yield Cloud(f"http://127.0.0.1:{port}", data)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
