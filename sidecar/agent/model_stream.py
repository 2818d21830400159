"""LiteLLM's answers as AgentScope ``ChatResponse`` objects: streamed chunks to deltas (ids kept
stable across the deltas of one answer) and a whole non-streamed completion."""

from __future__ import annotations

import uuid
from collections.abc import Callable
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


def convert_chunk(chunk: Any, state: DeltaState, call: CallRecord,
                  make_usage: Callable[[CallRecord], ChatUsage]) -> ChatResponse | None:
    """One LiteLLM ``ModelResponseStream`` → a ChatResponse delta (``None`` if it carries nothing)."""
    state.response_id = getattr(chunk, "id", None) or state.response_id
    delta_res = ChatResponse(content=[], is_last=False, id=state.response_id)
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
    if not delta_res.content and delta_res.usage is None:
        return None
    return delta_res


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
