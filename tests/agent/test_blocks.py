"""Output blocks in home mode: cut out of the streamed text, validated, sent as one CUSTOM block."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar.agent.blocks import MAX_BLOCK_CHARS, BlockSplitter
from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input, text_of
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply

CHART = {"type": "chart", "chartType": "bar", "title": "Tasks per project",
         "data": [{"project": "Launch", "open": 4, "done": 2}, {"project": "Garden", "open": 1, "done": 5}],
         "config": {"open": {"label": "Open", "color": "#2563eb"}, "done": {"label": "Done", "color": "#16a34a"}}}
TABLE = {"type": "table", "title": "Due", "headers": ["Task", "Due"], "rows": [["Send invoice", "2026-12-03"], ["Call Bo", None]]}
TIMELINE = {"type": "timeline", "title": "Launch", "checkpoints": [{"id": "m1", "title": "Beta", "date": 1796083200000},
                                                                   {"id": "m2", "title": "GA", "date": 1798761600000}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


def chunks(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def answer(block: dict[str, Any] | str) -> str:
    body = block if isinstance(block, str) else json.dumps(block)
    return f"Here it is:\n```block\n{body}\n```\nAnything else?"


def blocks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["value"] for e in events if e["type"] == "CUSTOM" and e["name"] == "block"]


@pytest.mark.parametrize("block", [CHART, TABLE, TIMELINE], ids=["chart", "table", "timeline"])
async def test_a_block_split_across_deltas_is_one_block_event(api: Api, fake: FakeLLMServer,
                                                               block: dict[str, Any]) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(chunks=chunks(answer(block))))
    events = await run(api, run_input(f"t-{block['type']}", "show me"))
    assert assert_terminal_rules(events)["outcome"]["type"] == "success"
    assert blocks(events) == [block]
    text = text_of(events)
    assert text == "Here it is:\n\nAnything else?", text
    deltas = [e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert not any("`" in d or "{" in d for d in deltas), deltas
    kinds = [e["type"] if e["type"] != "CUSTOM" else e["name"] for e in events]
    assert kinds.index("block") < kinds.index("TEXT_MESSAGE_END")  # in its place, inside the message
    hist = await api.ok("GET", f"/v1/agent/threads/t-{block['type']}/history")
    assert "```block" not in hist["messages"][-1]["content"]


async def test_entity_ref_rows_are_the_tool_results_rows(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    a = await api.ok("POST", "/v1/tasks", {"title": "Send invoice"}, status=201)
    b = await api.ok("POST", "/v1/tasks", {"title": "Call Bo", "priority": "high"}, status=201)
    typed = {"type": "entity_ref", "entity": "task", "ids": [a["id"], "made-up-id", b["id"]],
             "rows": [{"id": a["id"], "title": "typed by the model"}]}
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="list_tasks", arguments={})]),
              TextReply(chunks=chunks(answer(typed), 5)))
    events = await run(api, run_input("t-ref", "my tasks as cards"))
    assert assert_terminal_rules(events)["type"] == "RUN_FINISHED"
    (block,) = blocks(events)
    assert block["ids"] == [a["id"], b["id"]]  # an id no tool result showed is left out
    assert block["rows"] == [await api.ok("GET", f"/v1/tasks/{a['id']}"), await api.ok("GET", f"/v1/tasks/{b['id']}")]


async def test_entity_ref_without_a_tool_result_is_dropped(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    a = await api.ok("POST", "/v1/tasks", {"title": "Never listed"}, status=201)
    fake.push(TextReply(text=answer({"type": "entity_ref", "entity": "task", "ids": [a["id"]]})))
    events = await run(api, run_input("t-ref2", "cards"))
    assert blocks(events) == [] and assert_terminal_rules(events)["outcome"]["type"] == "success"


@pytest.mark.parametrize(("body", "why"), [
    ('{"type": "chart", "chartType": "bar", "title": "x", "data": [', "invalid"),
    (json.dumps({**CHART, "chartType": "scatter"}), "invalid"),
    (json.dumps({**TABLE, "rows": [["x"] * 2] * (MAX_BLOCK_CHARS // 4)}), "size limit"),
], ids=["bad-json", "unknown-chartType", "too-big"])
async def test_an_invalid_block_is_dropped_and_logged(api: Api, fake: FakeLLMServer, caplog: pytest.LogCaptureFixture,
                                                      body: str, why: str) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(chunks=chunks(answer(body), 400)))
    with caplog.at_level(logging.WARNING, logger="sidecar.agent.blocks"):
        events = await run(api, run_input("t-bad", "chart please"))
    assert assert_terminal_rules(events)["outcome"]["type"] == "success"
    assert blocks(events) == []
    assert text_of(events) == "Here it is:\n\nAnything else?"
    assert any("output block dropped" in r.getMessage() and why in r.getMessage() for r in caplog.records), caplog.text


async def test_floating_mode_leaves_fences_as_text(api: Api, fake: FakeLLMServer) -> None:
    await configure_model(api, fake)
    fake.push(TextReply(chunks=chunks(answer(TABLE))))
    events = await run(api, run_input("t-fl", "x", mode="floating", scope={"type": "note"}))
    assert blocks(events) == [] and "```block" in text_of(events)


def test_other_fenced_code_and_lookalikes_stay_text() -> None:
    text = "a ```python\nx\n``` b ```blocks c ``"
    for size in (1, 2, 5, len(text)):
        splitter = BlockSplitter()
        pieces = [p for i in range(0, len(text), size) for p in splitter.feed(text[i:i + size])] + splitter.flush()
        assert all(k == "text" for k, _ in pieces) and "".join(v for _, v in pieces) == text


def test_an_unclosed_block_is_dropped_at_the_end() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("ok ```block\n{\"type\": ") == [("text", "ok ")]
    assert splitter.flush() == []
