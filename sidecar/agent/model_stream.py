"""LiteLLM's answers as AgentScope ``ChatResponse`` objects: streamed chunks to deltas (ids kept
stable across the deltas of one answer) and a whole non-streamed completion.

Chunks that arrived together become one delta (:class:`ChunkReader`): when a model streams faster
than a run relays, the run's per-delta work (the agent's events, AG-UI translation, encoding,
storage) is paid once per network read instead of once per token; a model slower than the relay
gets one delta per chunk, as before. The text is the same either way: AG-UI clients concatenate
``TEXT_MESSAGE_CONTENT`` deltas.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from agentscope.message import TextBlock, ThinkingBlock, ToolCallBlock
from agentscope.model import ChatResponse, ChatUsage

from sidecar.agent.model_stats import CallRecord, cached_tokens


class DeltaState:
    """Ids that stay fixed across the deltas of one streamed answer.

    ``tool_calls`` maps the OpenAI stream's call ``index`` to ``(id, name)``: both arrive only on
    the first delta of a call, its later argument deltas carry just the index.
    """

    def __init__(self) -> None:
        self.response_id = uuid.uuid4().hex
        self.text_id = uuid.uuid4().hex
        self.thinking_id = uuid.uuid4().hex
        self.tool_calls: dict[int, tuple[str, str]] = {}


class ChunkReader:
    """Reads a LiteLLM stream in a task of its own and hands on, per :meth:`next_batch`, every
    chunk that arrived since the last call.

    The reader runs whenever the consumer waits; it stops at the stream's own waits (a network
    read), so a batch is what one or more reads brought, never a wait for more. A stream error is
    raised by the call after the chunks that came before it. :meth:`aclose` cancels the reader.
    """

    def __init__(self, stream: Any, first: Any) -> None:
        self._buffer: list[Any] = [] if first is None else [first]
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._ended = first is None
        self._task: asyncio.Task[None] | None = None
        if not self._ended:
            self._task = asyncio.get_running_loop().create_task(self._read(aiter(stream)), name="model-stream-reader")

    async def _read(self, iterator: AsyncIterator[Any]) -> None:
        try:
            async for chunk in iterator:
                self._buffer.append(chunk)
                self._ready.set()
        except Exception as exc:  # handed to the consumer, which maps it
            self._error = exc
        finally:
            self._ended = True
            self._ready.set()

    async def next_batch(self) -> list[Any]:
        """The chunks received since the last call, waiting for at least one; ``[]`` once the
        stream has ended. Raises the stream's error once its earlier chunks were handed on."""
        while not self._buffer and not self._ended:
            self._ready.clear()
            await self._ready.wait()
        batch, self._buffer = self._buffer, []
        if not batch and self._error is not None:
            error, self._error = self._error, None
            raise error
        return batch

    async def aclose(self) -> None:
        """Stop reading (cancels a read in progress) and wait until the reader has stopped. Raises
        nothing of the reader's; a cancellation of the caller still propagates."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})


def convert_chunks(chunks: list[Any], state: DeltaState, call: CallRecord,
                   make_usage: Callable[[CallRecord], ChatUsage]) -> ChatResponse | None:
    """LiteLLM ``ModelResponseStream`` chunks, in order → one ChatResponse delta (``None`` if they
    carry nothing). Consecutive text (or reasoning, or one call's arguments) joins into one block."""
    delta_res = ChatResponse(content=[], is_last=False, id=getattr(chunks[0], "id", None) or state.response_id)
    for chunk in chunks:
        _add_chunk(delta_res, chunk, state, call, make_usage)
    if not delta_res.content and delta_res.usage is None:
        return None
    return delta_res


def _add_chunk(delta_res: ChatResponse, chunk: Any, state: DeltaState, call: CallRecord,
               make_usage: Callable[[CallRecord], ChatUsage]) -> None:
    state.response_id = getattr(chunk, "id", None) or state.response_id
    usage = getattr(chunk, "usage", None)
    if usage:
        call.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        call.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        call.cached_tokens = cached_tokens(usage)
        delta_res.usage = make_usage(call)
    for choice in getattr(chunk, "choices", None) or []:
        delta = getattr(choice, "delta", None)
        if delta is None:
            continue
        thinking = getattr(delta, "reasoning_content", None)
        if isinstance(thinking, str) and thinking:
            delta_res.append_thinking(thinking, block_id=state.thinking_id)
        text = getattr(delta, "content", None)
        if isinstance(text, str) and text:
            delta_res.append_text(text, block_id=state.text_id)
        for tool_call in getattr(delta, "tool_calls", None) or []:
            index = getattr(tool_call, "index", 0) or 0
            fn = getattr(tool_call, "function", None)
            name = getattr(fn, "name", None) if fn is not None else None
            args = getattr(fn, "arguments", None) if fn is not None else None
            known = state.tool_calls.get(index)
            if known is None:
                call_id = getattr(tool_call, "id", None) or f"call_{state.response_id}_{index}"
                known = (call_id, name or "")
                state.tool_calls[index] = known
            elif name and not known[1]:
                known = (known[0], name)
                state.tool_calls[index] = known
            delta_res.append_tool_call(block_id=known[0], name=known[1], input=args or "")


def parse_completion(response: Any, call: CallRecord, make_usage: Callable[[CallRecord], ChatUsage]) -> ChatResponse:
    content: list[TextBlock | ToolCallBlock | ThinkingBlock] = []
    choices = getattr(response, "choices", None) or []
    if choices:
        message = choices[0].message
        reasoning = getattr(message, "reasoning_content", None)
        if isinstance(reasoning, str) and reasoning:
            content.append(ThinkingBlock(thinking=reasoning))
        if message.content:
            content.append(TextBlock(text=message.content))
        for tool_call in getattr(message, "tool_calls", None) or []:
            content.append(
                ToolCallBlock(
                    id=tool_call.id,
                    name=tool_call.function.name or "",
                    input=tool_call.function.arguments or "",
                )
            )
    usage = getattr(response, "usage", None)
    if usage:
        call.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        call.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        call.cached_tokens = cached_tokens(usage)
    result = ChatResponse(content=list(content), is_last=True, usage=make_usage(call))
    if getattr(response, "id", None):
        result.id = response.id
    return result
