"""The fake LLM server itself: wire shapes, scripting modes and the stand-alone process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.llm_server import (
    BurstReply,
    FakeLLMServer,
    Rule,
    Script,
    TextReply,
    ToolCallSpec,
    ToolCallsReply,
    parse_reply,
)

ROOT = Path(__file__).resolve().parents[2]


async def sse_chunks(fake: FakeLLMServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming request and return the decoded ``data:`` payloads (without [DONE])."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.base_url}/chat/completions", json=body) as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            raw = (await resp.read()).decode()
    events = [line[6:] for line in raw.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def chat(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "stream": True, **extra}


async def test_tool_call_wire_shape_id_and_name_only_first(fake_llm: FakeLLMServer) -> None:
    fake_llm.push(
        ToolCallsReply(
            calls=[ToolCallSpec(id="a", name="f", arguments='{"x":1}'), ToolCallSpec(id="b", name="g")],
            interleave=True,
        )
    )
    chunks = await sse_chunks(fake_llm, chat(stream_options={"include_usage": True}))
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    for index, call_id, name in ((0, "a", "f"), (1, "b", "g")):
        mine = [tc for tc in calls if tc["index"] == index]
        assert mine[0]["id"] == call_id and mine[0]["function"]["name"] == name
        assert all("id" not in tc and "name" not in tc["function"] for tc in mine[1:])
        assert "".join(tc["function"]["arguments"] for tc in mine) == ('{"x":1}' if index == 0 else "{}")
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_usage_only_when_asked(fake_llm: FakeLLMServer) -> None:
    fake_llm.push(TextReply(text="x"))
    chunks = await sse_chunks(fake_llm, chat())
    assert all("usage" not in c for c in chunks)


async def test_rules_match_the_last_user_message_and_skip_runtime_hints(fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule(Rule(match=r"weather", reply=TextReply(text="sunny"), times=1))
    fake_llm.default = TextReply(text="default")
    body = chat("what's the weather?")
    body["messages"].append(
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>t</system-reminder>"}]}
    )
    first = await sse_chunks(fake_llm, body)
    second = await sse_chunks(fake_llm, body)
    text = [
        "".join(c["choices"][0]["delta"].get("content") or "" for c in cs if c["choices"])
        for cs in (first, second)
    ]
    assert text == ["sunny", "default"], "times=1 rule fires once, then the default"


async def test_no_script_is_a_500(fake_llm: FakeLLMServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake_llm.base_url}/chat/completions", json=chat()) as resp:
            assert resp.status == 500
            assert "no scripted reply" in (await resp.json())["error"]["message"]


async def test_burst_streams_k_deltas(fake_llm: FakeLLMServer) -> None:
    fake_llm.push(BurstReply(k=2000, delta="y"))
    chunks = await sse_chunks(fake_llm, chat())
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "y" * 2000


async def test_models_endpoint(fake_llm: FakeLLMServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake_llm.base_url}/models") as resp:
            data = await resp.json()
    assert [m["id"] for m in data["data"]] == ["fake-model"]


def test_replies_parse_from_json() -> None:
    reply = parse_reply({"type": "error", "status": 429, "retry_after": 2})
    assert reply.type == "error"
    script = Script.model_validate({"queue": [{"type": "text", "text": "hi", "n_chunks": 2}], "rules": []})
    assert isinstance(script.queue[0], TextReply)
    with pytest.raises(ValueError):
        parse_reply({"type": "nope"})


async def test_standalone_process_prints_its_port_and_serves_the_script(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"queue": [{"type": "text", "text": "from a file"}]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.llm_server",
        "--script",
        str(script),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        ready = json.loads(line)
        assert ready["event"] == "ready" and ready["base_url"] == f"http://127.0.0.1:{ready['port']}/v1"
        async with aiohttp.ClientSession() as session:
            url = ready["base_url"]
            async with session.post(f"{url}/chat/completions", json={**chat(), "stream": False}) as resp:
                assert (await resp.json())["choices"][0]["message"]["content"] == "from a file"
            more = {"queue": [{"type": "text", "text": "pushed later"}]}
            async with session.post(f"http://127.0.0.1:{ready['port']}/_fake/script", json=more) as resp:
                assert resp.status == 200
            async with session.post(f"{url}/chat/completions", json={**chat(), "stream": False}) as resp:
                assert (await resp.json())["choices"][0]["message"]["content"] == "pushed later"
            async with session.get(f"http://127.0.0.1:{ready['port']}/_fake/requests") as resp:
                recorded = await resp.json()
        assert [r["body"]["messages"][0]["content"] for r in recorded] == ["hi", "hi"]
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
