"""The reference cloud API (DESIGN §6 / issue 11 contract) as a real aiohttp server on 127.0.0.1.

Data lives on disk under ``--data DIR`` (``records/<id>.bin`` + ``records.jsonl``,
``backups/<id>.bin`` + ``backups.jsonl``); the server verifies checksums and never decrypts.
Every handler is declared with :func:`route`, the one place for the Bearer token check, the
JSON body and the ``{"detail"}`` error shape (:class:`Problem`); the ``_faults`` middleware
counts requests and plays the fault switches before and after it. Run it as its own process::

    python -m tests.fakes.cloud_server --data DIR [--token T] [--refresh-token R] [--quota BYTES]

It prints one JSON line ``{"port": N}`` on stdout once listening. Test control (no auth, not
part of the contract): ``POST /_control/faults`` ``{"kind", "count"?, "seconds"?, "path"?}``
queues a fault; ``DELETE /_control/faults`` clears them; ``GET /_control/stats`` →
``{"requests": n, "by_route": {...}, "tokens": ...}``. Fault kinds: ``5xx`` (503), ``429``
(with ``Retry-After: seconds``), ``reset`` (connection closed before answering), ``slow``
(answer after ``seconds``), ``expire_token`` (the current access token stops working),
``lost_response`` (a write is stored, then the connection is closed), ``duplicates`` (listings
repeat every item).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

API = "/api/v1"


@dataclass
class Fault:
    kind: str
    count: int = 1
    seconds: float = 1.0
    path: str = ""


@dataclass
class CloudState:
    data: Path
    tokens: set[str]
    refresh_tokens: set[str]
    quota: int
    faults: list[Fault] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)
    backups: list[dict[str, Any]] = field(default_factory=list)

    def load(self) -> None:
        for name in ("records", "backups"):
            (self.data / name).mkdir(parents=True, exist_ok=True)
        self.records = _read_jsonl(self.data / "records.jsonl")
        self.backups = _read_jsonl(self.data / "backups.jsonl")

    def save(self, name: str) -> None:
        rows = self.records if name == "records" else self.backups
        tmp = self.data / f"{name}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.data / f"{name}.jsonl")

    def take(self, kind: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.kind == kind and f.count > 0 and path.startswith(f.path):
                f.count -= 1
                return f
        return None

    def used_bytes(self) -> int:
        return sum(r["size"] for r in self.records) + sum(b["size_bytes"] for b in self.backups)


STATE = web.AppKey("cloud_state", CloudState)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Problem(Exception):
    """An error answer in the contract's one shape: ``status`` with ``{"detail": …}``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers

    def response(self) -> web.Response:
        return web.json_response({"detail": self.detail}, status=self.status, headers=self.headers)


@dataclass
class Call:
    """What a handler gets: the server's state, the request and its JSON body (``{}`` if it takes none)."""

    state: CloudState
    request: web.Request
    body: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The record named by the path's ``{id}``. Raises Problem 404."""
        rid = self.request.match_info["id"]
        rec = next((r for r in self.state.records if r["id"] == rid), None)
        if rec is None:
            raise Problem(404, "no such record")
        return rec


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
ROUTES = web.RouteTableDef()


def route(method: str, path: str, *, auth: bool = True, body: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler under ``path``. The one place for what every handler shares: the
    Bearer token check (``auth``, after the fault switches, so ``expire_token`` applies to this
    very request), the JSON body (``body``: an object, else 400), and :class:`Problem` → its
    answer."""

    def register(fn: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            try:
                if auth:
                    header = request.headers.get("Authorization", "")
                    if not header.startswith("Bearer ") or header[7:] not in state.tokens:
                        raise Problem(401, "missing or expired token")
                payload: Any = {}
                if body:
                    try:
                        payload = await request.json()
                    except ValueError:
                        raise Problem(400, "the body is not JSON") from None
                    if not isinstance(payload, dict):
                        raise Problem(422, "the body must be a JSON object")
                return await fn(Call(state, request, payload))
            except Problem as problem:
                return problem.response()

        ROUTES.route(method, path)(handle)
        return fn

    return register


@web.middleware
async def _faults(request: web.Request, handler: Any) -> web.StreamResponse:
    """Counts every contract request, then plays the queued fault switches (module docstring)."""
    state = request.app[STATE]
    path = request.path
    if path.startswith("/_control"):
        return await handler(request)  # type: ignore[no-any-return]
    state.stats["requests"] += 1
    resource = request.match_info.route.resource
    state.stats[f"{request.method} {resource.canonical if resource else path}"] += 1
    if (f := state.take("slow", path)) is not None:
        await asyncio.sleep(f.seconds)
    if state.take("reset", path) is not None:
        await request.read()
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError  # nothing is answered
    if state.take("5xx", path) is not None:
        return Problem(503, "service unavailable").response()
    if (f := state.take("429", path)) is not None:
        return Problem(429, "rate limited", {"Retry-After": str(int(f.seconds))}).response()
    if state.take("expire_token", path) is not None:
        state.tokens.clear()
    response = await handler(request)
    if request.method in {"POST", "PUT"} and state.take("lost_response", path) is not None:
        assert request.transport is not None
        request.transport.abort()  # stored, but the client never hears of it
        raise asyncio.CancelledError
    return response  # type: ignore[no-any-return]


def _blob(body: dict[str, Any]) -> bytes:
    """The decoded ``blob`` of a body, checked against its ``checksum``. Raises Problem."""
    if not isinstance(body.get("blob"), str) or not isinstance(body.get("checksum"), str):
        raise Problem(422, "blob and checksum are required")
    try:
        blob = base64.b64decode(body["blob"], validate=True)
    except (binascii.Error, ValueError):
        raise Problem(400, "blob is not base64") from None
    if hashlib.sha256(blob).hexdigest() != body["checksum"].lower():
        raise Problem(400, "checksum mismatch")
    return blob


def _within_quota(state: CloudState, size: int) -> None:
    if state.used_bytes() + size > state.quota:
        raise Problem(403, "storage quota exceeded")


@route("GET", f"{API}/health", auth=False)
async def health(call: Call) -> web.Response:
    return web.json_response({"status": "ok", "version": "reference-1"})


@route("POST", f"{API}/auth/refresh", auth=False, body=True)
async def refresh(call: Call) -> web.Response:
    state = call.state
    token = call.body.get("refresh_token")
    if token not in state.refresh_tokens:
        raise Problem(401, "invalid refresh token")
    state.refresh_tokens.discard(token)
    access, new_refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    state.tokens = {access}
    state.refresh_tokens.add(new_refresh)
    return web.json_response({"access_token": access, "refresh_token": new_refresh,
                              "expires_at": _now_ms() + 3_600_000})


@route("POST", f"{API}/storage/records", body=True)
async def create_record(call: Call) -> web.Response:
    state, body = call.state, call.body
    blob = _blob(body)
    if not isinstance(body.get("table"), str) or not body["table"]:
        raise Problem(422, "table is required")
    _within_quota(state, len(blob))
    rid = str(uuid.uuid4())
    (state.data / "records" / f"{rid}.bin").write_bytes(blob)
    now = _now_ms()
    state.records.append({"id": rid, "table": body["table"], "checksum": body["checksum"].lower(),
                          "created_at": now, "updated_at": now, "size": len(blob)})
    state.save("records")
    return web.json_response({"id": rid, "created_at": now}, status=201)


@route("GET", f"{API}/storage/records")
async def list_records(call: Call) -> web.Response:
    query = call.request.query
    try:
        page = int(query.get("page", "1"))
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise Problem(422, "page and limit are integers") from None
    if page < 1 or not 1 <= limit <= 100:
        raise Problem(422, "page >= 1, 1 <= limit <= 100")
    table = query.get("table")
    rows = [r for r in call.state.records if table is None or r["table"] == table]
    chunk = [{k: r[k] for k in ("id", "table", "checksum", "created_at", "updated_at")}
             for r in rows[(page - 1) * limit : page * limit]]
    if call.state.take("duplicates", call.request.path) is not None:
        chunk = [x for r in chunk for x in (r, r)]
    return web.json_response(chunk)


@route("GET", f"{API}/storage/records/{{id}}")
async def get_record(call: Call) -> web.StreamResponse:
    rec = call.record()
    blob = (call.state.data / "records" / f"{rec['id']}.bin").read_bytes()
    return web.Response(body=blob, content_type="application/octet-stream", headers={"X-Checksum": rec["checksum"]})


@route("PUT", f"{API}/storage/records/{{id}}", body=True)
async def put_record(call: Call) -> web.Response:
    rec = call.record()
    blob = _blob(call.body)
    (call.state.data / "records" / f"{rec['id']}.bin").write_bytes(blob)
    rec.update(checksum=hashlib.sha256(blob).hexdigest(), updated_at=_now_ms(), size=len(blob))
    call.state.save("records")
    return web.json_response({"ok": True})


@route("DELETE", f"{API}/storage/records/{{id}}")
async def delete_record(call: Call) -> web.Response:
    rec = call.record()
    call.state.records.remove(rec)
    (call.state.data / "records" / f"{rec['id']}.bin").unlink(missing_ok=True)
    call.state.save("records")
    return web.json_response({"ok": True})


@route("PUT", f"{API}/backup")
async def put_backup(call: Call) -> web.Response:
    state, request = call.state, call.request
    blob = await request.read()
    checksum = request.headers.get("X-Checksum", "").lower()
    if hashlib.sha256(blob).hexdigest() != checksum:
        raise Problem(400, "checksum mismatch")
    _within_quota(state, len(blob))
    try:
        meta = {"id": str(uuid.uuid4()), "version": int(request.headers.get("X-Backup-Version", "1")),
                "timestamp": int(request.headers.get("X-Backup-Timestamp", str(_now_ms()))),
                "checksum": checksum, "chunk_count": int(request.headers.get("X-Chunk-Count", "1")),
                "size_bytes": len(blob)}
    except ValueError:
        raise Problem(422, "backup headers must be integers") from None
    (state.data / "backups" / f"{meta['id']}.bin").write_bytes(blob)
    state.backups.append(meta)
    state.save("backups")
    return web.json_response({"ok": True, "id": meta["id"]})


@route("GET", f"{API}/backup")
async def get_backup(call: Call) -> web.StreamResponse:
    state = call.state
    if not state.backups:
        raise Problem(404, "no backup")
    meta = max(state.backups, key=lambda b: (b["timestamp"], state.backups.index(b)))
    since = call.request.headers.get("If-Modified-Since")
    if since and since.isdigit() and int(since) >= meta["timestamp"]:
        return web.Response(status=304)
    blob = (state.data / "backups" / f"{meta['id']}.bin").read_bytes()
    return web.Response(body=blob, content_type="application/octet-stream", headers={
        "X-Checksum": meta["checksum"], "X-Backup-Version": str(meta["version"]),
        "X-Backup-Timestamp": str(meta["timestamp"]), "X-Chunk-Count": str(meta["chunk_count"]),
        "X-Backup-Id": meta["id"]})


@route("GET", f"{API}/backup/history")
async def backup_history(call: Call) -> web.Response:
    return web.json_response(call.state.backups)


@route("DELETE", f"{API}/backup/{{id}}")
async def delete_backup(call: Call) -> web.Response:
    state = call.state
    meta = next((b for b in state.backups if b["id"] == call.request.match_info["id"]), None)
    if meta is None:
        raise Problem(404, "no such backup")
    state.backups.remove(meta)
    (state.data / "backups" / f"{meta['id']}.bin").unlink(missing_ok=True)
    state.save("backups")
    return web.json_response({"ok": True})


# Test control: not part of the contract, no token, not counted, no faults.

@route("POST", "/_control/faults", auth=False, body=True)
async def add_fault(call: Call) -> web.Response:
    call.state.faults.append(Fault(**call.body))
    return web.json_response({"ok": True})


@route("DELETE", "/_control/faults", auth=False)
async def clear_faults(call: Call) -> web.Response:
    call.state.faults.clear()
    return web.json_response({"ok": True})


@route("GET", "/_control/stats", auth=False)
async def stats(call: Call) -> web.Response:
    state = call.state
    return web.json_response({"requests": state.stats["requests"], "by_route": dict(state.stats),
                              "faults_left": sum(f.count for f in state.faults), "records": len(state.records)})


@route("PUT", "/_control/tokens", auth=False, body=True)
async def set_tokens(call: Call) -> web.Response:
    call.state.tokens = set(call.body.get("tokens", []))
    call.state.refresh_tokens = set(call.body.get("refresh_tokens", []))
    return web.json_response({"ok": True})


def make_app(data: Path, *, token: str, refresh_token: str = "", quota: int = 1 << 34) -> web.Application:
    """The reference server's application with its data under ``data``."""
    app = web.Application(middlewares=[_faults], client_max_size=256 << 20)
    state = CloudState(data, {token}, {refresh_token} if refresh_token else set(), quota)
    state.load()
    app[STATE] = state
    app.router.add_routes(ROUTES)
    return app


async def _serve(args: argparse.Namespace) -> None:
    app = make_app(args.data, token=args.token, refresh_token=args.refresh_token, quota=args.quota)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    # Exit when stdin closes (the test that started us is gone).
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.buffer.read1(1024) else None)
    await done.wait()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default="cloud-access-token")
    p.add_argument("--refresh-token", default="cloud-refresh-token")
    p.add_argument("--quota", type=int, default=1 << 34)
    asyncio.run(_serve(p.parse_args()))


if __name__ == "__main__":
    main()
