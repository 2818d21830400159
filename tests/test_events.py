"""`GET /v1/events`: committed changes reach the shell fast, exactly once, resumably."""

from __future__ import annotations

import asyncio
import time

from sidecar.appstate import NOTIFICATIONS
from tests.conftest import Api, auth
from tests.schema_check import check_document
from tests.sse import SseReader


async def _open(api: Api, query: str = "", headers: dict[str, str] | None = None) -> SseReader:
    resp = await api.client.get(f"/v1/events{query}", headers=auth(headers))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return SseReader(resp)


async def test_change_from_another_request_arrives_within_100ms(api: Api) -> None:
    """Latency = event arrival − the moment the creating request returned (its commit is done by
    then); an event that arrived first counts as 0."""
    stream = await _open(api)
    arrivals: list[tuple[float, object]] = []

    async def read() -> None:
        while True:
            ev = await stream.next(timeout=5)
            arrivals.append((time.perf_counter(), ev))

    reader = asyncio.create_task(read())
    latencies = []
    try:
        for i in range(5):
            created = await api.ok("POST", "/v1/tasks", {"title": f"live {i}"}, status=201)
            committed = time.perf_counter()
            while len(arrivals) <= i:
                await asyncio.sleep(0.001)
                assert time.perf_counter() - committed < 2, "change never arrived"
            arrived, ev = arrivals[i]
            latencies.append(max(0.0, arrived - committed))
            assert ev.event == "change"  # type: ignore[attr-defined]
            data = ev.json()  # type: ignore[attr-defined]
            check_document("events.change", data)
            assert (data["entity"], data["id"], data["op"]) == ("tasks", created["id"], "insert")
            assert data["fields"]["title"] == f"live {i}"
            assert ev.id == str(data["seq"])  # type: ignore[attr-defined]
    finally:
        reader.cancel()
    assert max(latencies) < 0.1, latencies


async def test_resume_after_seq_has_no_gaps_or_repeats(api: Api) -> None:
    for i in range(5):
        await api.ok("POST", "/v1/notes", {"title": f"n{i}"}, status=201)
    stream = await _open(api, "?after=2")
    seqs = [int((await stream.next()).id or 0) for _ in range(3)]
    assert seqs == [3, 4, 5]
    for i in range(3):
        await api.ok("POST", "/v1/notes", {"title": f"m{i}"}, status=201)
    seqs += [int((await stream.next()).id or 0) for _ in range(3)]
    assert seqs == [3, 4, 5, 6, 7, 8]
    # Reconnect as a browser would, with Last-Event-ID.
    stream2 = await _open(api, headers={"Last-Event-ID": "6"})
    assert [int((await stream2.next()).id or 0) for _ in range(2)] == [7, 8]


async def test_concurrent_writes_are_all_delivered_in_order(api: Api) -> None:
    stream = await _open(api, "?after=0")
    await asyncio.gather(*(api.ok("POST", "/v1/tasks", {"title": f"c{i}"}, status=201) for i in range(50)))
    seqs = [int((await stream.next()).id or 0) for _ in range(50)]
    assert seqs == list(range(1, 51))


async def test_heartbeat_comments_and_lf_framing(api: Api) -> None:
    stream = await _open(api)
    await api.ok("POST", "/v1/tasks", {"title": "x"}, status=201)
    await stream.next()
    deadline = time.monotonic() + 3
    while not stream.comments and time.monotonic() < deadline:
        try:
            await stream.next(timeout=0.3)
        except TimeoutError:
            pass
    assert stream.comments, "no heartbeat comment within 3 s (interval 0.5 s)"
    assert b"\r" not in stream.raw


async def test_transient_events_are_delivered(api: Api) -> None:
    stream = await _open(api)
    await asyncio.sleep(0.05)
    api.app[NOTIFICATIONS].publish("ingest.progress", {"watchId": "w", "runId": "r", "done": 1, "total": 3})
    ev = await stream.next()
    assert ev.event == "ingest.progress" and ev.json()["total"] == 3 and ev.id is None
    check_document("events.ingest-progress", ev.json())


async def test_bad_resume_points_are_422(api: Api) -> None:
    for query, headers in (("?after=-1", None), ("?after=abc", None), ("", {"Last-Event-ID": "x1"})):
        resp = await api.client.get(f"/v1/events{query}", headers=auth(headers))
        assert resp.status == 422, (query, headers)
