"""Agent runs over real HTTP against the scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar.agent.tools import tool
from sidecar.api import agent as agent_api
from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input, text_of, types
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def test_run_without_model_is_run_error_model_not_configured(api: Api) -> None:
    events = await run(api, run_input("t1", "hello"))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_ERROR" and final["code"] == "model_not_configured"
    assert "/v1/settings/model" in final["message"]
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["agent"]["state"] in ("disabled", "starting")


async def test_text_run_streams_and_is_persisted(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="Hello there, how can I help?", n_chunks=5))
    events = await run(api, run_input("t-text", "hi"))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED" and final["outcome"]["type"] == "success"
    assert events[0]["protocolVersion"]
    assert text_of(events) == "Hello there, how can I help?"
    assert final["usage"][0]["inputTokens"] > 0
    hist = await api.ok("GET", "/v1/agent/threads/t-text/history")
    roles = [m["role"] for m in hist["messages"]]
    assert roles == ["user", "assistant"]
    assert hist["messages"][1]["content"] == "Hello there, how can I help?"
    assert hist["messages"][1]["usage"]["inputTokens"] > 0
    assert hist["runs"][0]["status"] == "finished"
    threads = await api.ok("GET", "/v1/agent/threads")
    assert threads["items"][0]["id"] == "t-text" and threads["items"][0]["title"] == "hi"


async def test_tool_run_creates_task_in_store_and_mutations_lists_it(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(
        ToolCallsReply(calls=[ToolCallSpec(name="create_task", arguments={"title": "Buy milk", "due_date": "2026-12-03", "priority": "high"})]),
        TextReply(text="Done: <task>[x]</task>", chunks=["Done: <ta", "sk>[x", "]</task>"]),
    )
    events = await run(api, run_input("t-tool", "remind me to buy milk"))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED"
    kinds = types(events)
    for k in ("TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"):
        assert k in kinds
    tasks = await api.ok("GET", "/v1/tasks")
    assert tasks["total"] == 1 and tasks["items"][0]["title"] == "Buy milk"
    assert tasks["items"][0]["priority"] == "high" and tasks["items"][0]["dueDate"]
    mutations = events[-2]["value"]
    assert [(m["entity"], m["op"], m["id"]) for m in mutations] == [("tasks", "insert", tasks["items"][0]["id"])]
    deltas = [e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert any("<task>[x]</task>" in d for d in deltas), deltas  # the tag is never split
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
    assert "Created task" in result["content"] and tasks["items"][0]["id"] in result["content"]


async def test_second_concurrent_run_on_a_thread_is_409(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="slow answer", n_chunks=4, chunk_delay_s=0.5))
    first = asyncio.create_task(run(api, run_input("t-busy", "one", run_id="run-1")))
    await fake.wait_for_chat_requests(1)
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-busy", "two"))
    assert status == 409 and err["error"]["detail"]["runId"] == "run-1"
    await first
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-other", "x", run_id="run-1"))
    assert status == 409  # run ids are never reused


async def test_cancel_mid_text(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="a b c d e f g h", n_chunks=8, chunk_delay_s=0.3))
    task = asyncio.create_task(run(api, run_input("t-cancel", "go", run_id="run-c")))
    await fake.wait_for_chat_requests(1)
    await asyncio.sleep(0.5)
    assert (await api.ok("POST", "/v1/agent/runs/run-c/cancel"))["cancelled"] is True
    events = await asyncio.wait_for(task, 10)
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED" and final["outcome"]["type"] == "cancelled"
    assert 0 < len(text_of(events)) < len("a b c d e f g h")
    hist = await api.ok("GET", "/v1/agent/threads/t-cancel/history")
    assert hist["runs"][-1]["status"] == "cancelled"
    assert (await api.ok("POST", "/v1/agent/runs/run-c/cancel"))["cancelled"] is False
    status, _ = await api.call("POST", f"/v1/agent/runs/{uuid.uuid4()}/cancel")
    assert status == 404


async def test_delete_needs_confirmation_interrupt_then_resume(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    task = await api.ok("POST", "/v1/tasks", {"title": "Old task"}, status=201)
    fake.push(
        ToolCallsReply(calls=[ToolCallSpec(name="delete_task", arguments={"task_id": task["id"]}, id="call-del")]),
        TextReply(text="Deleted it."),
    )
    events = await run(api, run_input("t-del", "delete the old task"))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED" and final["outcome"]["type"] == "interrupt"
    interrupt = final["outcome"]["interrupts"][0]
    assert interrupt["toolCallId"] == "call-del" and interrupt["metadata"]["toolName"] == "delete_task"
    assert (await api.ok("GET", f"/v1/tasks/{task['id']}"))["title"] == "Old task"  # not yet
    events = await run(api, run_input("t-del", None, resume=[{"interruptId": "call-del", "status": "resolved", "payload": {"approved": True}}]))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED" and final["outcome"]["type"] == "success"
    status, _ = await api.call("GET", f"/v1/tasks/{task['id']}")
    assert status == 404
    assert [(m["entity"], m["op"]) for m in events[-2]["value"]] == [("tasks", "delete")]


async def test_rejected_delete_does_not_happen_and_model_is_told(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    task = await api.ok("POST", "/v1/tasks", {"title": "Keep me"}, status=201)
    fake.push(
        ToolCallsReply(calls=[ToolCallSpec(name="delete_task", arguments={"task_id": task["id"]}, id="call-x")]),
        TextReply(text="OK, I kept it."),
    )
    await run(api, run_input("t-rej", "delete it"))
    events = await run(api, run_input("t-rej", None, resume=[{"interruptId": "call-x", "status": "resolved", "payload": {"approved": False}}]))
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED" and events[-2]["value"] == []
    assert (await api.ok("GET", f"/v1/tasks/{task['id']}"))["title"] == "Keep me"
    last_request = fake.chat_requests[-1]
    assert "denied" in str(last_request.messages).lower() or "reject" in str(last_request.messages).lower()


async def test_floating_mode_emits_domain_first_and_limits_tools(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="Here are your notes."))
    events = await run(api, run_input("t-float", "summarise", mode="floating", scope={"type": "note", "id": "n1"}))
    assert events[1] == {**events[1], "type": "CUSTOM", "name": "domain", "value": "notes"}
    assert_terminal_rules(events)
    tool_names = {t["function"]["name"] for t in fake.chat_requests[-1].tools or []}
    assert "create_note" in tool_names and "create_task" not in tool_names
    status, _ = await api.call("POST", "/v1/agent/runs", run_input("t-f2", "x", mode="floating", scope={"type": "bogus"}))
    assert status == 422


async def test_model_errors_end_with_distinct_codes(api: Api, fake: FakeLLMServer) -> None:
    from tests.fakes.llm_server import ErrorReply

    await configure_model(api, fake, maxRetries=0)
    fake.push(ErrorReply(status=401))
    final = assert_terminal_rules(await run(api, run_input("t-e1", "x")))
    assert final["type"] == "RUN_ERROR" and final["code"] == "model_auth"
    fake.push(ErrorReply(status=429, retry_after=0.01))
    final = assert_terminal_rules(await run(api, run_input("t-e2", "x")))
    assert final["code"] == "model_rate_limited"
    fake.push(TextReply(text="never finishes", n_chunks=3, stall_after=1, stall_s=10))
    final = assert_terminal_rules(await run(api, run_input("t-e3", "x")))
    assert final["code"] == "model_timeout"
    await api.ok("PUT", "/v1/settings/model", {"model": "openai/fake-model", "apiBase": "http://127.0.0.1:9", "maxRetries": 0})
    final = assert_terminal_rules(await run(api, run_input("t-e4", "x")))
    assert final["code"] == "model_unavailable" and "apiBase" in final["message"]


async def test_input_mistakes_are_http_errors_before_the_stream(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-in", None, resume=[{"interruptId": "x", "status": "resolved"}]))
    assert status == 409 and err["error"]["code"] == "nothing_to_resume"
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-in", None))
    assert status == 422 and err["error"]["code"] == "no_input"
    task = await api.ok("POST", "/v1/tasks", {"title": "Pending"}, status=201)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="delete_task", arguments={"task_id": task["id"]}, id="call-p")]),
              TextReply(text="Deleted."))
    await run(api, run_input("t-in", "delete it"))
    # The shell restarted and sends a new message instead of answering: refused, nothing lost.
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-in", "something else"))
    assert status == 409 and err["error"]["code"] == "interrupt_pending"
    assert err["error"]["detail"]["interrupts"] == ["call-p"]
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-in", None, resume=[{"interruptId": "nope", "status": "resolved"}]))
    assert status == 422 and err["error"]["code"] == "unknown_interrupt"
    events = await run(api, run_input("t-in", None, resume=[{"interruptId": "call-p", "status": "resolved", "payload": {"approved": True}}]))
    assert assert_terminal_rules(events)["type"] == "RUN_FINISHED"
    assert events[0]["input"]["resume"][0]["interruptId"] == "call-p"  # RUN_STARTED carries the input


class _ProbeToolExtension:
    """An extension whose one tool notes, when it starts, which events of the run are still
    waiting in the run's subscriber queues (not yet written to the shell)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.waiting: list[str] = []

    def tools(self) -> list[Any]:
        return [self.weekly_report]

    async def core(self) -> dict[str, str] | None:
        return None

    async def before_run(self, thread_id: str, user_text: str) -> str:
        return ""

    async def after_run(self, *args: Any) -> None:
        return None

    @tool("tasks")
    async def weekly_report(self) -> str:
        """Build the weekly report."""
        handle = self.service._by_thread["t-report"]
        self.waiting = [str(item.event.type.value) for q in handle.subscribers for item in list(q._queue) if item]
        return "report ready"


async def test_a_tool_result_is_sent_before_the_next_call_runs(api: Api, fake: FakeLLMServer) -> None:
    """The shell shows each tool's result as it comes, not once the next tool has run (the agent
    goes from one call to the next without waiting, so the relay got its turn only then)."""
    service = api.app[agent_api.AGENT]
    probe = _ProbeToolExtension(service)
    service.extensions.append(probe)
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="list_projects", arguments={}, id="first"),
                                    ToolCallSpec(name="weekly_report", arguments={}, id="second")]),
              TextReply(text="Done."))
    events = await run(api, run_input("t-report", "report"))
    assert [e["content"] for e in events if e["type"] == "TOOL_CALL_RESULT"][1] == "report ready"
    assert "TOOL_CALL_RESULT" not in probe.waiting, probe.waiting
