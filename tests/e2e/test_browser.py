"""The renderer path in a real browser (issue 13): headless Chromium, driven over the DevTools
protocol, talks to a spawned ``sidecar serve --allow-origin`` the way an Electron renderer does —
from its own origin, with CORS preflights, streaming over ``fetch``.

The page (``bundling/shell-client/test-support/browser-page.mjs``, bundled here with esbuild
from the committed npm lockfile, ``@ag-ui/client`` inside) is served from a loopback origin
passed to ``--allow-origin``. It follows ``/v1/events``, runs one tool-using agent run against
the scripted model with the official ``HttpAgent`` and renders the ``block`` event as a table.
The same page from another origin gets nothing: every request is refused by CORS.

The token reaches the page in its URL fragment, as a shell hands it to its renderer; the
fragment is never sent to the page's server, and the sidecar's rules are the same as for any
other client (bearer token, Host, Origin allowlist).

Needs Debian's ``chromium`` (``.ci/run`` installs it) and ``npm ci`` in
``bundling/shell-client``; skipped without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import SpawnFn

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
CLIENT_DIR = REPO / "bundling" / "shell-client"
ESBUILD = CLIENT_DIR / "node_modules" / ".bin" / "esbuild"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags that keep Chromium from reaching the network or a GPU (the machine is offline).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--remote-debugging-port=0"]
TOKEN = "browser-test-token-0123456789abcdef"
TABLE = {"type": "table", "headers": ["Task", "Priority"], "rows": [["Buy milk", "high"]]}
SCRIPT = {"queue": [
    {"type": "tool_calls", "calls": [{"name": "create_task", "arguments": {"title": "Buy milk", "priority": "high"}}]},
    {"type": "text", "text": "Added it. Your tasks:\n```block\n" + json.dumps(TABLE) + "\n```\nAnything else?",
     "n_chunks": 6},
]}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The test page and its script, bundled now (a build product, not committed)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian packages chromium and chromium-driver; .ci/run installs them)")
    if not ESBUILD.exists() or not (CLIENT_DIR / "node_modules" / "@ag-ui" / "client").is_dir():
        pytest.skip(f"npm packages missing: run `npm ci` in {CLIENT_DIR.relative_to(REPO)}")
    out = tmp_path / "site"
    out.mkdir()
    subprocess.run([str(ESBUILD), "test-support/browser-page.mjs", "--bundle", "--format=iife",
                    "--platform=browser", "--log-level=warning", f"--outfile={out / 'page.js'}"],
                   cwd=CLIENT_DIR, check=True, timeout=60)
    (out / "index.html").write_text('<!doctype html><html><head><meta charset="utf-8"><title>renderer</title><link rel="icon" href="data:,">'
                                    '</head><body><div id="blocks"></div><script src="page.js"></script></body></html>')
    return out


@contextlib.contextmanager
def serve_static(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (OS-chosen port); yields the origin ``http://127.0.0.1:N``."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_model(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The scripted model as a process: ``(api_base, port)``."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm_server", "--script", str(script)],
                            cwd=REPO, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    try:
        yield ready["base_url"], ready["port"]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


class Page:
    """One browser tab over the DevTools protocol (JSON over a WebSocket)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = iter(range(1, 1_000_000))
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.console: list[tuple[str, str]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in data["params"]["args"])
                self.console.append((data["params"]["type"], args))
            elif data.get("method") == "Log.entryAdded":
                entry = data["params"]["entry"]
                self.console.append((entry["level"], entry["text"]))

    async def send(self, method: str, **params: Any) -> Any:
        i = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[i] = fut
        await self.ws.send_json({"id": i, "method": method, "params": params})
        answer = await asyncio.wait_for(fut, 60)
        assert "error" not in answer, answer
        return answer["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def scenario(self, url: str) -> dict[str, Any]:
        """Open ``url`` and wait for the page's ``window.__done``."""
        self.console.clear()
        await self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 15
        while await self.evaluate("typeof window.__done") != "object":
            assert time.monotonic() < deadline, f"the page did not start: {self.console}"
            await asyncio.sleep(0.05)
        try:
            result: dict[str, Any] = await asyncio.wait_for(self.evaluate("window.__done"), 30)
        except TimeoutError:
            progress = await self.evaluate("JSON.stringify(window.__seen)")
            raise AssertionError(f"the page did not finish: {progress}\nconsole: {self.console}") from None
        return result

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    """Headless Chromium on a fresh profile; yields its first tab."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert proc.returncode is None and time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            [tab] = [t for t in targets if t["type"] == "page"]
            ws = await session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            try:
                yield page
            finally:
                await page.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _requests_to(port: int) -> list[Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/requests", timeout=10) as resp:
        data: list[Any] = json.load(resp)
    return [r for r in data if r["path"].endswith("/chat/completions")]


async def test_a_page_from_an_allowed_origin_runs_the_agent_and_another_origin_gets_nothing(
        site: Path, fake_model: tuple[str, int], spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    api_base, fake_port = fake_model
    with serve_static(site) as allowed, serve_static(site) as foreign:
        sc = spawn_sidecar(allow_origins=[allowed], token=TOKEN)
        sc.wait_ready(timeout=30)
        sc.ok("PUT", "/v1/settings/model", {"model": "openai/fake-model", "apiBase": api_base, "maxRetries": 0})
        fragment = f"api={sc.base_url}&token={TOKEN}"
        async with chromium(tmp_path / "profile") as page:
            # the agent libraries load once a model is set (seconds): the browser starts meanwhile
            await asyncio.to_thread(sc.wait_ready, components=["agent"], timeout=90)
            seen = await page.scenario(f"{allowed}/index.html#{fragment}&thread=renderer")
            console = list(page.console)
            other = await page.scenario(f"{foreign}/index.html#{fragment}&thread=foreign")
            other_console = list(page.console)

    # the allowed origin: preflighted POST streamed over fetch, a tool call, the change on /v1/events
    assert seen["origin"] == allowed
    assert seen["errors"] == [], (seen, console)
    assert seen["eventsStatus"] == 200
    types = seen["eventTypes"]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED", types
    assert {"TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT", "TEXT_MESSAGE_CONTENT"} <= set(types)
    [change] = [c for c in seen["changes"] if c["entity"] == "tasks"]
    assert change["op"] == "insert" and change["fields"]["title"] == "Buy milk", seen["changes"]
    [mutations] = [c["value"] for c in seen["customs"] if c["name"] == "mutations"]
    assert [m["id"] for m in mutations] == [change["id"]]
    assert not [c for c in console if c[0] in ("warning", "error")], console
    assert len(_requests_to(fake_port)) == 2

    # another origin: the events stream and the run are refused by CORS; nothing reached the model
    assert other["origin"] == foreign
    assert other["eventsStatus"] is None and other["changes"] == [] and "RUN_STARTED" not in other["eventTypes"]
    assert any("Failed to fetch" in e for e in other["errors"]), other
    assert any("CORS" in text for _, text in other_console), other_console
    assert len(_requests_to(fake_port)) == 2
    tasks = sc.ok("GET", "/v1/tasks")
    assert [t["title"] for t in tasks["items"]] == ["Buy milk"]

    # the `block` CUSTOM event (issue 13's output blocks, the agent side's part): one event whose
    # value is the table, rendered by the page, and no block text among the text deltas
    assert [c["value"] for c in seen["customs"] if c["name"] == "block"] == [TABLE], seen["customs"]
    assert "<td>Buy milk</td><td>high</td>" in seen["blocksHtml"], seen["blocksHtml"]
    assert "```block" not in seen["text"] and '"headers"' not in seen["text"], seen["text"]
