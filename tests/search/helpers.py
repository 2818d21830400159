"""Polling helpers over the search API (real app, real LanceDB in a temp dir, real SQLite)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

from tests.conftest import Api

IDLE = "idle: the index is not loaded"


async def ready_vectors(api: Api, timeout: float = 30.0, *, load: bool = True) -> dict[str, Any]:
    """Wait until ``vectors`` is no longer starting; returns its status. An idle index (nothing
    to index at start-up: not loaded) is loaded first the way a user would, by a search, unless
    ``load`` is False."""
    deadline = time.monotonic() + timeout
    while True:
        ready = await api.ok("GET", "/v1/ready")
        status = ready["components"]["vectors"]
        if status["state"] != "starting" and ready["components"].get("memory", {}).get("state") != "starting":
            if load and status["detail"].startswith(IDLE):
                await search(api, "anything")
                continue
            return status  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, ready
        await asyncio.sleep(0.05)


async def search(api: Api, q: str, **params: Any) -> dict[str, Any]:
    query = {"q": q, **{k: v for k, v in params.items() if v is not None}}
    return await api.ok("GET", "/v1/search?" + urlencode(query))  # type: ignore[no-any-return]


async def wait_found(api: Api, q: str, entity_id: str, timeout: float = 10.0, **params: Any) -> tuple[float, dict[str, Any]]:
    """Poll until ``entity_id`` is among the results; returns (seconds taken, the hit)."""
    t0 = time.monotonic()
    while True:
        res = await search(api, q, **params)
        for hit in res["items"]:
            if hit["entityId"] == entity_id:
                return time.monotonic() - t0, {**hit, "_mode": res["mode"]}
        assert time.monotonic() - t0 < timeout, f"{entity_id} not found for {q!r}: {res}"
        await asyncio.sleep(0.05)


async def wait_gone(api: Api, q: str, entity_id: str, timeout: float = 10.0, **params: Any) -> None:
    t0 = time.monotonic()
    while True:
        res = await search(api, q, **params)
        if all(h["entityId"] != entity_id for h in res["items"]):
            return
        assert time.monotonic() - t0 < timeout, f"{entity_id} still found for {q!r}"
        await asyncio.sleep(0.05)


async def wait_idle(api: Api, timeout: float = 30.0) -> None:
    from sidecar.appstate import SEARCH

    service = api.app[SEARCH]
    assert service.indexer is not None
    await service.indexer.idle(timeout)
