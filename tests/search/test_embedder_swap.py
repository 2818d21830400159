"""Embedder changes: a LiteLLM embedder on a real loopback HTTP server, re-embedding into a new
table while search keeps answering, the atomic swap, and an unreachable embedder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
    assert view["building"] and view["active"]["table"] == old["table"]
    answered_during_build = 0
    while (await api.ok("GET", "/v1/settings/embedder"))["building"]:
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


async def test_unreachable_embedder_is_keyword_only_with_reason(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    fake.embeddings_down = True
    view = await api.ok("PUT", "/v1/settings/embedder", {"model": "openai/fake-embed", "apiBase": fake.base_url})
    assert "embedder unavailable" in view["problem"]
    await wait_idle(api)
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["vectors"]["state"] == "degraded"
    assert "embedder unavailable" in ready["components"]["vectors"]["detail"]
    note = await api.ok("POST", "/v1/notes", {"title": "Quay", "content": "Mooring fees"}, status=201)
    _, hit = await wait_found(api, "mooring", note["id"])
    assert hit["_mode"] == "keyword"
