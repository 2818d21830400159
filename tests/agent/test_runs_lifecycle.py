"""Run lifecycle edges: disconnects, restarts, replay, cancellation mid-tool, the terminal chat."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE
from sidecar.settings import Settings
from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input, text_of, types
from tests.conftest import Api, auth
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply
from tests.sse import SseReader

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def _events(api: Api, thread: str, after: int = 0) -> list[tuple[int, dict]]:  # type: ignore[type-arg]
    resp = await api.client.get(f"/v1/agent/threads/{thread}/events?after={after}", headers=auth())
    assert resp.status == 200
    reader = SseReader(resp)
    out = []
    while True:
        try:
            ev = await reader.next(timeout=10)
        except EOFError:
            return out
        out.append((int(ev.id or 0), ev.json()))


async def test_client_disconnect_mid_stream_does_not_stop_the_run(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(
        ToolCallsReply(calls=[ToolCallSpec(name="create_task", arguments={"title": "Survives disconnect"})], chunk_delay_s=0.2),
        TextReply(text="created", n_chunks=3, chunk_delay_s=0.2),
    )
    resp = await api.client.post("/v1/agent/runs", data=json.dumps(run_input("t-dc", "go", run_id="r-dc")),
                                 headers=auth({"Content-Type": "application/json"}))
    first = await SseReader(resp).next()
    assert first["type"] if isinstance(first, dict) else first.json()["type"] == "RUN_STARTED"
    resp.close()  # the shell window reloads
    for _ in range(100):
        hist = await api.ok("GET", "/v1/agent/threads/t-dc/history")
        if hist["runs"][-1]["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert hist["runs"][-1]["status"] == "finished"
    assert (await api.ok("GET", "/v1/tasks?q=Survives"))["total"] == 1
    stored = [e for _, e in await _events(api, "t-dc")]
    assert_terminal_rules(stored)


async def test_thread_events_replay_then_live_tail_without_gaps(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="first answer"))
    await run(api, run_input("t-ev", "one"))
    stored = await _events(api, "t-ev")
    seqs = [s for s, _ in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert types([e for _, e in stored])[0] == "RUN_STARTED"
    fake.push(TextReply(text="second answer is slower", n_chunks=6, chunk_delay_s=0.15))
    running = asyncio.create_task(run(api, run_input("t-ev", "two", history=[])))
    await fake.wait_for_chat_requests(2)
    tail = await _events(api, "t-ev", after=seqs[-1])  # stored part of run 2, then live until it ends
    live = await running
    assert [e for _, e in tail] == live
    assert [s for s, _ in tail] == sorted({s for s, _ in tail})
    assert (await _events(api, "t-ev", after=tail[-1][0])) == []


async def test_cancel_while_tool_call_streams(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="create_task", arguments={"title": "never"}, n_chunks=6)], chunk_delay_s=0.3))
    task = asyncio.create_task(run(api, run_input("t-ct", "x", run_id="r-ct")))
    await fake.wait_for_chat_requests(1)
    await asyncio.sleep(0.6)
    await api.ok("POST", "/v1/agent/runs/r-ct/cancel")
    events = await asyncio.wait_for(task, 10)
    final = assert_terminal_rules(events)
    assert final["outcome"]["type"] == "cancelled"
    assert (await api.ok("GET", "/v1/tasks"))["total"] == 0
    started = [e for e in events if e["type"] == "TOOL_CALL_START"]
    ended = [e for e in events if e["type"] == "TOOL_CALL_END"]
    assert len(started) == len(ended)  # every started call is closed for the client


async def test_invalid_tool_arguments_go_back_to_the_model(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(
        ToolCallsReply(calls=[ToolCallSpec(name="create_task", arguments={"title": "x", "due_date": "next blursday", "priority": "high"})]),
        ToolCallsReply(calls=[ToolCallSpec(name="update_task", arguments={"task_id": "no-such-task", "status": "done"})]),
        TextReply(text="Sorry."),
    )
    events = await run(api, run_input("t-bad", "add it"))
    assert assert_terminal_rules(events)["type"] == "RUN_FINISHED"
    results = [e["content"] for e in events if e["type"] == "TOOL_CALL_RESULT"]
    assert results[0].startswith("Error: due_date") and "2026-12-03" in results[0]
    assert "no task with id no-such-task" in results[1]
    assert (await api.ok("GET", "/v1/tasks"))["total"] == 0


async def test_restart_continues_the_thread_with_its_history(settings: Settings, fake: FakeLLMServer, memory_keyring) -> None:  # type: ignore[no-untyped-def]
    async def session(texts: list[str], replies: list[TextReply]) -> None:
        app = create_app(settings)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            app[HANDSHAKE_DONE].set()
            api = Api(client)
            await configure_model(api, fake)
            for text, reply in zip(texts, replies, strict=True):
                fake.push(reply)
                assert_terminal_rules(await run(api, run_input("t-restart", text)))

    await session(["My name is Ada."], [TextReply(text="Nice to meet you, Ada.")])
    await session(["What is my name?"], [TextReply(text="Ada.")])
    sent = json.dumps(fake.chat_requests[-1].messages)
    assert "My name is Ada." in sent and "Nice to meet you, Ada." in sent
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        hist = await Api(client).ok("GET", "/v1/agent/threads/t-restart/history")
        assert [m["role"] for m in hist["messages"]] == ["user", "assistant", "user", "assistant"]
        assert len(hist["runs"]) == 2


async def test_unknown_thread_is_404_and_bad_inputs_are_422(api: Api) -> None:
    for path in ("/v1/agent/threads/nope/history", "/v1/agent/threads/nope/events"):
        status, _ = await api.call("GET", path)
        assert status == 404
    for body in ({}, {"threadId": "t"}, {"threadId": 5, "runId": "r", "messages": []}, [1]):
        status, _ = await api.call("POST", "/v1/agent/runs", body)
        assert status == 422, body
    status, err = await api.call("PUT", "/v1/settings/model", {"model": ""})
    assert status == 422
    status, err = await api.call("PUT", "/v1/settings/model", {"model": "x", "temperature": 9})
    assert status == 422 and err["error"]["detail"][0]["field"] == "temperature"


async def test_model_settings_round_trip_and_readiness(api: Api, fake: FakeLLMServer) -> None:
    got = await api.ok("GET", "/v1/settings/model")
    assert got == {"configured": False, "settings": None, "apiKeySet": False}
    await api.ok("PUT", "/v1/secrets/llm-key", {"value": "sk-local-12345678"})
    saved = await api.ok("PUT", "/v1/settings/model", {"model": "openai/fake-model", "apiBase": fake.base_url, "apiKeySecret": "llm-key"})
    assert saved["configured"] and saved["apiKeySet"] and saved["settings"]["apiBase"] == fake.base_url
    assert "sk-local" not in json.dumps(saved)
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["agent"]["state"] == "ok"
    fake.api_key = "sk-local-12345678"
    fake.push(TextReply(text="authorised"))
    events = await run(api, run_input("t-key", "hi"))
    assert text_of(events) == "authorised"


async def _chat(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "chat", "--data-dir", str(data_dir), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env, cwd=REPO)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_terminal_chat_runs_tools_and_confirms(tmp_path: Path, fake: FakeLLMServer) -> None:
    fake.push(
        ToolCallsReply(calls=[ToolCallSpec(name="create_task", arguments={"title": "Call the plumber"})]),
        TextReply(text="Added it."),
    )
    code, out = await _chat(tmp_path, "remind me to call the plumber", "--model", "openai/fake-model", "--api-base", fake.base_url)
    assert code == 0, out
    assert "→ create_task(" in out and "← Created task" in out and "Added it." in out and "[usage]" in out
    thread = out.split("[thread ")[1].split("]")[0]
    task_id = out.split("Created task [")[1].split("]")[0]
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="delete_task", arguments={"task_id": task_id})]), TextReply(text="Gone."))
    code, out = await _chat(tmp_path, "delete it", "--thread", thread)
    assert code == 0 and "needs your confirmation: delete_task" in out, out
    code, out = await _chat(tmp_path, "--thread", thread, "--approve")
    assert code == 0 and "Deleted task" in out and "Gone." in out, out
    code, out = await _chat(tmp_path / "other", "hello")
    assert code == 1 and "model_not_configured" in out


async def test_terminal_chat_offers_the_tools_of_a_served_run(api: Api, fake: FakeLLMServer, tmp_path: Path) -> None:
    """The terminal chat runs the served application: the search part's ``search`` and
    ``update_core_memory`` are among its tools, and the tool list is the served run's."""
    await configure_model(api, fake)
    fake.push(TextReply(text="hi"))
    await run(api, run_input("served", "hello"))
    served = [t["function"]["name"] for t in fake.chat_requests[-1].tools]
    fake.push(TextReply(text="hi"))
    code, out = await _chat(tmp_path, "hello", "--model", "openai/fake-model", "--api-base", fake.base_url)
    assert code == 0, out
    in_chat = [t["function"]["name"] for t in fake.chat_requests[-1].tools]
    assert {"search", "update_core_memory"} <= set(in_chat)
    assert sorted(in_chat) == sorted(served)


async def test_terminal_chat_refuses_a_data_dir_in_use(tmp_path: Path) -> None:
    from sidecar.lifecycle import claim_data_dir

    with claim_data_dir(tmp_path):
        code, out = await _chat(tmp_path, "hello")
    assert code == 3 and "another sidecar is using" in out
