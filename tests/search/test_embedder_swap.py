"""Embedder changes: a LiteLLM embedder on a real loopback HTTP server, re-embedding into a new
table while search keeps answering, the atomic swap, and an unreachable embedder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar.appstate import SEARCH
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer
from tests.search.helpers import ready_vectors, search, wait_found, wait_idle


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def test_change_embedder_swaps_tables_while_search_answers(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    ids = [(await api.ok("POST", "/v1/notes", {"title": f"Harbour {i}", "content": f"Ferry timetable {i}"},
                         status=201))["id"] for i in range(40)]
    await wait_found(api, "ferry", ids[-1], limit=100)
    await wait_idle(api)
    old = (await api.ok("GET", "/v1/settings/embedder"))["active"]
    assert old["embedder"].startswith("wordllama") and old["dim"] == 256
    fake.embedding_delay_s = 0.05  # slow enough that searches run during the rebuild
    view = await api.ok("PUT", "/v1/settings/embedder", {"model": "openai/fake-embed", "apiBase": fake.base_url,
                                                         "batchSize": 8})
    assert view["changing"] and view["active"]["table"] == old["table"]
    answered_during_build = 0
    while (await api.ok("GET", "/v1/settings/embedder"))["changing"]:
        res = await search(api, "ferry", limit=100)
        assert len(res["items"]) == 40, res  # never empty, never partial
        answered_during_build += 1
        await asyncio.sleep(0.02)
    assert answered_during_build >= 3
    view = await api.ok("GET", "/v1/settings/embedder")
    assert view["active"]["embedder"] == f"openai/fake-embed@{fake.base_url}" and view["active"]["dim"] == 64
    service = api.app[SEARCH]
    assert service.lance is not None and old["table"] not in service.lance.table_names()  # old table dropped
    res = await search(api, "ferry", limit=100)
    assert res["mode"] == "hybrid" and len(res["items"]) == 40
    # a change after the swap goes to the new table, embedded by the new model
    calls = fake.embedding_calls
    late = await api.ok("POST", "/v1/notes", {"title": "Late", "content": "Ferry strike"}, status=201)
    await wait_found(api, "strike", late["id"])
    assert fake.embedding_calls > calls
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["vectors"]["state"] == "ok"
    assert "openai/fake-embed" in ready["components"]["vectors"]["detail"]


async def test_a_search_reading_the_old_table_finishes_before_the_swap_drops_it(api: Api, fake: FakeLLMServer) -> None:
    """A search that took the old table just before the swap is still reading it (held inside
    its full-text leg here): the swap waits for it before dropping the table, so the search
    answers in full instead of a 500 ("Not found: …/data/….lance")."""
    await ready_vectors(api)
    ids = [(await api.ok("POST", "/v1/notes", {"title": f"Pier {i}", "content": f"Ferry timetable {i}"},
                         status=201))["id"] for i in range(10)]
    await wait_found(api, "ferry", ids[-1], limit=100)
    await wait_idle(api)
    service = api.app[SEARCH]
    assert service.indexer is not None and service.indexer.active is not None and service.lance is not None
    old = service.indexer.active
    entered, release = threading.Event(), threading.Event()
    real_leg = old.table._fts_leg

    def held_leg(*args: Any) -> Any:
        entered.set()
        release.wait(20)
        return real_leg(*args)

    old.table._fts_leg = held_leg  # type: ignore[method-assign]
    reading = asyncio.create_task(search(api, "ferry", limit=100))
    assert await asyncio.to_thread(entered.wait, 5)
    await api.ok("PUT", "/v1/settings/embedder", {"model": "openai/fake-embed", "apiBase": fake.base_url})
    for _ in range(1000):  # until the new table caught up and the swap switched to it
        if service.indexer.active is not old:
            break
        await asyncio.sleep(0.02)
    assert service.indexer.active is not old
    for _ in range(25):  # time enough for a drop that does not wait
        if old.name not in service.lance.table_names():
            break
        await asyncio.sleep(0.02)
    release.set()
    res = await asyncio.wait_for(reading, 20)
    assert len(res["items"]) == 10, res
    for _ in range(1000):
        if not (await api.ok("GET", "/v1/settings/embedder"))["changing"]:
            break
        await asyncio.sleep(0.02)
    assert old.name not in service.lance.table_names()  # dropped once the search was done
    assert len((await search(api, "ferry", limit=100))["items"]) == 10


async def test_unreachable_embedder_is_keyword_only_with_reason(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    fake.embeddings_down = True
    view = await api.ok("PUT", "/v1/settings/embedder", {"model": "openai/fake-embed", "apiBase": fake.base_url})
    while view["changing"]:
        await asyncio.sleep(0.05)
        view = await api.ok("GET", "/v1/settings/embedder")
    assert "embedder unavailable" in view["problem"]
    await wait_idle(api)
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["vectors"]["state"] == "degraded"
    assert "embedder unavailable" in ready["components"]["vectors"]["detail"]
    note = await api.ok("POST", "/v1/notes", {"title": "Quay", "content": "Mooring fees"}, status=201)
    _, hit = await wait_found(api, "mooring", note["id"])
    assert hit["_mode"] == "keyword"


async def test_a_query_whose_table_is_swapped_out_while_it_embeds_asks_the_new_table(api: Api, fake: FakeLLMServer) -> None:
    """A search and a memory lookup that took the old table, then waited for its embedder while
    the swap retired and dropped that table: each starts again on the new table (its own
    embedder's vector) instead of a 500 or no memories."""
    await ready_vectors(api)
    ids = [(await api.ok("POST", "/v1/notes", {"title": f"Dock {i}", "content": f"Ferry timetable {i}"},
                         status=201))["id"] for i in range(10)]
    service = api.app[SEARCH]
    fact, _ = await service.memory.add("associative", "The ferry to the island leaves at seven.")
    await wait_found(api, "ferry", ids[-1], limit=100)
    await wait_idle(api)
    assert service.indexer is not None and service.indexer.active is not None and service.lance is not None
    old = service.indexer.active
    assert old.embedder is not None
    embedding, release = asyncio.Event(), asyncio.Event()
    real_embed = old.embedder.embed
    held = 0

    async def held_embed(texts: list[str], **kw: Any) -> Any:
        nonlocal held
        held += 1
        if held == 2:
            embedding.set()
        await release.wait()
        return await real_embed(texts, **kw)

    old.embedder.embed = held_embed  # type: ignore[method-assign]
    searching = asyncio.create_task(search(api, "ferry", limit=100))
    recalling = asyncio.create_task(service.memory.nearest("when does the ferry leave", "associative", 3))  # type: ignore[misc]
    await asyncio.wait_for(embedding.wait(), 5)
    await api.ok("PUT", "/v1/settings/embedder", {"model": "openai/fake-embed", "apiBase": fake.base_url})
    for _ in range(1000):  # the swap retired the old table (nobody was reading it) and dropped it
        if old.name not in service.lance.table_names():
            break
        await asyncio.sleep(0.02)
    assert old.name not in service.lance.table_names()
    release.set()
    res = await asyncio.wait_for(searching, 20)
    assert res["mode"] == "hybrid" and len(res["items"]) == 10, res
    assert fact.id in [memory_id for memory_id, _ in await asyncio.wait_for(recalling, 20)]
