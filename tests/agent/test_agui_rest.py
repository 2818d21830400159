"""The rest of AG-UI a shell uses: client-side tools, state and messages snapshots, steps,
reasoning events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.agent.runs_helpers import (
    assert_terminal_rules,
    configure_model,
    delete_then_approve,
    run,
    run_input,
    text_of,
    types,
)
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply, message_text

OPEN_PAGE = {"name": "open_page", "description": "Open a page of the app for the user.",
             "parameters": {"type": "object", "properties": {"page": {"type": "string"}}, "required": ["page"]}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def test_client_tool_call_ends_the_run_and_its_result_comes_back(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="open_page", arguments={"page": "calendar"}, id="ct1")]),
              TextReply(text="The calendar is open."))
    first = run_input("t-ct", "show my calendar")
    first["tools"] = [OPEN_PAGE]
    events = await run(api, first)
    final = assert_terminal_rules(events)
    assert final["type"] == "RUN_FINISHED" and final["outcome"]["type"] == "success"
    start = next(e for e in events if e["type"] == "TOOL_CALL_START")
    assert start["toolCallName"] == "open_page" and start["toolCallId"] == "ct1"
    assert "TOOL_CALL_END" in types(events) and "TOOL_CALL_RESULT" not in types(events)  # the shell runs it
    offered = {t["function"]["name"] for t in fake.chat_requests[0].tools}
    assert "open_page" in offered and "list_tasks" in offered
    assert len(fake.chat_requests) == 1

    # Without the result the thread cannot go on; with it, the model gets it as a tool message.
    status, err = await api.call("POST", "/v1/agent/runs", run_input("t-ct", "hello?"))
    assert status == 422 and err["error"]["code"] == "tool_results_missing"
    second = run_input("t-ct", None, history=[
        {"id": str(uuid.uuid4()), "role": "assistant", "toolCalls": [
            {"id": "ct1", "type": "function", "function": {"name": "open_page", "arguments": '{"page":"calendar"}'}}]},
        {"id": str(uuid.uuid4()), "role": "tool", "toolCallId": "ct1", "content": "opened calendar"}])
    second["tools"] = [OPEN_PAGE]
    events = await run(api, second)
    assert assert_terminal_rules(events)["outcome"]["type"] == "success"
    assert text_of(events) == "The calendar is open."
    last = fake.chat_requests[-1].messages
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool"]
    assert last[-1]["tool_call_id"] == "ct1" and message_text(last[-1]) == "opened calendar"


async def test_state_and_messages_snapshots(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="First answer."), TextReply(text="Second answer."))
    events = await run(api, run_input("t-snap", "first"))
    assert types(events)[:2] == ["RUN_STARTED", "STATE_SNAPSHOT"]
    assert events[1]["snapshot"]["mode"] == "home" and "MESSAGES_SNAPSHOT" not in types(events)
    events = await run(api, run_input("t-snap", "second"))
    assert types(events)[:3] == ["RUN_STARTED", "STATE_SNAPSHOT", "MESSAGES_SNAPSHOT"]
    snapshot = events[2]["messages"]
    assert [(m["role"], m["content"]) for m in snapshot] == [("user", "first"), ("assistant", "First answer."),
                                                            ("user", "second")]
    floating = await run(api, run_input("t-snap-f", "x", mode="floating", scope={"type": "project", "id": "p1"}))
    assert types(floating)[:3] == ["RUN_STARTED", "CUSTOM", "STATE_SNAPSHOT"]  # domain stays first
    assert floating[2]["snapshot"] == {"mode": "floating", "domain": "projects", "entityId": "p1",
                                       "model": "openai/fake-model", "pendingToolCalls": []}


async def test_a_resumed_run_starts_with_the_messages_snapshot(api: Api, fake: FakeLLMServer) -> None:
    _, events = await delete_then_approve(api, fake, "t-rs", "delete it", "d1", after="Gone.")
    assert types(events)[:3] == ["RUN_STARTED", "STATE_SNAPSHOT", "MESSAGES_SNAPSHOT"]
    assert events[1]["snapshot"]["pendingToolCalls"] == ["d1"]
    roles = [m["role"] for m in events[2]["messages"]]
    assert roles == ["user", "assistant"] and events[2]["messages"][1]["toolCalls"][0]["id"] == "d1"


async def test_steps_and_reasoning(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="list_tasks", arguments={})]),
              TextReply(text="None open.", reasoning=["The list ", "is empty, ", "so say so."],
                        chunk_delay_s=0.02))  # one delta per chunk, as from a model slower than the relay
    events = await run(api, run_input("t-steps", "anything open?"))
    assert assert_terminal_rules(events)["outcome"]["type"] == "success"
    steps = [(e["type"], e["stepName"]) for e in events if e["type"].startswith("STEP_")]
    assert steps == [("STEP_STARTED", "step-1"), ("STEP_FINISHED", "step-1"),
                     ("STEP_STARTED", "step-2"), ("STEP_FINISHED", "step-2")]
    kinds = types(events)
    assert kinds.index("TOOL_CALL_RESULT") < kinds.index("STEP_STARTED", kinds.index("STEP_FINISHED"))
    reasoning = [e for e in events if e["type"].startswith("REASONING")]
    assert [e["type"] for e in reasoning] == ["REASONING_START", "REASONING_MESSAGE_START"] + \
        ["REASONING_MESSAGE_CONTENT"] * 3 + ["REASONING_MESSAGE_END", "REASONING_END"]
    assert "".join(e["delta"] for e in reasoning if "delta" in e) == "The list is empty, so say so."
    assert text_of(events) == "None open."
