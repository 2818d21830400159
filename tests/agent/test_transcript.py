"""The exact transcript the model receives in each kind of run: runtime context in the system
prompt, turns alternating, and the user's own message the last user turn."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.agent.runs_helpers import (
    assert_terminal_rules,
    configure_model,
    delete_then_approve,
    run,
    run_input,
)
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply, message_text


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


def transcript(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) per message; an assistant tool-call message as its call names, a tool result as
    ``name: text``; the system prompt as ``SYSTEM`` (checked separately)."""
    out = []
    for m in messages:
        if m["role"] == "system":
            out.append(("system", "SYSTEM"))
        elif m.get("tool_calls"):
            out.append(("assistant", "calls " + ",".join(c["function"]["name"] for c in m["tool_calls"])))
        elif m["role"] == "tool":
            out.append(("tool", f"{m.get('name')}: {message_text(m)}"))
        else:
            out.append((m["role"], message_text(m)))
    return out


def assert_alternates(messages: list[dict[str, Any]], last_user: str) -> None:
    roles = [m["role"] for m in messages]
    assert roles[0] == "system" and "system" not in roles[1:], roles
    assert all(not (a == b == "user") for a, b in itertools.pairwise(roles)), roles
    users = [message_text(m) for m in messages if m["role"] == "user"]
    assert users[-1] == last_user
    assert not any("<system-reminder>" in message_text(m) for m in messages)


async def test_home_run_and_follow_up(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="list_tasks", arguments={})]), TextReply(text="You have none."))
    body = run_input("t-home", "what is open?")
    body["context"] = [{"description": "Open view", "value": "the kanban board"}]
    assert_terminal_rules(await run(api, body))
    first, second = fake.chat_requests[0].messages, fake.chat_requests[1].messages
    assert transcript(first) == [("system", "SYSTEM"), ("user", "what is open?")]
    assert transcript(second) == [("system", "SYSTEM"), ("user", "what is open?"), ("assistant", "calls list_tasks"),
                                  ("tool", "list_tasks: No tasks found.")]
    system = message_text(first[0])
    assert "Current time:" in system and "Open view: the kanban board" in system  # runtime context is here
    assert "```block" in system  # home mode teaches the output blocks
    assert_alternates(first, "what is open?")

    fake.push(TextReply(text="Sure."))
    assert_terminal_rules(await run(api, run_input("t-home", "thanks, and tomorrow?")))
    follow = fake.chat_requests[2].messages
    assert transcript(follow) == [
        ("system", "SYSTEM"), ("user", "what is open?"), ("assistant", "calls list_tasks"),
        ("tool", "list_tasks: No tasks found."), ("assistant", "You have none."), ("user", "thanks, and tomorrow?")]
    assert_alternates(follow, "thanks, and tomorrow?")


async def test_floating_run(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(text="It is due Friday."))
    assert_terminal_rules(await run(api, run_input("t-float", "when is this due?", mode="floating",
                                                   scope={"type": "task", "id": "task-42"})))
    (request,) = fake.chat_requests
    assert transcript(request.messages) == [("system", "SYSTEM"), ("user", "when is this due?")]
    system = message_text(request.messages[0])
    assert "task with id task-42" in system and "tasks view" in system and "```block" not in system
    assert_alternates(request.messages, "when is this due?")


async def test_resumed_run_after_a_confirmation(api: Api, fake: FakeLLMServer) -> None:
    task, events = await delete_then_approve(api, fake, "t-res", "delete the old task", "c1", after="Deleted it.")
    assert assert_terminal_rules(events)["outcome"]["type"] == "success"
    resumed = fake.chat_requests[-1].messages
    assert transcript(resumed) == [("system", "SYSTEM"), ("user", "delete the old task"),
                                   ("assistant", "calls delete_task"),
                                   ("tool", f"delete_task: Deleted task [{task['id']}] Old")]
    assert_alternates(resumed, "delete the old task")


async def test_the_old_transcript_fails_the_check() -> None:
    """The shape the model used to get (runtime state as a second user turn) is what the check refuses."""
    old = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
           {"role": "user", "content": "<system-reminder>time</system-reminder>"}]
    with pytest.raises(AssertionError):
        assert_alternates(old, "hi")
