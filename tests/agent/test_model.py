"""LiteLLMChatModel against the fake OpenAI-compatible server on real loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agentscope.message import Msg, SystemMsg, TextBlock, ToolCallBlock, UserMsg
from agentscope.model import ChatResponse, FinishedReason
from agentscope.tool import ToolChoice

from sidecar.agent.model import (
    LiteLLMChatModel,
    ModelAuthError,
    ModelError,
    ModelRateLimitedError,
    ModelRequestRejectedError,
    ModelSettings,
    ModelTimeoutError,
    ModelUnavailableError,
)
from sidecar.agent.model_stream import ChunkReader
from sidecar.errors import SidecarError
from tests.agent.conftest import ModelFactory
from tests.fakes.llm_server import (
    BurstReply,
    ErrorReply,
    FakeLLMServer,
    ResetReply,
    TextReply,
    ToolCallSpec,
    ToolCallsReply,
    Usage,
)

ADD_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
MUL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {**ADD_TOOL["function"], "name": "mul", "description": "Multiply two integers."},
}


def hello() -> list[Msg]:
    return [SystemMsg("system", "You are terse."), UserMsg("user", "hello")]


async def collect(
    model: LiteLLMChatModel,
    messages: list[Msg] | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: ToolChoice | None = None,
) -> tuple[list[ChatResponse], ChatResponse]:
    """Run one call; returns (the streamed deltas, the final is_last response)."""
    res = await model(messages=messages or hello(), tools=tools, tool_choice=tool_choice)
    if isinstance(res, ChatResponse):
        return [], res
    chunks = [c async for c in res]
    assert chunks and chunks[-1].is_last
    return chunks[:-1], chunks[-1]


def texts(response: ChatResponse) -> str:
    return "".join(b.text for b in response.content if isinstance(b, TextBlock))


def tool_calls(response: ChatResponse) -> list[ToolCallBlock]:
    return [b for b in response.content if isinstance(b, ToolCallBlock)]


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


#: Seconds between chunks for tests of one delta per chunk: a model slower than the relay (chunks
#: that arrive together are one delta, see test_chunks_that_arrive_together_are_one_delta).
PACE_S = 0.02


async def test_streams_text_split_anywhere(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    chunks = ["<ta", "sk>[id", "1,id2]</t", "ask> done"]
    fake_llm.push(TextReply(chunks=chunks, chunk_delay_s=PACE_S))
    deltas, final = await collect(make_model())
    assert [texts(d) for d in deltas] == chunks
    assert len({d.content[0].id for d in deltas}) == 1, "one text block across deltas"
    assert texts(final) == "<task>[id1,id2]</task> done"
    assert final.finished_reason == FinishedReason.COMPLETED


async def test_streams_n_equal_deltas(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(TextReply(text="abcdefghij", n_chunks=5, chunk_delay_s=PACE_S))
    deltas, final = await collect(make_model())
    assert [texts(d) for d in deltas] == ["ab", "cd", "ef", "gh", "ij"]
    assert texts(final) == "abcdefghij"


async def test_chunks_that_arrive_together_are_one_delta(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    """A model faster than the relay: the chunks of one network read become one delta (the
    run's per-delta work is paid per read), the text and its one block id unchanged."""
    fake_llm.push(BurstReply(k=400, delta="ab"))
    deltas, final = await collect(make_model())
    assert "".join(texts(d) for d in deltas) == "ab" * 400 == texts(final)
    assert len(deltas) < 400 / 4, len(deltas)
    assert len({b.id for d in deltas for b in d.content}) == 1


async def test_request_carries_messages_settings_and_stream_options(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(text="ok"))
    await collect(make_model(temperature=0.2, api_key_secret="openai"), tools=[ADD_TOOL])
    (req,) = fake_llm.chat_requests
    body = req.body
    assert body["model"] == "fake-model"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == [{"type": "text", "text": "hello"}]
    assert [t["function"]["name"] for t in body["tools"]] == ["add"]
    # No key configured for a local server: a placeholder, never an environment key.
    assert req.headers["Authorization"] == "Bearer sk-no-key"


async def test_api_key_is_sent_as_bearer(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.api_key = "sk-right"
    fake_llm.push(TextReply(text="ok"))
    _, final = await collect(make_model(api_key="sk-right"))
    assert texts(final) == "ok"
    assert fake_llm.chat_requests[0].headers["Authorization"] == "Bearer sk-right"


async def test_usage_from_final_chunk(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(
        TextReply(text="four tokens here", n_chunks=3, usage=Usage(prompt_tokens=11, completion_tokens=7))
    )
    model = make_model()
    _, final = await collect(model)
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    assert final.usage.metadata is not None and final.usage.metadata["cost_usd"] == 0.0
    (stats,) = make_model.stats
    assert (stats.input_tokens, stats.output_tokens, stats.outcome, stats.attempts) == (11, 7, "completed", 1)
    assert stats.latency_ms >= 0 and stats.first_chunk_ms is not None
    assert stats.first_chunk_ms <= stats.latency_ms


async def test_usage_estimated_when_the_server_sends_none(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(text="some words to count", n_chunks=2, send_usage=False))
    _, final = await collect(make_model())
    assert final.usage is not None and final.usage.input_tokens > 0 and final.usage.output_tokens > 0


async def test_streamed_tool_call_id_and_name_only_on_first_delta(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(
        ToolCallsReply(calls=[ToolCallSpec(id="call_A", name="add", arg_chunks=['{"a"', ": 2,", ' "b": 3}'])],
                       chunk_delay_s=PACE_S)
    )
    deltas, final = await collect(make_model(), tools=[ADD_TOOL])
    call_deltas = [b for d in deltas for b in d.content if isinstance(b, ToolCallBlock)]
    assert len(call_deltas) == 4  # the head (id+name, no arguments) and three argument fragments
    assert {(b.id, b.name) for b in call_deltas} == {("call_A", "add")}
    assert [b.input for b in call_deltas] == ["", '{"a"', ": 2,", ' "b": 3}']
    (call,) = tool_calls(final)
    assert (call.id, call.name, call.input) == ("call_A", "add", '{"a": 2, "b": 3}')


@pytest.mark.parametrize("interleave", [False, True])
async def test_parallel_tool_calls_by_index(
    fake_llm: FakeLLMServer, make_model: ModelFactory, interleave: bool
) -> None:
    fake_llm.push(
        ToolCallsReply(
            text="Let me compute.",
            calls=[
                ToolCallSpec(id="c1", name="add", arguments={"a": 1, "b": 2}, n_chunks=3),
                ToolCallSpec(id="c2", name="mul", arguments={"a": 3, "b": 4}, n_chunks=4),
            ],
            interleave=interleave,
        )
    )
    _, final = await collect(make_model(), tools=[ADD_TOOL, MUL_TOOL])
    assert texts(final) == "Let me compute."
    calls = tool_calls(final)
    assert [(c.id, c.name, c.input) for c in calls] == [
        ("c1", "add", '{"a":1,"b":2}'),
        ("c2", "mul", '{"a":3,"b":4}'),
    ]


async def test_tools_are_flattened_and_tool_choice_mapped(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    nested: dict[str, Any] = {
        "type": "function",
        "function": {
            "name": "create_task",
            "description": "Create a task.",
            "parameters": {
                "type": "object",
                "properties": {"task": {"$ref": "#/$defs/Task"}},
                "required": ["task"],
                "$defs": {"Task": {"type": "object", "properties": {"title": {"type": "string"}}}},
            },
        },
    }
    fake_llm.push(TextReply(text="a"), TextReply(text="b"))
    model = make_model()
    await collect(model, tools=[nested, ADD_TOOL], tool_choice=ToolChoice(mode="required"))
    await collect(model, tools=[nested, ADD_TOOL], tool_choice=ToolChoice(mode="add"))
    first, second = fake_llm.chat_requests
    params = first.body["tools"][0]["function"]["parameters"]
    assert "$defs" not in params and params["properties"]["task"]["properties"]["title"]["type"] == "string"
    assert first.body["tool_choice"] == "required"
    assert second.body["tool_choice"] == {"type": "function", "function": {"name": "add"}}


# ---------------------------------------------------------------------------------------------
# Non-streaming
# ---------------------------------------------------------------------------------------------


async def test_non_streaming_text(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(TextReply(text="whole answer", usage=Usage(prompt_tokens=5, completion_tokens=2)))
    deltas, final = await collect(make_model(stream=False))
    assert deltas == []
    assert texts(final) == "whole answer"
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (5, 2)
    body = fake_llm.chat_requests[0].body
    assert not body.get("stream") and "stream_options" not in body
    assert make_model.stats[0].outcome == "completed"


async def test_non_streaming_tool_calls(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(
        ToolCallsReply(
            calls=[
                ToolCallSpec(id="x1", name="add", arguments={"a": 1, "b": 1}),
                ToolCallSpec(id="x2", name="mul"),
            ]
        )
    )
    _, final = await collect(make_model(stream=False), tools=[ADD_TOOL, MUL_TOOL])
    assert [(c.id, c.name, c.input) for c in tool_calls(final)] == [
        ("x1", "add", '{"a":1,"b":1}'),
        ("x2", "mul", "{}"),
    ]


# ---------------------------------------------------------------------------------------------
# Errors and retries
# ---------------------------------------------------------------------------------------------


async def expect_error(model: LiteLLMChatModel, kind: type[ModelError]) -> ModelError:
    with pytest.raises(ModelError) as info:
        await collect(model)
    assert type(info.value) is kind, (type(info.value), info.value.to_body())
    return info.value


async def test_401_is_model_auth_and_not_retried(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(*[ErrorReply(status=401)] * 3)
    err = await expect_error(make_model(max_retries=2, api_key_secret="openai"), ModelAuthError)
    assert err.code == "model_auth" and err.upstream_status == 401 and err.attempts == 1
    assert "secret named 'openai'" in err.message
    assert len(fake_llm.chat_requests) == 1
    assert make_model.stats[0].outcome == "failed" and make_model.stats[0].error_code == "model_auth"


async def test_401_without_secret_names_the_setting(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ErrorReply(status=401))
    err = await expect_error(make_model(), ModelAuthError)
    assert "model.apiKeySecret" in err.message and err.setting == "model.apiKeySecret"


async def test_403_is_model_auth(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(ErrorReply(status=403))
    err = await expect_error(make_model(), ModelAuthError)
    assert err.upstream_status == 403


async def test_404_and_400_are_model_error_naming_the_model(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ErrorReply(status=404), ErrorReply(status=400, message="bad field"))
    err = await expect_error(make_model(), ModelRequestRejectedError)
    assert err.code == "model_error" and err.upstream_status == 404 and "model.model" in err.message
    err = await expect_error(make_model(), ModelRequestRejectedError)
    assert err.code == "model_error" and err.upstream_status == 400 and "bad field" in err.message
    assert len(fake_llm.chat_requests) == 2, "client errors are not retried"


async def test_429_retried_honouring_retry_after_then_success(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ErrorReply(status=429, retry_after=1), TextReply(text="after the wait"))
    started = time.monotonic()
    _, final = await collect(make_model(max_retries=2))
    elapsed = time.monotonic() - started
    assert texts(final) == "after the wait"
    assert elapsed >= 1.0, "waited the Retry-After"
    assert elapsed < 3.0
    first, second = fake_llm.chat_requests
    assert second.received_at - first.received_at >= 1.0
    assert make_model.stats[0].attempts == 2


async def test_429_after_retries_is_rate_limited(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(*[ErrorReply(status=429, retry_after=0)] * 3)
    err = await expect_error(make_model(max_retries=2), ModelRateLimitedError)
    assert err.code == "model_rate_limited" and err.attempts == 3
    assert len(fake_llm.chat_requests) == 3


async def test_429_with_a_long_retry_after_fails_at_once(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ErrorReply(status=429, retry_after=600), TextReply(text="never"))
    started = time.monotonic()
    err = await expect_error(make_model(max_retries=3), ModelRateLimitedError)
    assert time.monotonic() - started < 2.0
    assert err.retry_after_s == 600 and err.detail["retryAfterS"] == 600
    assert len(fake_llm.chat_requests) == 1


async def test_5xx_retried_then_success(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(ErrorReply(status=500), ErrorReply(status=503), TextReply(text="third time"))
    _, final = await collect(make_model(max_retries=2))
    assert texts(final) == "third time"
    assert len(fake_llm.chat_requests) == 3


async def test_5xx_after_retries_is_model_error(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(*[ErrorReply(status=503)] * 2)
    err = await expect_error(make_model(max_retries=1), ModelError)
    assert err.code == "model_error" and err.upstream_status == 503 and err.attempts == 2
    assert "after 2 attempts" in err.message


async def test_no_retries_when_max_retries_is_zero(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(ErrorReply(status=500), TextReply(text="unused"))
    await expect_error(make_model(max_retries=0), ModelError)
    assert len(fake_llm.chat_requests) == 1


async def test_connection_reset_retried_then_success(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ResetReply(), TextReply(text="back"))
    _, final = await collect(make_model(max_retries=1))
    assert texts(final) == "back"
    assert len(fake_llm.chat_requests) == 2


async def test_connection_reset_every_time_is_unavailable(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(ResetReply(), ResetReply())
    err = await expect_error(make_model(max_retries=1), ModelUnavailableError)
    assert err.code == "model_unavailable" and "model.apiBase" in err.message and err.attempts == 2


async def test_connection_refused_is_unavailable_without_retries(make_model: ModelFactory) -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    err = await expect_error(
        make_model(api_base=f"http://127.0.0.1:{port}/v1", max_retries=3), ModelUnavailableError
    )
    assert time.monotonic() - started < 5.0
    assert "connection refused" in err.message and err.setting == "model.apiBase" and err.attempts == 1


async def test_reset_mid_stream_is_unavailable_and_not_retried(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(text="abcdef", n_chunks=3, reset_after=2, chunk_delay_s=PACE_S), TextReply(text="unused"))
    model = make_model(max_retries=2)
    res = await model(messages=hello())
    assert not isinstance(res, ChatResponse)
    got: list[str] = []
    with pytest.raises(ModelUnavailableError) as info:
        async for chunk in res:
            got.append(texts(chunk))
    assert got == ["ab", "cd"]
    assert "mid-answer" in info.value.message
    assert len(fake_llm.chat_requests) == 1


async def test_stall_is_model_timeout_within_the_stall_timeout(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(text="abcdef", n_chunks=3, stall_after=1, stall_s=30))
    model = make_model(stall_timeout_s=0.5)
    started = time.monotonic()
    err = await expect_error(model, ModelTimeoutError)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.5
    assert err.code == "model_timeout" and err.setting == "model.stallTimeoutS"
    assert await fake_llm.wait_for_disconnect(2.0), "the stalled connection is closed"
    assert make_model.stats[0].error_code == "model_timeout"


async def test_no_first_chunk_within_request_timeout(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(text="late", delay_s=30))
    started = time.monotonic()
    err = await expect_error(make_model(request_timeout_s=0.5, max_retries=2), ModelTimeoutError)
    assert time.monotonic() - started < 2.5
    assert err.setting == "model.requestTimeoutS"
    assert len(fake_llm.chat_requests) == 1, "timeouts are not retried"


async def test_cancellation_mid_stream_closes_the_connection(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    """Through AgentScope's ``__call__``: the cancellation becomes a final INTERRUPTED response
    holding the partial text (that is how ``Agent`` keeps a partial answer), and the HTTP
    connection is closed."""
    fake_llm.push(TextReply(chunks=["first ", "second ", "third"], stall_after=2, stall_s=30))
    model = make_model()
    got: list[ChatResponse] = []
    two = asyncio.Event()  # the text before the stall was relayed (in one delta or two)

    async def consume() -> None:
        res = await model(messages=hello())
        assert not isinstance(res, ChatResponse)
        async for chunk in res:
            got.append(chunk)
            if "".join(texts(c) for c in got) == "first second ":
                two.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two.wait(), 5)
    task.cancel()
    await asyncio.wait_for(task, 5)
    assert await fake_llm.wait_for_disconnect(2.0), "the HTTP connection was closed"
    assert got[-1].is_last and got[-1].finished_reason == FinishedReason.INTERRUPTED
    assert texts(got[-1]) == "first second "
    assert make_model.stats[0].outcome == "interrupted"


async def test_complete_propagates_cancellation_and_closes_the_connection(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(chunks=["first ", "second"], stall_after=1, stall_s=30))
    model = make_model()
    task = asyncio.create_task(model.complete(hello()))
    await fake_llm.wait_for_chat_requests(1)
    await asyncio.sleep(0.2)  # the first chunk is in, the server stalls
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake_llm.wait_for_disconnect(2.0)
    assert make_model.stats[0].outcome == "interrupted"


async def test_complete_accumulates(fake_llm: FakeLLMServer, make_model: ModelFactory) -> None:
    fake_llm.push(TextReply(text="a b c", n_chunks=3, usage=Usage(prompt_tokens=3, completion_tokens=3)))
    final = await make_model().complete(hello())
    assert texts(final) == "a b c" and final.is_last
    assert final.usage is not None and final.usage.output_tokens == 3


async def test_cancellation_before_the_first_chunk_closes_the_connection(
    fake_llm: FakeLLMServer, make_model: ModelFactory
) -> None:
    fake_llm.push(TextReply(text="late", delay_s=30), TextReply(text="late", delay_s=30))
    model = make_model()
    for call in (model(messages=hello()), model.complete(hello())):
        fake_llm.requests.clear()
        fake_llm.reset_disconnects()
        task = asyncio.create_task(call)
        await fake_llm.wait_for_chat_requests(1)
        task.cancel()
        try:
            result = await task
        except asyncio.CancelledError:
            result = None  # complete(): the cancellation propagates
        else:  # __call__: AgentScope answers an empty INTERRUPTED response
            assert isinstance(result, ChatResponse) and result.finished_reason == FinishedReason.INTERRUPTED
        assert await fake_llm.wait_for_disconnect(2.0)
    assert [s.outcome for s in make_model.stats] == ["interrupted", "interrupted"]


# ---------------------------------------------------------------------------------------------
# Settings, errors, cost
# ---------------------------------------------------------------------------------------------


def test_settings_speak_camel_case() -> None:
    s = ModelSettings.model_validate(
        {
            "model": "ollama_chat/qwen2.5:7b",
            "apiBase": "http://127.0.0.1:11434",
            "stallTimeoutS": 5,
            "maxRetries": 1,
        }
    )
    assert (s.api_base, s.stall_timeout_s, s.max_retries) == ("http://127.0.0.1:11434", 5.0, 1)
    dumped = s.model_dump(by_alias=True)
    assert {"apiKeySecret", "requestTimeoutS", "contextSize"} <= set(dumped)
    with pytest.raises(ValueError):
        ModelSettings(model="x", temperature=3.0)


def test_error_codes_are_distinct() -> None:
    codes = [
        cls.code
        for cls in (
            ModelError,
            ModelUnavailableError,
            ModelAuthError,
            ModelRateLimitedError,
            ModelTimeoutError,
        )
    ]
    assert codes == ["model_error", "model_unavailable", "model_auth", "model_rate_limited", "model_timeout"]
    err = ModelAuthError("no", setting="model.apiKeySecret", upstream_status=401)
    assert isinstance(err, SidecarError), "model errors are part of the one error tree"
    assert err.status == 502, "rendered as a response, a model failure is a bad gateway"
    assert err.to_body() == {"error": {
        "code": "model_auth",
        "message": "no",
        "detail": {"attempts": 1, "setting": "model.apiKeySecret", "status": 401},
    }}


def test_cost_from_the_local_price_map() -> None:
    hosted = LiteLLMChatModel(ModelSettings(model="openai/gpt-4o-mini"), api_key="sk-x")
    assert hosted.cost_usd(1_000_000, 0) > 0
    assert hosted.cost_usd(0, 0) == 0.0
    unknown = LiteLLMChatModel(ModelSettings(model="openai/some-unknown-model"), api_key="sk-x")
    assert unknown.cost_usd(1000, 1000) == 0.0
    local = LiteLLMChatModel(ModelSettings(model="openai/gpt-4o-mini", api_base="http://localhost:1234/v1"))
    assert local.cost_usd(1000, 1000) == 0.0, "a model served on loopback costs nothing"
    assert LiteLLMChatModel(ModelSettings(model="ollama/llama3.2")).cost_usd(1000, 1000) == 0.0


def test_context_size_from_settings_or_price_map() -> None:
    assert LiteLLMChatModel(ModelSettings(model="ollama/x", context_size=4096)).context_size == 4096
    assert LiteLLMChatModel(ModelSettings(model="openai/gpt-4o-mini")).context_size >= 100_000
    assert LiteLLMChatModel(ModelSettings(model="openai/local-thing")).context_size == 8192


async def test_ollama_models_get_num_ctx(fake_llm: FakeLLMServer) -> None:
    model = LiteLLMChatModel(
        ModelSettings(model="ollama_chat/qwen", api_base="http://127.0.0.1:1", context_size=16384)
    )
    request = await model._build_request("ollama_chat/qwen", hello(), None, None, {})
    assert request["num_ctx"] == 16384
    assert request["max_retries"] == 0 and request["api_key"] == "sk-no-key"


async def test_no_success_logging_work_without_a_callback_and_callbacks_still_get_it(
    fake_llm: FakeLLMServer, make_model: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM built a success-logging payload (~30 ms of CPU on the event loop) after every
    streamed turn with nobody to receive it, while the turn's tool calls waited. Skipped when
    no callback is registered; a registered callback is still called."""
    import asyncio

    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.litellm_core_utils.litellm_logging import Logging

    handled: list[str] = []
    real = Logging.async_success_handler

    async def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        handled.append("handler")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "async_success_handler", spy)
    fake_llm.push(TextReply(text="hello there"))
    await collect(make_model())
    await asyncio.sleep(0.2)  # the dispatch is a task of its own
    assert handled == [], "LiteLLM's success logging ran with no callback registered"

    received: list[str] = []

    class Listener(CustomLogger):  # type: ignore[misc]
        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            received.append("success")

    monkeypatch.setattr(litellm, "callbacks", [Listener()])
    fake_llm.push(TextReply(text="hello again"))
    await collect(make_model())
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.05)
    assert handled and received == ["success"]


async def test_chunk_reader_hands_on_chunks_before_the_stream_error_and_stops_on_close() -> None:
    """The reader's contract: chunks that came before a stream error are handed on first, the
    error after them; closing it stops a read in progress (the task does not outlive the run)."""
    async def failing() -> AsyncIterator[str]:
        yield "b"
        yield "c"
        raise ConnectionResetError("reset")

    reader = ChunkReader(failing(), "a")
    assert await reader.next_batch() == ["a"]
    await asyncio.sleep(0)  # the reader runs while the consumer is busy: b, c, then the error
    assert reader._error is not None
    assert await reader.next_batch() == ["b", "c"]
    with pytest.raises(ConnectionResetError):
        await reader.next_batch()
    assert await reader.next_batch() == []

    async def endless() -> AsyncIterator[str]:
        while True:
            await asyncio.sleep(3600)
            yield "never"

    reader = ChunkReader(endless(), "x")
    assert await reader.next_batch() == ["x"]
    await asyncio.wait_for(reader.aclose(), 1)
    assert reader._task is not None and reader._task.cancelled()
