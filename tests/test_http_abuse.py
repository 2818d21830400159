"""The HTTP server under abuse (issue 9): bad input is a 4xx in the one JSON shape, never a
500; malformed requests echo nothing; absolute-form targets and lenient auth are refused; idle
and half-sent connections are closed; a connection flood does not make health unreachable.

Served by the real runner of ``sidecar serve`` (:func:`sidecar.server.make_runner`) on
127.0.0.1 port 0, spoken to over raw sockets where a client library would refuse to send it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import resource
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE
from sidecar.server import Limits, make_runner
from sidecar.settings import Settings
from tests.conftest import TOKEN
from tests.fakes.memory_keyring import MemoryKeyring

LIST_ROUTES = ["/v1/tasks", "/v1/projects", "/v1/timelines", "/v1/notes", "/v1/clients", "/v1/watches",
               "/v1/ingest/files", "/v1/agent/threads"]
HUGE = str(1 << 64)


@dataclass
class Served:
    port: int

    async def raw(self, data: bytes, *, timeout: float = 5.0) -> bytes:
        """Send ``data``, read until the server closes (or ``timeout``)."""
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            w.write(data)
            await w.drain()
            out = b""
            async with asyncio.timeout(timeout):
                while chunk := await r.read(65536):
                    out += chunk
                    if b"\r\n\r\n" in out and _complete(out):
                        break
            return out
        finally:
            w.close()

    async def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                      body: bytes = b"", *, extra_lines: list[bytes] | None = None) -> tuple[int, dict[str, str], bytes]:
        h = {"Host": f"127.0.0.1:{self.port}", "Authorization": f"Bearer {TOKEN}", "Connection": "close",
             **(headers or {})}
        if body:
            h.setdefault("Content-Type", "application/json")
            h["Content-Length"] = str(len(body))
        lines = [f"{method} {target} HTTP/1.1".encode()] + [f"{k}: {v}".encode() for k, v in h.items() if v is not None]
        lines += extra_lines or []
        return _parse(await self.raw(b"\r\n".join(lines) + b"\r\n\r\n" + body))


def _complete(out: bytes) -> bool:
    head, _, body = out.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


@pytest.fixture
async def served(settings: Settings, memory_keyring: MemoryKeyring) -> AsyncIterator[Served]:
    app = create_app(settings)
    runner = make_runner(app, Limits(idle_timeout_s=1.0, max_connections=40, log_every_s=60))
    await runner.setup()
    from aiohttp import web

    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app[HANDSHAKE_DONE].set()
    try:
        yield Served(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def _json_error(status: int, headers: dict[str, str], body: bytes, want: int | tuple[int, ...]) -> dict[str, object]:
    wanted = (want,) if isinstance(want, int) else want
    assert status in wanted, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:200])
    err = json.loads(body)["error"]
    assert set(err) == {"code", "message", "detail"}
    return err  # type: ignore[no-any-return]


async def test_malformed_request_lines_get_json_and_echo_nothing(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for line in (b"GARBAGE\r\n", b"GET /v1/tasks HTTP/9.9\r\n", b"GET /v1/\x00tasks HTTP/1.1\r\n",
                 b"G\x01T / HTTP/1.1\r\n"):
        raw = await served.raw(line + f"Host: 127.0.0.1:{served.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                               "Bad Header Line\r\n\r\n".encode())
        status, headers, body = _parse(raw)
        _json_error(status, headers, body, 400)
        assert TOKEN.encode() not in raw and b"Bearer" not in raw and b"GARBAGE" not in raw
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith(("sidecar", "aiohttp"))]
    assert not errors, [r.getMessage() for r in errors]
    assert len(warnings) <= 1 and all(r.exc_info is None for r in warnings)


async def test_absolute_form_targets_are_refused(served: Served) -> None:
    status, headers, body = await served.request("GET", "http://evil.example/v1/tasks")
    err = _json_error(status, headers, body, 400)
    assert err["code"] == "bad_request_target"
    status, _, _ = await served.request("GET", f"http://127.0.0.1:{served.port}/v1/tasks")
    assert status == 400
    assert (await served.request("GET", "/v1/tasks"))[0] == 200


async def test_auth_is_exact(served: Served) -> None:
    # (trailing whitespace is not part of a header value, RFC 9110 §5.5: the parser drops it)
    for value in (f"bearer {TOKEN}", f"Bearer   {TOKEN}   ", f"Bearer  {TOKEN}", f"BEARER {TOKEN}",
                  f"Bearer\t{TOKEN}", TOKEN):
        status, headers, body = await served.request("GET", "/v1/tasks", {"Authorization": value})
        assert _json_error(status, headers, body, 401)["code"] == "unauthorized", value
    status, headers, body = await served.request("GET", "/v1/tasks", extra_lines=[b"Authorization: Bearer wrong"])
    _json_error(status, headers, body, 401)  # two headers: refused, whichever comes first
    status, headers, body = await served.request("GET", "/v1/tasks", {"Authorization": None},  # type: ignore[dict-item]
                                                 extra_lines=[b"Authorization: Bearer \xff\xfe" + TOKEN.encode()])
    _json_error(status, headers, body, 401)


@pytest.mark.parametrize("route", LIST_ROUTES)
async def test_offsets_beyond_64_bits_are_422_on_every_list(served: Served, route: str) -> None:
    status, headers, body = await served.request("GET", f"{route}?offset={HUGE}")
    _json_error(status, headers, body, 422)


async def test_event_streams_validate_before_they_start(served: Served) -> None:
    for target, hdrs in (("/v1/events?after=" + HUGE, {}), ("/v1/events", {"Last-Event-ID": "abc"}),
                         ("/v1/events", {"Last-Event-ID": HUGE}), ("/v1/events", {"Last-Event-ID": "١٢"}),
                         ("/v1/agent/threads/t1/events?after=" + HUGE, {})):
        status, headers, body = await served.request("GET", target, hdrs)
        _json_error(status, headers, body, 422)
        assert "text/event-stream" not in headers.get("content-type", "")


async def test_bodies_that_do_not_match_their_encoding(served: Served) -> None:
    body = json.dumps({"title": "x"}).encode()
    status, headers, resp = await served.request("POST", "/v1/tasks", {"Content-Encoding": "gzip"}, body)
    _json_error(status, headers, resp, 400)
    status, headers, resp = await served.request("POST", "/v1/tasks", {"Content-Encoding": "zstd-nope"}, body)
    _json_error(status, headers, resp, 415)
    status, _, _ = await served.request("POST", "/v1/tasks", {"Content-Encoding": "gzip"}, gzip.compress(body))
    assert status == 201


@pytest.mark.parametrize("field,value", [("dueDate", "123"), ("dueDate", True), ("isApproved", 1),
                                         ("due_date", 123), ("is_approved", True)])
async def test_bodies_are_strict(served: Served, field: str, value: object) -> None:
    body = json.dumps({"title": "Strict", field: value}).encode()
    status, headers, resp = await served.request("POST", "/v1/tasks", body=body)
    _json_error(status, headers, resp, 422)


async def test_queries_and_ids_are_strict(served: Served) -> None:
    status, headers, body = await served.request("GET", "/v1/tasks?q=%00")
    _json_error(status, headers, body, 422)
    status, headers, body = await served.request("GET", "/v1/tasks?limit=5&limit=6")
    _json_error(status, headers, body, 422)
    status, headers, body = await served.request("GET", "/v1/tasks?project_id=x")
    _json_error(status, headers, body, 422)
    status, headers, body = await served.request("GET", "/v1/tasks/" + "a" * 5000)
    _json_error(status, headers, body, (404, 414, 400))
    for thread_id in ("", "x" * 100_000, "a/b", None):
        run = {"threadId": thread_id, "runId": "r1", "messages": [], "tools": [], "context": [], "state": {},
               "forwardedProps": {}}
        status, headers, body = await served.request("POST", "/v1/agent/runs", body=json.dumps(run).encode())
        _json_error(status, headers, body, (413, 422))


async def test_deeply_nested_bodies_are_refused_before_any_stream(served: Served) -> None:
    nested: object = {}
    for _ in range(260):
        nested = {"a": nested}
    run = {"threadId": "t1", "runId": "r1", "messages": [], "tools": [], "context": [], "state": {},
           "forwardedProps": nested}
    status, headers, body = await served.request("POST", "/v1/agent/runs", body=json.dumps(run).encode())
    assert _json_error(status, headers, body, 422)["code"] == "validation_failed"


async def test_idle_and_half_sent_connections_are_closed(served: Served) -> None:
    async def closed_within(data: bytes, seconds: float) -> bool:
        r, w = await asyncio.open_connection("127.0.0.1", served.port)
        w.write(data)
        await w.drain()
        try:
            async with asyncio.timeout(seconds):
                while await r.read(1024):
                    pass
            return True
        except TimeoutError:
            return False
        finally:
            w.close()

    assert await closed_within(b"", 4.0), "a silent connection stayed open"
    assert await closed_within(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n", 4.0), "half a head stayed open"


async def test_health_answers_while_idle_connections_flood_the_server(served: Served) -> None:
    """With a file limit of 350 in this (client and server) process, 200 idle client
    connections would need 400 descriptors without the cap: accept would fail and health go
    unanswered. With the cap of 40, the oldest idle ones are closed and health answers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(350, hard), hard))
    held = []
    try:
        for _ in range(200):  # five times the cap of 40
            held.append(await asyncio.open_connection("127.0.0.1", served.port))
        await asyncio.sleep(0.2)
        for _ in range(5):
            status, _, body = await asyncio.wait_for(served.request("GET", "/v1/health"), 3)
            assert status == 200, body
    finally:
        for _, w in held:
            w.close()
        await asyncio.sleep(0.1)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _camel_body_operations() -> list[tuple[str, str, str]]:
    """(method, path, one camelCase property) for every operation in schemas/openapi.json whose
    JSON body has camelCase properties; path parameters filled with a well-formed unknown id."""
    spec = json.loads((Path(__file__).parents[1] / "schemas" / "openapi.json").read_text(encoding="utf-8"))
    components = spec.get("components", {}).get("schemas", {})
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            while "$ref" in schema:
                schema = components[schema["$ref"].rsplit("/", 1)[-1]]
            for prop in schema.get("properties", {}):
                if any(c.isupper() for c in prop):
                    target = re.sub(r"\{[^}]+\}", "01a00000-0000-7000-8000-000000000000", path)
                    out.append((method.upper(), target, prop))
    return out


@pytest.mark.parametrize("method,target,prop", _camel_body_operations())
async def test_snake_case_body_keys_are_refused_on_every_route(served: Served, method: str, target: str,
                                                               prop: str) -> None:
    """DESIGN §2: camelCase only. The snake_case spelling of each camelCase field is refused as an
    unknown field (named in the error), on every operation with a JSON body."""
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", prop).lower()
    body = json.dumps({snake: None}).encode()
    status, headers, resp = await served.request(method, target, body=body)
    err = _json_error(status, headers, resp, 422)
    named = {d["field"]: d["type"] for d in err["detail"]}  # type: ignore[union-attr]
    assert named.get(snake) == "extra_forbidden", (snake, err)
