"""Agent runs under abuse (issue 9): one run per thread holds under concurrency, a duplicate run
id is a 409 (never a 500), cancel reaches the run that holds the thread, no run stays
registered without a task that ends it, and provider errors never carry a secret out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.agent.runs import new_run_input
from sidecar.api import agent as agent_api
from sidecar.settings import Settings
from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input
from tests.conftest import Api, auth
from tests.fakes.llm_server import ErrorReply, FakeLLMServer, TextReply


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def _post(api: Api, body: dict[str, object]) -> int:
    resp = await api.client.post("/v1/agent/runs", data=json.dumps(body),
                                 headers=auth({"Content-Type": "application/json"}))
    status = resp.status
    resp.close()  # the run goes on without a reader
    return status


async def test_concurrent_runs_on_one_thread_admit_exactly_one(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    for _ in range(20):
        fake.push(TextReply(text="slow", n_chunks=4, chunk_delay_s=0.3))
    statuses = await asyncio.gather(*(_post(api, run_input("t-race", "go")) for _ in range(20)))
    assert sorted(statuses) == [200] + [409] * 19, statuses


async def test_one_run_id_posted_ten_times_is_one_run_and_cancel_reaches_it(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    for _ in range(10):
        fake.push(TextReply(text="slow answer", n_chunks=10, chunk_delay_s=1.0))
    bodies = [run_input(f"t-dup-{i}", "go", run_id="run-dup") for i in range(10)]
    statuses = await asyncio.gather(*(_post(api, b) for b in bodies))
    assert sorted(statuses) == [200] + [409] * 9, statuses
    status, body = await api.call("POST", "/v1/agent/runs/run-dup/cancel")
    assert status == 200 and body["cancelled"] is True, body
    service = api.app[agent_api.AGENT]
    run_row = None
    for _ in range(100):  # the thread is freed and the run recorded cancelled (in either order)
        run_row = await api.app[agent_api.HISTORY].run("run-dup")
        if service.handle("run-dup") is None and run_row is not None and run_row.status != "running":
            break
        await asyncio.sleep(0.05)
    assert service.handle("run-dup") is None
    assert run_row is not None and run_row.status == "cancelled"


async def test_a_run_whose_task_never_ran_is_ended_by_the_watchdog(api: Api, fake: FakeLLMServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar.agent import runs as runs_mod

    monkeypatch.setattr(runs_mod, "ORPHAN_AFTER_S", 0.5)
    await configure_model(api, fake)
    service = api.app[agent_api.AGENT]
    handle, queue = await service.start(new_run_input("t-orphan", "hi", run_id="run-orphan"))
    assert handle.task is not None
    handle.task.cancel()  # cancelled before its first step: its own finally never runs
    events = []
    async with asyncio.timeout(5):
        while (item := await queue.get()) is not None:
            events.append(item.event)
    assert events and type(events[-1]).__name__ == "RunErrorEvent"
    assert service.active_run("t-orphan") is None
    assert (await api.app[agent_api.HISTORY].run("run-orphan")).status == "error"  # type: ignore[union-attr]
    fake.push(TextReply(text="fine again"))
    final = assert_terminal_rules(await run(api, run_input("t-orphan", "again")))
    assert final["type"] == "RUN_FINISHED"


async def test_provider_errors_quoting_the_key_are_redacted_everywhere(api: Api, fake: FakeLLMServer,
                                                                      settings: Settings) -> None:
    key = "sk-live-" + uuid.uuid4().hex
    await api.ok("PUT", "/v1/secrets/openai", {"value": key})
    await configure_model(api, fake, maxRetries=0, apiKeySecret="openai")
    fake.push(ErrorReply(status=401, message=f"Incorrect API key provided: {key}. Find yours at example."))
    events = await run(api, run_input("t-key", "x"))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_ERROR"
    assert key not in json.dumps(events)
    status, history = await api.call("GET", "/v1/agent/threads/t-key/history")
    assert status == 200 and key not in json.dumps(history)
    replay = await api.client.get("/v1/agent/threads/t-key/events?after=0",
                                  headers=auth())
    assert key not in await replay.text()
    db = Path(settings.db_path)
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert key.encode() not in raw
