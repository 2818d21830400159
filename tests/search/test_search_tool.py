"""The agent's ``search`` tool end to end: a run against the scripted model server calls it,
and the model gets the matching rows as short summaries with ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply
from tests.search.helpers import ready_vectors, wait_found


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def test_search_tool_through_an_agent_run(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    note = await api.ok("POST", "/v1/notes", {"title": "Venue decision",
                                              "content": "We decided on the harbour hall for the June offsite."},
                        status=201)
    await api.ok("POST", "/v1/notes", {"title": "Groceries", "content": "Milk and bread"}, status=201)
    await wait_found(api, "harbour", note["id"])
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="search", arguments={"query": "harbour hall", "kind": "note"})]),
              TextReply(text=f"You chose the harbour hall. <note>[{note['id']}]</note>"),
              ToolCallsReply(calls=[ToolCallSpec(name="search", arguments={"query": "x", "kind": "email"})]),
              TextReply(text="Sorry."))
    events = await run(api, run_input("t-search", "what did we decide about the venue?"))
    assert assert_terminal_rules(events)["type"] == "RUN_FINISHED"
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")["content"]
    assert f"[note {note['id']}] Venue decision" in result and "harbour hall" in result
    assert "Groceries" not in result
    # what the model was sent back is the same summary
    second = fake.chat_requests[1].messages
    assert any(m.get("role") == "tool" and note["id"] in str(m.get("content")) for m in second)
    # the tool is offered with its arguments
    tools = {t["function"]["name"]: t["function"] for t in fake.chat_requests[0].tools}
    assert set(tools["search"]["parameters"]["properties"]) == {"query", "kind", "project_id"}
    # invalid arguments come back as an error the model can correct, not a failed run
    events = await run(api, run_input("t-search", "again"))
    assert assert_terminal_rules(events)["type"] == "RUN_FINISHED"
    bad = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")["content"]
    assert "kind must be one of" in bad
