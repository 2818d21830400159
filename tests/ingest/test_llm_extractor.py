"""The ``llm`` extractor against the fake OpenAI-compatible server: valid answers become items,
an invalid answer is retried once, twice invalid is an error with a reason, an unreachable
model falls back to ``rules`` and the run is ``partial``. No tools are ever offered."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sidecar.agent.history import History
from sidecar.appstate import STORE
from sidecar.ingest.llm import chunks, parse_answer
from sidecar.settings import Settings
from tests.fakes.llm_server import FakeLLMServer, TextReply
from tests.fakes.memory_keyring import MemoryKeyring
from tests.ingest.harness import FAST, Harness, running

NOTES = "Weekly sync\n\nMaya will draft the rota by Friday.\nLaunch review is on 2026-04-10.\n- [ ] Rules-only checkbox\n"


def answer(items: list[dict[str, Any]]) -> TextReply:
    return TextReply(text=json.dumps({"items": items}), stream=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


async def configure(h: Harness, api_base: str) -> None:
    await History(h.app[STORE]).put_setting(
        "model", {"model": "openai/fake-model", "apiBase": api_base, "maxRetries": 0, "requestTimeoutS": 10})


async def llm_watch(h: Harness, folder: Path) -> dict[str, Any]:
    return await h.create_watch(folder, useLlm=True, promptTemplate="Extract action items and milestones.")


async def test_valid_json_becomes_items(ing: Harness, fake: FakeLLMServer, inbox: Path) -> None:
    await configure(ing, fake.base_url)
    fake.push(answer([
        {"type": "task", "title": "Draft the rota", "dueDate": "2026-03-06", "assignees": ["Maya"],
         "quote": "Maya will draft the rota by Friday."},
        {"type": "timeline", "title": "Launch review", "date": "2026-04-10"},
        {"type": "note", "title": "Weekly sync", "description": "Rota and launch review discussed."},
    ]))
    (inbox / "sync.md").write_text(NOTES)
    w = await llm_watch(ing, inbox)
    f = await ing.wait_file(inbox / "sync.md")
    assert f["status"] == "done" and f["extractor"] == "llm" and f["itemsCreated"] == 3
    [t] = await ing.entities("tasks")
    assert t["title"] == "Draft the rota" and t["assignee"] == ["Maya"] and t["dueDate"] is not None
    assert t["isAiSuggested"] and not t["isApproved"]
    assert [x["title"] for x in await ing.entities("timelines")] == ["Launch review"]
    assert [x["title"] for x in await ing.entities("notes")] == ["Weekly sync"]
    req = fake.chat_requests[0].body
    assert "tools" not in req and "tool_choice" not in req, "extraction can only propose"
    user = req["messages"][-1]["content"]
    user_text = user if isinstance(user, str) else " ".join(p.get("text", "") for p in user)
    assert "Extract action items and milestones." in user_text and "Maya will draft the rota" in user_text
    prov = await ing.app[STORE].fetchone(
        "SELECT extractor, span_start, span_end FROM ingest_provenance WHERE entity = 'tasks'")
    assert prov is not None and prov[0] == "llm"
    assert NOTES[prov[1]:prov[2]] == "Maya will draft the rota by Friday."
    await ing.settle(w["id"])
    [run] = await ing.runs(w["id"])
    assert run["status"] == "success" and run["itemsCreated"] == 3


async def test_invalid_then_valid_is_retried_once(ing: Harness, fake: FakeLLMServer, inbox: Path) -> None:
    await configure(ing, fake.base_url)
    fake.push(TextReply(text="Sure! Here are the tasks: draft the rota.", stream=False),
              TextReply(text="```json\n" + json.dumps({"items": [{"type": "task", "title": "Draft the rota"}]})
                        + "\n```", stream=False))
    (inbox / "sync.md").write_text(NOTES)
    await llm_watch(ing, inbox)
    f = await ing.wait_file(inbox / "sync.md")
    assert f["status"] == "done" and f["itemsCreated"] == 1
    assert len(fake.chat_requests) == 2
    retry = fake.chat_requests[1].body["messages"]
    assert retry[-2]["role"] == "assistant" and "invalid" in json.dumps(retry[-1])


async def test_invalid_twice_is_an_error_with_the_reason(ing: Harness, fake: FakeLLMServer, inbox: Path) -> None:
    await configure(ing, fake.base_url)
    fake.push(answer([{"type": "timeline", "title": "No date"}]),
              TextReply(text='{"items": [{"type": "chore"}]}', stream=False))
    (inbox / "sync.md").write_text(NOTES)
    w = await llm_watch(ing, inbox)
    f = await ing.wait_file(inbox / "sync.md")
    assert f["status"] == "error" and "invalid after one retry" in f["reason"], f
    assert len(fake.chat_requests) == 2
    await ing.settle(w["id"])
    [run] = await ing.runs(w["id"])
    assert run["status"] == "error" and "sync.md" in run["errors"][0]
    assert await ing.entities("tasks") == []


async def test_unreachable_model_falls_back_to_rules_and_the_run_is_partial(ing: Harness, inbox: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await configure(ing, f"http://127.0.0.1:{port}/v1")
    (inbox / "sync.md").write_text(NOTES)
    (inbox / "more.md").write_text("- [ ] Second file\n")
    w = await llm_watch(ing, inbox)
    await ing.settle(w["id"])
    files = {Path(f["path"]).name: f for f in await ing.files(w["id"])}
    assert {f["status"] for f in files.values()} == {"done"}
    assert {f["extractor"] for f in files.values()} == {"rules"}
    assert sorted(t["title"] for t in await ing.entities("tasks")) == ["Rules-only checkbox", "Second file"]
    [run] = await ing.runs(w["id"])
    assert run["status"] == "partial"
    assert any("model unavailable" in e and "extracted with rules instead" in e for e in run["errors"]), run


async def test_no_model_configured_uses_rules_and_says_so(ing: Harness, inbox: Path) -> None:
    (inbox / "sync.md").write_text(NOTES)
    w = await llm_watch(ing, inbox)
    await ing.settle(w["id"])
    assert [t["title"] for t in await ing.entities("tasks")] == ["Rules-only checkbox"]
    [run] = await ing.runs(w["id"])
    assert run["status"] == "partial" and "no model is configured" in run["errors"][0]


async def test_long_documents_are_chunked(settings: Settings, memory_keyring: MemoryKeyring, fake: FakeLLMServer,
                                         inbox: Path) -> None:
    text = "".join(f"Line {i}: nothing much happens here, just filler text.\n" for i in range(12))
    for i in range(4):
        fake.push(answer([{"type": "task", "title": f"From chunk {i}" if i < 3 else "From chunk 0"}]))
    (inbox / "long.md").write_text(text)
    async with running(settings, replace(FAST, llm_chunk_chars=200)) as h:
        await configure(h, fake.base_url)
        await llm_watch(h, inbox)
        f = await h.wait_file(inbox / "long.md")
        assert f["status"] == "done"
        assert len(fake.chat_requests) == len(chunks(text, 200, 20)) == 4
        assert sorted(t["title"] for t in await h.entities("tasks")) == ["From chunk 0", "From chunk 1", "From chunk 2"]
        assert "part 2 of 4" in json.dumps(fake.chat_requests[1].body["messages"])


def test_parse_answer_and_chunks() -> None:
    assert parse_answer('```json\n{"items": []}\n```').items == []
    assert parse_answer('[{"type": "note", "title": "x"}]').items[0].title == "x"
    for bad in ("nope", '{"items": [{"type": "task"}]}', '{"items": [{"type": "task", "title": "t", "dueDate": "soon"}]}'):
        with pytest.raises(ValueError):
            parse_answer(bad)
    text = "a" * 50 + "\n" + "b" * 50 + "\n"
    assert chunks(text, 60, 10) == [(0, "a" * 50 + "\n"), (51, "b" * 50 + "\n")]
    assert "".join(p for _, p in chunks("x" * 250, 100, 10)) == "x" * 250
    assert len(chunks("x" * 1000, 10, 3)) == 3
