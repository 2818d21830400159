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
    # A small threshold keeps the pages small: every response here is also schema-checked.
    monkeypatch.setattr(crud, "HEAVY_LIST_ROWS", 20)
    repo = api.app[REPOSITORY]
    async with repo.transaction() as tx:
        for i in range(250):
            await tx.create("tasks", {"title": f"Task {i}"})
    running = peak = 0
    real = Repository.list_rows

    async def counting(self: Repository, entity: str, query: Any = None, **kw: Any) -> Any:
        nonlocal running, peak
        big = getattr(query, "limit", 0) > crud.HEAVY_LIST_ROWS
        running += big
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.05)  # hold it, so overlapping requests would overlap here
            return await real(self, entity, query, **kw)
        finally:
            running -= big

    monkeypatch.setattr(Repository, "list_rows", counting)
    lists = [asyncio.create_task(api.ok("GET", "/v1/tasks?limit=10000")) for _ in range(20)]
    await asyncio.sleep(0.05)
    health = await api.ok("GET", "/v1/health")  # answers while the lists are queued
    pages = await asyncio.gather(*lists)
    assert health and all(p["total"] == 250 and len(p["items"]) == 250 for p in pages)
    assert peak == crud.HEAVY_LISTS, peak
    small = await api.ok("GET", "/v1/tasks?limit=10")
    assert len(small["items"]) == 10


async def test_a_large_page_is_the_same_json_as_small_pages(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The large-page path (converted and encoded in steps off the event loop) gives exactly the
    rows, in order and in shape, that pages under the heavy threshold give."""
    monkeypatch.setattr(crud, "HEAVY_LIST_ROWS", 100)
    monkeypatch.setattr(crud, "_PAGE_STEP", 7)  # many steps, the last one short
    repo = api.app[REPOSITORY]
    async with repo.transaction() as tx:
        for i in range(crud.HEAVY_LIST_ROWS + 333):
            await tx.create("tasks", {"title": f"Task {i} \u00e9\"q\"", "assignee": ["a", str(i)],
                                      "isAiSuggested": i % 2 == 0})
    big = await api.ok("GET", f"/v1/tasks?limit={crud.HEAVY_LIST_ROWS + 1000}&order=asc")
    small: list[Any] = []
    for offset in range(0, crud.HEAVY_LIST_ROWS + 333, crud.HEAVY_LIST_ROWS):
        page = await api.ok("GET", f"/v1/tasks?limit={crud.HEAVY_LIST_ROWS}&offset={offset}&order=asc")
        small += page["items"]
    assert big["total"] == crud.HEAVY_LIST_ROWS + 333
    assert big["items"] == small
    assert (big["limit"], big["offset"]) == (crud.HEAVY_LIST_ROWS + 1000, 0)
