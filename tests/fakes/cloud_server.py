"""The reference cloud API (DESIGN §6 / issue 11 contract) as a real aiohttp server on 127.0.0.1.

Data lives on disk under ``--data DIR`` (``records/<id>.bin`` + ``records.jsonl``,
``backups/<id>.bin`` + ``backups.jsonl``); the server verifies checksums and never decrypts.
Run it as its own process::

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


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


@web.middleware
async def _faults(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path
    if path.startswith("/_control"):
        return await handler(request)  # type: ignore[no-any-return]
    state.stats["requests"] += 1
    state.stats[f"{request.method} {request.match_info.route.resource.canonical if request.match_info.route.resource else path}"] += 1
    if (f := state.take("slow", path)) is not None:
        await asyncio.sleep(f.seconds)
    if state.take("reset", path) is not None:
        await request.read()
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError  # nothing is answered
    if state.take("5xx", path) is not None:
        return _detail(503, "service unavailable")
    if (f := state.take("429", path)) is not None:
        return _detail(429, "rate limited", {"Retry-After": str(int(f.seconds))})
    if (f := state.take("expire_token", path)) is not None:
        state.tokens.clear()
    if path != f"{API}/health" and path != f"{API}/auth/refresh":
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in state.tokens:
            return _detail(401, "missing or expired token")
    response = await handler(request)
    if request.method in {"POST", "PUT"} and state.take("lost_response", path) is not None:
        assert request.transport is not None
        request.transport.abort()  # stored, but the client never hears of it
        raise asyncio.CancelledError
    return response  # type: ignore[no-any-return]


def _decode_blob(body: Any) -> bytes | web.Response:
    if not isinstance(body, dict) or not isinstance(body.get("blob"), str) or not isinstance(body.get("checksum"), str):
        return _detail(422, "blob and checksum are required")
    try:
        blob = base64.b64decode(body["blob"], validate=True)
    except (binascii.Error, ValueError):
        return _detail(400, "blob is not base64")
    if hashlib.sha256(blob).hexdigest() != body["checksum"].lower():
        return _detail(400, "checksum mismatch")
    return blob


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "reference-1"})


async def refresh(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.json()
    token = body.get("refresh_token") if isinstance(body, dict) else None
    if token not in state.refresh_tokens:
        return _detail(401, "invalid refresh token")
    state.refresh_tokens.discard(token)
    access, new_refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    state.tokens = {access}
    state.refresh_tokens.add(new_refresh)
    return web.json_response({"access_token": access, "refresh_token": new_refresh,
                              "expires_at": _now_ms() + 3_600_000})


async def create_record(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.json()
    blob = _decode_blob(body)
    if isinstance(blob, web.Response):
        return blob
    if not isinstance(body.get("table"), str) or not body["table"]:
        return _detail(422, "table is required")
    if state.used_bytes() + len(blob) > state.quota:
        return _detail(403, "storage quota exceeded")
    rid = str(uuid.uuid4())
    (state.data / "records" / f"{rid}.bin").write_bytes(blob)
    now = _now_ms()
    state.records.append({"id": rid, "table": body["table"], "checksum": body["checksum"].lower(),
                          "created_at": now, "updated_at": now, "size": len(blob)})
    state.save("records")
    return web.json_response({"id": rid, "created_at": now}, status=201)


async def list_records(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        page = int(request.query.get("page", "1"))
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        return _detail(422, "page and limit are integers")
    if page < 1 or not 1 <= limit <= 100:
        return _detail(422, "page >= 1, 1 <= limit <= 100")
    table = request.query.get("table")
    rows = [r for r in state.records if table is None or r["table"] == table]
    chunk = [{k: r[k] for k in ("id", "table", "checksum", "created_at", "updated_at")}
             for r in rows[(page - 1) * limit : page * limit]]
    if state.take("duplicates", request.path) is not None:
        chunk = [x for r in chunk for x in (r, r)]
    return web.json_response(chunk)


def _record(request: web.Request) -> dict[str, Any] | None:
    rid = request.match_info["id"]
    return next((r for r in request.app[STATE].records if r["id"] == rid), None)


async def get_record(request: web.Request) -> web.StreamResponse:
    rec = _record(request)
    if rec is None:
        return _detail(404, "no such record")
    blob = (request.app[STATE].data / "records" / f"{rec['id']}.bin").read_bytes()
    return web.Response(body=blob, content_type="application/octet-stream", headers={"X-Checksum": rec["checksum"]})


async def put_record(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rec = _record(request)
    if rec is None:
        return _detail(404, "no such record")
    blob = _decode_blob(await request.json())
    if isinstance(blob, web.Response):
        return blob
    (state.data / "records" / f"{rec['id']}.bin").write_bytes(blob)
    rec.update(checksum=hashlib.sha256(blob).hexdigest(), updated_at=_now_ms(), size=len(blob))
    state.save("records")
    return web.json_response({"ok": True})


async def delete_record(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rec = _record(request)
    if rec is None:
        return _detail(404, "no such record")
    state.records.remove(rec)
    (state.data / "records" / f"{rec['id']}.bin").unlink(missing_ok=True)
    state.save("records")
    return web.json_response({"ok": True})


async def put_backup(request: web.Request) -> web.Response:
    state = request.app[STATE]
    blob = await request.read()
    checksum = request.headers.get("X-Checksum", "").lower()
    if hashlib.sha256(blob).hexdigest() != checksum:
        return _detail(400, "checksum mismatch")
    if state.used_bytes() + len(blob) > state.quota:
        return _detail(403, "storage quota exceeded")
    try:
        meta = {"id": str(uuid.uuid4()), "version": int(request.headers.get("X-Backup-Version", "1")),
                "timestamp": int(request.headers.get("X-Backup-Timestamp", str(_now_ms()))),
                "checksum": checksum, "chunk_count": int(request.headers.get("X-Chunk-Count", "1")),
                "size_bytes": len(blob)}
    except ValueError:
        return _detail(422, "backup headers must be integers")
    (state.data / "backups" / f"{meta['id']}.bin").write_bytes(blob)
    state.backups.append(meta)
    state.save("backups")
    return web.json_response({"ok": True, "id": meta["id"]})


async def get_backup(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if not state.backups:
        return _detail(404, "no backup")
    meta = max(state.backups, key=lambda b: (b["timestamp"], state.backups.index(b)))
    since = request.headers.get("If-Modified-Since")
    if since and since.isdigit() and int(since) >= meta["timestamp"]:
        return web.Response(status=304)
    blob = (state.data / "backups" / f"{meta['id']}.bin").read_bytes()
    return web.Response(body=blob, content_type="application/octet-stream", headers={
        "X-Checksum": meta["checksum"], "X-Backup-Version": str(meta["version"]),
        "X-Backup-Timestamp": str(meta["timestamp"]), "X-Chunk-Count": str(meta["chunk_count"]),
        "X-Backup-Id": meta["id"]})


async def backup_history(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].backups)


async def delete_backup(request: web.Request) -> web.Response:
    state = request.app[STATE]
    meta = next((b for b in state.backups if b["id"] == request.match_info["id"]), None)
    if meta is None:
        return _detail(404, "no such backup")
    state.backups.remove(meta)
    (state.data / "backups" / f"{meta['id']}.bin").unlink(missing_ok=True)
    state.save("backups")
    return web.json_response({"ok": True})


async def add_fault(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[STATE].faults.append(Fault(**body))
    return web.json_response({"ok": True})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"requests": state.stats["requests"], "by_route": dict(state.stats),
                              "faults_left": sum(f.count for f in state.faults), "records": len(state.records)})


async def set_tokens(request: web.Request) -> web.Response:
    body = await request.json()
    state = request.app[STATE]
    state.tokens = set(body.get("tokens", []))
    state.refresh_tokens = set(body.get("refresh_tokens", []))
    return web.json_response({"ok": True})


def make_app(data: Path, *, token: str, refresh_token: str = "", quota: int = 1 << 34) -> web.Application:
    """The reference server's application with its data under ``data``."""
    app = web.Application(middlewares=[_faults], client_max_size=256 << 20)
    state = CloudState(data, {token}, {refresh_token} if refresh_token else set(), quota)
    state.load()
    app[STATE] = state
    app.router.add_get(f"{API}/health", health)
    app.router.add_post(f"{API}/auth/refresh", refresh)
    app.router.add_post(f"{API}/storage/records", create_record)
    app.router.add_get(f"{API}/storage/records", list_records)
    app.router.add_get(f"{API}/storage/records/{{id}}", get_record)
    app.router.add_put(f"{API}/storage/records/{{id}}", put_record)
    app.router.add_delete(f"{API}/storage/records/{{id}}", delete_record)
    app.router.add_put(f"{API}/backup", put_backup)
    app.router.add_get(f"{API}/backup", get_backup)
    app.router.add_get(f"{API}/backup/history", backup_history)
    app.router.add_delete(f"{API}/backup/{{id}}", delete_backup)
    app.router.add_post("/_control/faults", add_fault)
    app.router.add_delete("/_control/faults", clear_faults)
    app.router.add_get("/_control/stats", stats)
    app.router.add_put("/_control/tokens", set_tokens)
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
