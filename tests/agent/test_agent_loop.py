"""A real AgentScope 2.x ``Agent`` with LiteLLMChatModel and FunctionTools, end to end over HTTP.

Proves that tool calling works with the installed AgentScope / LiteLLM / mcp versions, and pins
down the behaviours the run lifecycle relies on (see docs/agentscope-notes.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agentscope.agent import Agent, InjectionConfig, ReActConfig
from agentscope.event import (
    AgentEvent,
    ConfirmResult,
    EventType,
    RequireUserConfirmEvent,
    UserConfirmResultEvent,
)
from agentscope.message import Msg, TextBlock, UserMsg
from agentscope.permission import PermissionBehavior, PermissionDecision
from agentscope.state import AgentState
from agentscope.tool import FunctionTool, Toolkit

from sidecar.agent.litellm_env import configure_agentscope_logging
from sidecar.agent.model import LiteLLMChatModel, ModelAuthError
from tests.agent.conftest import ModelFactory
from tests.fakes.llm_server import (
    ErrorReply,
    FakeLLMServer,
    Rule,
    TextReply,
    ToolCallSpec,
    ToolCallsReply,
)

ALLOW = PermissionDecision(behavior=PermissionBehavior.ALLOW, message="Safe: always allowed.")
deleted: list[str] = []


async def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return f"{a} + {b} = {a + b}"


async def delete_task(task_id: str) -> str:
    """Delete a task.

    Args:
        task_id: Id of the task to delete.
    """
    deleted.append(task_id)
    return f"Deleted task {task_id}."


def make_agent(model: LiteLLMChatModel, state: AgentState | None = None, **react: Any) -> Agent:
    configure_agentscope_logging()
    toolkit = Toolkit(tools=[FunctionTool(add, permission=ALLOW), FunctionTool(delete_task)])
    return Agent(
        name="assistant",
        system_prompt="You manage tasks.",
        model=model,
        toolkit=toolkit,
        state=state,
        injection_config=InjectionConfig(timezone="Europe/Berlin"),
        react_config=ReActConfig(**react),
    )


async def run(agent: Agent, inputs: Any) -> list[AgentEvent]:
    return [ev async for ev in agent.reply_stream(inputs) if not isinstance(ev, Msg)]


def types(events: list[AgentEvent]) -> list[str]:
    return [str(e.type) for e in events]


async def test_react_loop_calls_an_allowed_tool_then_answers(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(
        ToolCallsReply(calls=[ToolCallSpec(id="call_1", name="add", arguments={"a": 2, "b": 3})]),
        TextReply(text="The sum is 5.", n_chunks=3),
    )
    agent = make_agent(make_model())
    events = await run(agent, UserMsg("user", "add 2 and 3"))

    assert types(events)[0] == EventType.REPLY_START and types(events)[-1] == EventType.REPLY_END
    assert events[-1].finished_reason == "completed"  # type: ignore[union-attr]
    starts = [e for e in events if e.type == EventType.TOOL_CALL_START]
    assert [(e.tool_call_id, e.tool_call_name) for e in starts] == [("call_1", "add")]  # type: ignore[union-attr]
    args = "".join(e.delta for e in events if e.type == EventType.TOOL_CALL_DELTA)  # type: ignore[union-attr]
    assert json.loads(args) == {"a": 2, "b": 3}
    result = "".join(e.delta for e in events if e.type == EventType.TOOL_RESULT_TEXT_DELTA)  # type: ignore[union-attr]
    assert result == "2 + 3 = 5"
    (end,) = [e for e in events if e.type == EventType.TOOL_RESULT_END]
    assert end.state == "success"  # type: ignore[union-attr]
    text = "".join(e.delta for e in events if e.type == EventType.TEXT_BLOCK_DELTA)  # type: ignore[union-attr]
    assert text == "The sum is 5."
    usage = [e for e in events if e.type == EventType.MODEL_CALL_END]
    assert len(usage) == 2 and all(e.input_tokens > 0 for e in usage)  # type: ignore[union-attr]

    first, second = fake_llm.chat_requests
    tool_names = [t["function"]["name"] for t in first.tools]
    assert tool_names == ["add", "delete_task"]
    add_schema = first.tools[0]["function"]["parameters"]
    assert add_schema["required"] == ["a", "b"] and add_schema["properties"]["a"]["type"] == "integer"
    hint = json.dumps(first.messages)
    assert "<timezone>Europe/Berlin</timezone>" in hint, "runtime state injection uses the user's zone"
    assert second.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "2 + 3 = 5",
        "name": "add",
    }
    assert second.messages[-2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a":2,"b":3}'}


async def test_parallel_tool_calls_run_and_both_results_go_back(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.add_rule(
        Rule(
            after_tool=False,
            reply=ToolCallsReply(
                calls=[
                    ToolCallSpec(id="p1", name="add", arguments={"a": 1, "b": 1}),
                    ToolCallSpec(id="p2", name="add", arguments={"a": 2, "b": 2}),
                ],
                interleave=True,
            ),
        )
    )
    fake_llm.add_rule(Rule(after_tool=True, reply=TextReply(text="2 and 4.")))
    events = await run(make_agent(make_model()), UserMsg("user", "two sums"))
    results = [e for e in events if e.type == EventType.TOOL_RESULT_END]
    assert sorted(e.tool_call_id for e in results) == ["p1", "p2"]  # type: ignore[union-attr]
    tool_msgs = [m for m in fake_llm.chat_requests[1].messages if m["role"] == "tool"]
    assert sorted((m["tool_call_id"], m["content"]) for m in tool_msgs) == [
        ("p1", "1 + 1 = 2"),
        ("p2", "2 + 2 = 4"),
    ]


async def test_ask_tool_parks_the_reply_and_resumes_from_saved_state(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    deleted.clear()
    fake_llm.push(
        ToolCallsReply(calls=[ToolCallSpec(id="del_1", name="delete_task", arguments={"task_id": "t1"})]),
        TextReply(text="Deleted t1."),
    )
    model = make_model()
    agent = make_agent(model)
    events = await run(agent, UserMsg("user", "delete t1"))

    # The reply parks: the permission request is the last event, there is no REPLY_END.
    assert types(events)[-1] == EventType.REQUIRE_USER_CONFIRM
    ask = events[-1]
    assert isinstance(ask, RequireUserConfirmEvent)
    (call,) = ask.tool_calls
    assert (call.id, call.name, call.state) == ("del_1", "delete_task", "asking")
    assert deleted == []

    # Persist and restore the state (as the run lifecycle does between the two HTTP runs).
    saved = agent.state.model_dump_json()
    restored = make_agent(model, state=AgentState.model_validate_json(saved))
    resumed = await run(
        restored,
        UserConfirmResultEvent(
            reply_id=ask.reply_id, confirm_results=[ConfirmResult(confirmed=True, tool_call=call)]
        ),
    )
    assert deleted == ["t1"]
    assert EventType.REPLY_START not in types(resumed), "a resumed reply continues the parked one"
    assert types(resumed)[0] == EventType.TOOL_RESULT_START
    assert types(resumed)[-1] == EventType.REPLY_END
    assert resumed[-1].reply_id == ask.reply_id  # type: ignore[union-attr]


async def test_denied_tool_call_goes_back_to_the_model_as_denied(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    deleted.clear()
    fake_llm.push(
        ToolCallsReply(calls=[ToolCallSpec(id="del_2", name="delete_task", arguments={"task_id": "t2"})]),
        TextReply(text="OK, I kept it."),
    )
    agent = make_agent(make_model())
    events = await run(agent, UserMsg("user", "delete t2"))
    ask = events[-1]
    assert isinstance(ask, RequireUserConfirmEvent)
    resumed = await run(
        agent,
        UserConfirmResultEvent(
            reply_id=ask.reply_id,
            confirm_results=[ConfirmResult(confirmed=False, tool_call=ask.tool_calls[0])],
        ),
    )
    assert deleted == []
    (end,) = [e for e in resumed if e.type == EventType.TOOL_RESULT_END]
    assert end.state == "denied"  # type: ignore[union-attr]
    assert types(resumed)[-1] == EventType.REPLY_END
    tool_msg = fake_llm.chat_requests[-1].messages[-1]
    assert tool_msg["role"] == "tool" and "denied" in tool_msg["content"]


async def test_cancelling_a_run_keeps_the_partial_text_and_closes_the_stream(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(chunks=["Partial ", "answer ", "never"], stall_after=2, stall_s=30))
    agent = make_agent(make_model(), interruption_raise_cancelled_error=True)
    events: list[AgentEvent] = []
    two_deltas = asyncio.Event()  # both chunks before the stall were relayed (in one delta or two)

    async def consume() -> None:
        async for ev in agent.reply_stream(UserMsg("user", "tell me")):
            if isinstance(ev, Msg):
                continue
            events.append(ev)
            if "".join(e.delta for e in events if e.type == EventType.TEXT_BLOCK_DELTA) == "Partial answer ":  # type: ignore[union-attr]
                two_deltas.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_deltas.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake_llm.wait_for_disconnect(2.0)
    ends = [e for e in events if e.type in (EventType.MODEL_CALL_END, EventType.REPLY_END)]
    assert [(str(e.type), e.finished_reason) for e in ends] == [  # type: ignore[union-attr]
        (EventType.MODEL_CALL_END, "interrupted"),
        (EventType.REPLY_END, "interrupted"),
    ]
    last = agent.state.context[-1]
    assert last.role == "assistant"
    assert [b.text for b in last.content if isinstance(b, TextBlock)] == ["Partial answer "]


async def test_model_errors_propagate_out_of_the_reply(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ErrorReply(status=401))
    agent = make_agent(make_model())
    seen: list[AgentEvent] = []
    with pytest.raises(ModelAuthError):
        async for ev in agent.reply_stream(UserMsg("user", "hi")):
            seen.append(ev)  # type: ignore[arg-type]
    assert types(seen) == [EventType.REPLY_START, EventType.HINT_BLOCK, EventType.MODEL_CALL_START], (
        "no REPLY_END on errors"
    )
    # The input stays in the state (followed by the runtime-state hint, in an assistant message).
    assert agent.state.context[0].role == "user"
    assert not any(isinstance(b, TextBlock) for m in agent.state.context[1:] for b in m.content)
