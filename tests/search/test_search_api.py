"""Search over notes and other entities through the real API: keyword within 2 s, by meaning
once embedded, updates replace, deletes remove, restarts resume from the cursor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE, SEARCH, STORE
from sidecar.settings import Settings
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from tests.agent.runs_helpers import configure_model, run, run_input
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply
from tests.fakes.memory_keyring import MemoryKeyring
from tests.schema_check import PROBLEMS, validating_middleware
from tests.search.helpers import IDLE, ready_vectors, search, wait_found, wait_gone, wait_idle

DEPLOY = ("Deployment notes", "The production rollout of the billing service failed because the database "
          "migration timed out. We rolled back and will retry on Thursday.")


async def test_note_found_by_keyword_then_by_meaning_update_and_delete(api: Api) -> None:
    # an empty data dir: nothing to index, so the index is idle (not loaded) but not an error
    status = await ready_vectors(api, load=False)
    assert status["state"] == "ok" and status["detail"].startswith(IDLE), status
    # the first note is work to index: it loads the index, and is found
    other = await api.ok("POST", "/v1/notes", {"title": "Groceries", "content": "Buy apples, bread and milk."},
                         status=201)
    await wait_found(api, "apples", other["id"], timeout=30.0)
    status = await ready_vectors(api)
    assert status["state"] == "ok" and "wordllama" in status["detail"], status
    # with the index loaded, a new note is found by keyword within 2 s
    note = await api.ok("POST", "/v1/notes", {"title": DEPLOY[0], "content": DEPLOY[1]}, status=201)
    took, hit = await wait_found(api, "migration", note["id"])
    assert took < 2.0
    assert hit["kind"] == "note" and hit["title"] == "Deployment notes" and hit["source"] is None
    assert "migration" in hit["snippet"]
    s, e = hit["highlights"][0]
    assert hit["snippet"][s:e].lower() == "migration"
    # a paraphrase sharing no word with the note
    _, hit = await wait_found(api, "software release went wrong", note["id"], mode="vector")
    res = await search(api, "software release went wrong")
    assert res["mode"] == "hybrid"
    assert res["items"][0]["entityId"] == note["id"], res
    # update: old text no longer matches, new text does
    await api.ok("PATCH", f"/v1/notes/{note['id']}", {"content": "Venue booked: the harbour hall for June."})
    await wait_gone(api, "migration", note["id"], mode="keyword")
    await wait_found(api, "harbour", note["id"], mode="keyword")
    # delete removes it
    await api.ok("DELETE", f"/v1/notes/{note['id']}")
    await wait_gone(api, "harbour", note["id"], mode="keyword")
    await wait_found(api, "apples", other["id"])


async def test_kinds_and_filters(api: Api) -> None:
    await ready_vectors(api)
    project = await api.ok("POST", "/v1/projects", {"name": "Wedding venue"}, status=201)
    task = await api.ok("POST", "/v1/tasks", {"title": "Call the caterer about the menu", "projectId": project["id"],
                                               "dueDate": 1_800_000_000_000}, status=201)
    await api.ok("POST", "/v1/tasks", {"title": "Caterer invoice for the office party"}, status=201)
    comment = await api.ok("POST", f"/v1/tasks/{task['id']}/comments",
                           {"author": "Ana", "content": "The caterer prefers a vegetarian menu"}, status=201)
    tl = await api.ok("POST", "/v1/timelines", {"projectId": project["id"], "title": "Caterer tasting",
                                                "date": 1_790_000_000_000}, status=201)
    await wait_found(api, "caterer", comment["id"], kind="comment")
    res = await search(api, "caterer", projectId=project["id"], mode="keyword")
    ids = {h["entityId"] for h in res["items"]}
    assert {task["id"], comment["id"], tl["id"]} <= ids and len(ids) == 3, res
    res = await search(api, "caterer", kind="timeline")
    assert [h["entityId"] for h in res["items"]] == [tl["id"]]
    res = await search(api, "caterer", dateFrom=1_799_000_000_000, kind="task")
    assert [h["entityId"] for h in res["items"]] == [task["id"]]
    await wait_found(api, "wedding", project["id"], kind="project")
    # deleting the project cascades to its milestone: gone from the index too
    await api.ok("DELETE", f"/v1/projects/{project['id']}")
    await wait_gone(api, "tasting", tl["id"], mode="keyword")


async def test_bad_queries_are_4xx(api: Api) -> None:
    await ready_vectors(api)
    for query in ("", "?q=", "?q=x&kind=email", "?q=x&limit=0", "?q=x&limit=1000", "?q=x&projectId=a%20b"):
        status, body = await api.call("GET", "/v1/search" + query)
        assert status == 422, (query, status, body)
    # FTS query syntax characters are just text
    note = await api.ok("POST", "/v1/notes", {"title": "Quoted", "content": 'She said "harbour" twice'}, status=201)
    await wait_found(api, "harbour", note["id"])
    for q in ('"harbour"', '"harbour', 'harbour AND OR', "harbour:x", "harbour (", "harbour *", "harbour'; DROP"):
        res = await search(api, q, mode="keyword")
        assert note["id"] in [h["entityId"] for h in res["items"]], q
    for q in ('"', "*", "ü"):
        assert isinstance((await search(api, q))["items"], list)


async def test_no_embedder_is_keyword_only_and_degraded(api: Api) -> None:
    await ready_vectors(api)
    before = await api.ok("POST", "/v1/notes", {"title": "Kept", "content": "Indexed before the change"}, status=201)
    view = await api.ok("PUT", "/v1/settings/embedder", {"model": "none"})
    assert view["settings"]["model"] == "none" and view["changing"]
    while view["changing"]:
        await asyncio.sleep(0.05)
        view = await api.ok("GET", "/v1/settings/embedder")
    await wait_idle(api)
    view = await api.ok("GET", "/v1/settings/embedder")
    assert view["active"]["table"] == "chunks_keyword" and view["building"] is None
    note = await api.ok("POST", "/v1/notes", {"title": DEPLOY[0], "content": DEPLOY[1]}, status=201)
    _, hit = await wait_found(api, "rollout", note["id"])
    assert hit["_mode"] == "keyword"
    await wait_found(api, "indexed", before["id"])  # rebuilt from the database, not lost
    await wait_idle(api)
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["vectors"]["state"] == "degraded"
    assert "keyword search only" in ready["components"]["vectors"]["detail"]
    view = await api.ok("GET", "/v1/settings/embedder")
    assert view["active"]["embedder"] is None


async def _app(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    app[PROBLEMS] = []
    app.middlewares.insert(0, validating_middleware)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        yield Api(client)
    assert not app[PROBLEMS], app[PROBLEMS]


async def test_restart_loses_nothing_and_re_embeds_nothing(settings: Settings, memory_keyring: MemoryKeyring) -> None:
    ids = []
    async for api in _app(settings):
        await ready_vectors(api)
        for i in range(30):
            n = await api.ok("POST", "/v1/notes", {"title": f"Note {i}", "content": f"Kestrel sighting number {i}"},
                             status=201)
            ids.append(n["id"])
        await wait_found(api, "kestrel", ids[-1], limit=100)
        await wait_idle(api)
        before = api.app[SEARCH].indexer.active.table.stats().rows  # type: ignore[union-attr]
    # while stopped, one more change lands in the database (as `sidecar chat` would write it)
    store = await Store.open(settings.db_path)
    offline = await Repository(store).create("notes", {"title": "Offline", "content": "Kestrel seen offline"})
    await store.close()
    async for api in _app(settings):
        await ready_vectors(api)
        service = api.app[SEARCH]
        await wait_found(api, "kestrel", offline.id, limit=100)
        await wait_idle(api)
        # only the note written while stopped was embedded: the cursor resumed after the rest
        assert service.embedder is not None and service.embedder.embedded == 1
        assert service.indexer.active.table.stats().rows == before + 1  # type: ignore[union-attr]
        res = await search(api, "kestrel", limit=100)
        assert {h["entityId"] for h in res["items"]} == {*ids, offline.id}


async def test_index_progress_on_the_events_stream(api: Api) -> None:
    from tests.conftest import auth
    from tests.schema_check import check_document
    from tests.sse import SseReader

    await ready_vectors(api)
    resp = await api.client.get("/v1/events", headers=auth())
    stream = SseReader(resp)
    await api.ok("POST", "/v1/notes", {"title": "Progress", "content": "watch me"}, status=201)
    seen = []
    for _ in range(20):
        ev = await stream.next(timeout=5)
        seen.append(ev.event)
        if ev.event == "index.progress":
            data = ev.json()
            check_document("events.index-progress", data)
            if data["seq"] >= 1:  # the batch holding the note's change
                assert data["building"] is False and data["table"].startswith("chunks_")
                break
    else:
        raise AssertionError(f"no index.progress event: {seen}")


async def _timed_indexing(api: Api, work: Any, after_s: float) -> tuple[list[float], list[float]]:
    """Runs ``work()``, then waits ``after_s``; returns the loop times of the commits that
    logged changes meanwhile and of the indexer's batches begun meanwhile."""
    indexer = api.app[SEARCH].indexer
    assert indexer is not None
    loop = asyncio.get_running_loop()
    commits: list[float] = []
    api.app[STORE].on_commit(lambda entries: commits.append(loop.time()))
    steps: list[float] = []
    real_step = indexer._step

    async def step() -> bool:
        steps.append(loop.time())
        return await real_step()

    indexer._step = step  # type: ignore[method-assign]
    try:
        await work()
        await asyncio.sleep(after_s)
    finally:
        indexer._step = real_step  # type: ignore[method-assign]
    assert commits, "nothing was committed"
    return commits, steps


async def _burst(api: Api, n: int, gap_s: float) -> tuple[list[float], list[float]]:
    """``n`` task creations ``gap_s`` apart (an agent run's tool calls); returns the loop times
    of the commits and of the indexer's batches begun meanwhile and up to 1 s after."""
    async def creations() -> None:
        for i in range(n):
            await api.ok("POST", "/v1/tasks", {"title": f"burst task {i}"}, status=201)
            await asyncio.sleep(gap_s)

    return await _timed_indexing(api, creations, 1.0)


async def test_indexing_waits_for_a_burst_of_changes_to_end(api: Api) -> None:
    """Embedding and a LanceDB write in the middle of an agent run's tool calls took the CPU
    they were waiting for: the writer starts once no change has come for its debounce."""
    await ready_vectors(api)
    await wait_idle(api)
    indexer = api.app[SEARCH].indexer
    assert indexer is not None
    indexer.debounce_ms = 300  # far above the gaps between these changes, on a loaded machine too
    commits, steps = await _burst(api, 15, 0.02)  # 15 changes over ~0.5 s, 20 ms apart
    assert steps, "the burst was never indexed"
    assert steps[0] > commits[-1], f"indexing began {commits[-1] - steps[0]:.2f} s before the burst ended"
    await wait_found(api, "burst", (await api.ok("GET", "/v1/tasks?q=burst+task+14"))["items"][0]["id"])


async def test_a_change_that_never_stops_is_indexed_within_the_max_delay(api: Api) -> None:
    await ready_vectors(api)
    await wait_idle(api)
    indexer = api.app[SEARCH].indexer
    assert indexer is not None
    indexer.debounce_ms, indexer.max_delay_ms = 300, 400
    commits, steps = await _burst(api, 50, 0.02)  # over 1 s of changes, never 300 ms apart
    assert steps and steps[0] < commits[-1], "nothing was indexed while the changes went on"
    assert steps[0] - commits[0] < 0.8, f"the first change waited {steps[0] - commits[0]:.2f} s"


async def _indexed_after_commit(api: Api, work: Any) -> tuple[float, list[float]]:
    """Runs ``work()``; returns the loop time of its first commit and of the indexer's batches
    begun from then until ``work`` has returned and 0.5 s more."""
    commits, steps = await _timed_indexing(api, work, 0.5)
    return commits[0], [t for t in steps if t >= commits[0]]


async def test_indexing_waits_while_an_agent_run_is_in_progress(api: Api) -> None:
    """A run's tool calls wait for the CPU, which indexing their changes took in between: the
    index catches up once the run has ended (here the model thinks 1.5 s after the tool call)."""
    await ready_vectors(api)
    await wait_idle(api)
    async with FakeLLMServer() as fake:
        await configure_model(api, fake, requestTimeoutS=10)
        fake.push(ToolCallsReply(calls=[ToolCallSpec(name="create_task", arguments={"title": "quarterly zebra report"})]),
                  TextReply(text="Done.", delay_s=1.5))
        ended: list[float] = []

        async def agent_run() -> None:
            await run(api, run_input("t-index", "make it"))
            ended.append(asyncio.get_running_loop().time())

        committed, steps = await _indexed_after_commit(api, agent_run)
    assert steps, "the run's task was never indexed"
    assert steps[0] - committed > 1.2, f"indexed {steps[0] - committed:.2f} s after the commit, during the run"
    assert steps[0] < ended[0] + 0.5
    task = (await api.ok("GET", "/v1/tasks?q=zebra"))["items"][0]
    await wait_found(api, "zebra", task["id"])


async def test_a_run_that_goes_on_defers_indexing_at_most_its_bound(api: Api) -> None:
    await ready_vectors(api)
    await wait_idle(api)
    indexer = api.app[SEARCH].indexer
    assert indexer is not None
    indexer.defer_max_ms = 400
    assert indexer.foreground is not None
    indexer.foreground.begin()  # a run that never ends

    async def create() -> None:
        await api.ok("POST", "/v1/tasks", {"title": "patient task"}, status=201)
        await asyncio.sleep(1.0)

    committed, steps = await _indexed_after_commit(api, create)
    assert steps and 0.35 < steps[0] - committed < 1.0, [round(t - committed, 2) for t in steps]
