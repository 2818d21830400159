"""The local API's defences apply to every route (DESIGN §2)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE
from sidecar.security import MIDDLEWARES, auth_middleware, host_middleware
from sidecar.settings import Settings
from tests.conftest import TOKEN, Api, auth


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)


def _all_routes(app: web.Application) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path:
            routes.append((route.method, _concrete(path)))
    return routes


async def test_router_has_routes_and_every_one_needs_the_token(api: Api) -> None:
    routes = _all_routes(api.app)
    assert len(routes) >= 30  # the enumeration itself must see the API
    for method, path in routes:
        resp = await api.client.request(method, path, headers={"Content-Type": "application/json"}, data=b"{}")
        assert resp.status == 401, (method, path, resp.status)
        body = await resp.json()
        assert body["error"]["code"] == "unauthorized"
        resp = await api.client.request(method, path, headers={"Authorization": "Bearer wrong-token"})
        assert resp.status == 401, (method, path)


async def test_every_route_refuses_a_foreign_host_even_with_the_token(api: Api) -> None:
    port = api.client.server.port
    for method, path in _all_routes(api.app):
        for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"localhost.evil:{port}"):
            resp = await api.client.request(method, path, headers=auth({"Host": host}))
            assert resp.status == 403, (method, path, host)
            assert (await resp.json())["error"]["code"] == "forbidden_host"


async def test_loopback_host_names_are_accepted(api: Api) -> None:
    port = api.client.server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        resp = await api.client.get("/v1/health", headers=auth({"Host": host}))
        assert resp.status == 200, host


def test_security_middleware_is_app_wide_for_future_routes(settings: Settings) -> None:
    app = create_app(settings)
    assert list(app.middlewares) == MIDDLEWARES
    assert MIDDLEWARES.index(host_middleware) < MIDDLEWARES.index(auth_middleware)


async def test_unknown_route_is_json_404_and_still_needs_token(api: Api) -> None:
    status, body = await api.call("GET", "/v1/nope")
    assert status == 404 and body["error"]["code"] == "not_found"
    resp = await api.client.get("/v1/nope")
    assert resp.status == 401


async def test_wrong_method_is_json_405(api: Api) -> None:
    status, body = await api.call("PUT", "/v1/health", {})
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


async def test_no_secret_read_route(api: Api) -> None:
    status, _ = await api.call("GET", "/v1/secrets/openai")
    assert status in (404, 405)


async def test_foreign_origin_refused_allowed_origin_echoed_never_wildcard(api: Api) -> None:
    resp = await api.client.get("/v1/health", headers=auth({"Origin": "https://evil.example"}))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden_origin"
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await api.client.get("/v1/health", headers=auth({"Origin": "app://-"}))
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "app://-"


async def test_allowed_origin_can_read_its_errors(api: Api) -> None:
    resp = await api.client.get("/v1/health", headers={"Origin": "app://-"})  # no token
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == "app://-"
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_preflight_answered_only_for_allowed_origin(api: Api) -> None:
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    resp = await api.client.options("/v1/tasks", headers={"Origin": "app://-", **pre})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "app://-"
    assert "*" not in resp.headers.get("Access-Control-Allow-Origin", "")
    resp = await api.client.options("/v1/tasks", headers={"Origin": "https://evil.example", **pre})
    assert resp.status == 403
    resp = await api.client.options("/v1/tasks", headers=pre)  # no Origin: not a CORS preflight
    assert resp.status == 401


def _vary(resp: Any) -> list[str]:
    return [v.strip().lower() for h in resp.headers.getall("Vary", []) for v in h.split(",")]


async def test_every_answer_says_it_varies_by_origin(api: Api) -> None:
    # The same URL answers differently per Origin (an echo, a 403, or neither): a cache must know.
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    answers = [
        await api.client.get("/v1/health", headers=auth()),  # no Origin: still varies by it
        await api.client.get("/v1/health", headers=auth({"Origin": "app://-"})),
        await api.client.get("/v1/health", headers=auth({"Origin": "https://evil.example"})),  # 403
        await api.client.get("/v1/health", headers={"Origin": "app://-"}),  # 401
        await api.client.get("/v1/tasks/nope", headers=auth({"Origin": "app://-"})),  # 404
        await api.client.options("/v1/tasks", headers={"Origin": "app://-", **pre}),  # preflight
    ]
    for resp in answers:
        assert _vary(resp).count("origin") == 1, (resp.status, resp.headers.getall("Vary", []))
    assert [r.status for r in answers] == [200, 200, 403, 401, 404, 204]


async def test_an_allowed_origin_can_read_an_event_stream(api: Api) -> None:
    # A stream is prepared inside its handler; its headers must still carry the CORS echo, or a
    # renderer's fetch() of /v1/events fails (the headers were added only to unprepared answers).
    async with api.client.get("/v1/events", headers=auth({"Origin": "app://-"})) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        assert resp.headers.getall("Access-Control-Allow-Origin") == ["app://-"]
        assert _vary(resp).count("origin") == 1
    async with api.client.get("/v1/events", headers=auth()) as resp:
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_non_json_body_is_415(api: Api) -> None:
    resp = await api.client.post("/v1/tasks", data="title=x", headers=auth({"Content-Type": "application/x-www-form-urlencoded"}))
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    resp = await api.client.post("/v1/tasks", data=b'{"title":"x"}', headers=auth({"Content-Type": "text/plain"}))
    assert resp.status == 415


async def test_oversized_body_is_413_by_length_and_when_streamed(api: Api) -> None:
    big = b'{"title": "' + b"x" * (2 << 20) + b'"}'
    resp = await api.client.post("/v1/tasks", data=big, headers=auth({"Content-Type": "application/json"}))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the cap must still hold while reading
        for _ in range(40):
            yield b"x" * 65536

    resp = await api.client.post("/v1/tasks", data=chunks(), headers=auth({"Content-Type": "application/json"}))
    assert resp.status == 413


@pytest.mark.parametrize("raw", [b"{", b'{"title": "x",}', b"NaN", b'{"title": NaN}', b"\xff\xfe", b"[" * 100_000, b" "])
async def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    resp = await api.client.post("/v1/tasks", data=raw, headers=auth({"Content-Type": "application/json"}))
    assert resp.status in (400, 413), raw[:10]
    body = await resp.json()
    assert body["error"]["code"] in ("malformed_json", "payload_too_large")


async def test_json_that_is_not_an_object_is_422(api: Api) -> None:
    for raw in (b"[1, 2]", b'"title"', b"42", b"null"):
        resp = await api.client.post("/v1/tasks", data=raw, headers=auth({"Content-Type": "application/json"}))
        assert resp.status == 422, raw


async def test_internal_error_is_json_without_stack_trace(settings: Settings) -> None:
    app = create_app(settings)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /home/user/path")

    app.router.add_get("/v1/_boom", boom)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        resp = await client.get("/v1/_boom", headers={"Authorization": f"Bearer {TOKEN}"})
        text = await resp.text()
        assert resp.status == 500
        assert "Traceback" not in text and "secret internals" not in text
        assert (await resp.json())["error"]["code"] == "internal"


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    resp = await api.client.get("/v1/health", headers=auth({"X-Request-Id": "abc-123"}))
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await api.client.get("/v1/health", headers=auth({"X-Request-Id": "bad id with spaces and 'quotes'"}))
    assert " " not in resp.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])


async def test_health_and_ready(api: Api) -> None:
    health = await api.ok("GET", "/v1/health")
    assert health["status"] == "ok"
    ready = await api.ok("GET", "/v1/ready")
    assert set(ready["components"]) >= {"store", "agent", "vectors", "watcher", "sync", "secrets"}
    assert ready["components"]["store"]["state"] == "ok"
    for comp in ready["components"].values():
        assert comp["state"] in ("starting", "ok", "degraded", "disabled") and comp["detail"]
