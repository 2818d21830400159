"""Memory under big lists (issue 9): large pages (``limit`` over 1,000 rows) are built at most
two at a time, serialised off the event loop, and health answers while twenty run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.api import crud
from sidecar.appstate import REPOSITORY
from sidecar.store.repository import Repository
from tests.conftest import Api


async def test_twenty_large_lists_run_at_most_two_at_a_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = api.app[REPOSITORY]
    async with repo.transaction() as tx:
        for i in range(2500):
            await tx.create("tasks", {"title": f"Task {i}"})
    running = peak = 0
    real = Repository.list

    async def counting(self: Repository, entity: str, query: Any = None) -> Any:
        nonlocal running, peak
        big = getattr(query, "limit", 0) > crud.HEAVY_LIST_ROWS
        running += big
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.05)  # hold it, so overlapping requests would overlap here
            return await real(self, entity, query)
        finally:
            running -= big

    monkeypatch.setattr(Repository, "list", counting)
    lists = [asyncio.create_task(api.ok("GET", "/v1/tasks?limit=10000")) for _ in range(20)]
    await asyncio.sleep(0.05)
    health = await api.ok("GET", "/v1/health")  # answers while the lists are queued
    pages = await asyncio.gather(*lists)
    assert health and all(p["total"] == 2500 and len(p["items"]) == 2500 for p in pages)
    assert peak == crud.HEAVY_LISTS, peak
    small = await api.ok("GET", "/v1/tasks?limit=10")
    assert len(small["items"]) == 10
