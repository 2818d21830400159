"""AgentScope 2.x agent events → AG-UI 1.0 events (DESIGN §4 mapping table).

Only the official ``ag-ui-protocol`` models are produced; encoding to SSE is done by its
``EventEncoder``. Quirks of AgentScope 2.0.10 handled here (see docs/agentscope-notes.md §4):
``REPLY_START`` is not emitted on resume (the run emits ``RUN_STARTED`` itself); with interleaved
parallel tool calls the same call id is started and ended several times, so ``TOOL_CALL_START``
is emitted once per id and ``TOOL_CALL_END`` is held back until the model call ends; tool result
text arrives in deltas and becomes one ``TOOL_CALL_RESULT``.

Entity tags (``<task>[id1,id2]</task>``, also ``project``, ``note``, ``timeline``) are never split
across ``TEXT_MESSAGE_CONTENT`` deltas, however the model's chunks split them, so the shell can
render each delta as it comes.

In home mode, output blocks (``sidecar.agent.blocks``) are cut out of the text: each complete,
valid block becomes one ``CUSTOM`` ``block`` event, in its place among the text deltas.
Each model call is an AG-UI step (``STEP_STARTED``/``STEP_FINISHED``, named ``step-N``), and
streamed reasoning (LiteLLM's ``reasoning_content``, AgentScope's thinking blocks) becomes
AG-UI reasoning events (``REASONING_START`` … ``REASONING_END``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    BaseEvent,
    CustomEvent,
    FunctionCall,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCall,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    ToolMessage,
)

from sidecar.agent.blocks import BlockSplitter

ENTITY_TAGS = ("task", "project", "note", "timeline")
_OPENERS = tuple(f"<{t}>" for t in ENTITY_TAGS)
_MAX_TAG_HOLD = 2000  # characters; a "tag" longer than this is not one of ours


class EntityTagBuffer:
    """Holds back text that may be the start of an entity tag until the tag is complete."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        """Add a delta; return the text that is safe to emit now (possibly empty)."""
        self._pending += delta
        out: list[str] = []
        while self._pending:
            i = self._pending.find("<")
            if i < 0:
                out.append(self._pending)
                self._pending = ""
                break
            out.append(self._pending[:i])
            rest = self._pending[i:]
            opener = next((o for o in _OPENERS if rest.startswith(o)), None)
            if opener is not None:
                closer = "</" + opener[1:]
                j = rest.find(closer)
                if j >= 0:
                    out.append(rest[: j + len(closer)])
                    self._pending = rest[j + len(closer):]
                    continue
                if len(rest) > _MAX_TAG_HOLD:
                    out.append(rest)
                    self._pending = ""
                else:
                    self._pending = rest
                break
            if any(o.startswith(rest) for o in _OPENERS):
                self._pending = rest  # "<ta…": wait for more
                break
            out.append("<")
            self._pending = rest[1:]
        return "".join(out)

    def flush(self) -> str:
        """Everything still held (at the end of a text block)."""
        text, self._pending = self._pending, ""
        return text


_TAG_RE = re.compile(r"<(task|project|note|timeline)>\[([^\]<>]*)\]</\1>")


def entity_tags(text: str) -> list[tuple[str, list[str]]]:
    """The entity tags in a text: ``[("task", ["id1", "id2"]), …]``."""
    return [(m.group(1), [i.strip() for i in m.group(2).split(",") if i.strip()]) for m in _TAG_RE.finditer(text)]


@dataclass
class _ToolCallState:
    name: str
    args: str = ""
    result: list[str] = field(default_factory=list)
    ended: bool = False


class AguiTranslator:
    """Stateful translator for one run. Feed AgentScope events to :meth:`translate`; it returns
    the AG-UI events to emit. It also assembles the AG-UI messages of the run (:attr:`messages`)
    for the thread history, and the per-turn assistant message ids for usage attribution."""

    def __init__(self, message_id_prefix: str,
                 blocks: Callable[[str], dict[str, Any] | None] | None = None) -> None:
        """``blocks``: in home mode, turns a block body into the ``block`` event's value (or
        ``None`` to drop it); ``None`` leaves fenced blocks in the text."""
        self._prefix = message_id_prefix
        self._turn = 0
        self._step: str | None = None
        self._reasoning: set[str] = set()
        self._block_value = blocks
        self._splitters: dict[str, BlockSplitter] = {}
        self._text: dict[str, list[str]] = {}
        self._buffers: dict[str, EntityTagBuffer] = {}
        self._calls: dict[str, _ToolCallState] = {}
        self._open_calls: list[str] = []
        #: AG-UI messages produced by this run, in order
        self.messages: list[AssistantMessage | ToolMessage] = []
        self._turn_message: AssistantMessage | None = None
        #: the message ids created during the current model call
        self.turn_message_ids: list[str] = []

    def _tool_message_for_turn(self) -> AssistantMessage:
        if self._turn_message is None:
            self._turn_message = AssistantMessage(id=f"{self._prefix}-calls-{self._turn}", role="assistant", tool_calls=[])
            self.messages.append(self._turn_message)
            self.turn_message_ids.append(self._turn_message.id)
        return self._turn_message

    def translate(self, ev: Any) -> list[BaseEvent]:
        """AG-UI events for one AgentScope event (often none). Event types are compared by name,
        so this module does not import AgentScope (it is imported before the agent stack is)."""
        t = getattr(ev.type, "value", ev.type)
        if t == "MODEL_CALL_START":
            self._turn += 1
            self._turn_message = None
            self.turn_message_ids = []
            out: list[BaseEvent] = self._end_step()
            self._step = f"step-{self._turn}"
            return [*out, StepStartedEvent(step_name=self._step)]
        if t == "TEXT_BLOCK_START":
            return self._start_text(ev.block_id)
        if t == "TEXT_BLOCK_DELTA":
            if ev.block_id not in self._buffers:  # tolerate a delta without start
                return [*self._start_text(ev.block_id), *self.translate(ev)]
            return self._text_pieces(ev.block_id, self._split(ev.block_id, ev.delta))
        if t == "TEXT_BLOCK_END":
            return self._end_text(ev.block_id)
        if t == "THINKING_BLOCK_START":
            return self._start_reasoning(ev.block_id)
        if t == "THINKING_BLOCK_DELTA":
            out = self._start_reasoning(ev.block_id) if ev.block_id not in self._reasoning else []
            if ev.delta:
                out.append(ReasoningMessageContentEvent(message_id=ev.block_id, delta=ev.delta))
            return out
        if t == "THINKING_BLOCK_END":
            return self._end_reasoning(ev.block_id)
        if t == "TOOL_CALL_START":
            if ev.tool_call_id in self._calls:
                return []  # re-started by interleaved parallel deltas: already open
            self._calls[ev.tool_call_id] = _ToolCallState(name=ev.tool_call_name)
            self._open_calls.append(ev.tool_call_id)
            parent = self._tool_message_for_turn()
            return [ToolCallStartEvent(tool_call_id=ev.tool_call_id, tool_call_name=ev.tool_call_name, parent_message_id=parent.id)]
        if t == "TOOL_CALL_DELTA":
            call = self._calls.get(ev.tool_call_id)
            if call is None or not ev.delta:
                return []
            call.args += ev.delta
            return [ToolCallArgsEvent(tool_call_id=ev.tool_call_id, delta=ev.delta)]
        if t == "TOOL_CALL_END":
            return []  # held back until the model call ends (see module docstring)
        if t == "MODEL_CALL_END":
            return self._end_open_calls()
        if t == "REPLY_END":
            return self._end_step()
        if t == "TOOL_RESULT_START":
            out = self._end_open_calls()  # a result implies its call is complete
            self._calls.setdefault(ev.tool_call_id, _ToolCallState(name=ev.tool_call_name))
            return out
        if t == "TOOL_RESULT_TEXT_DELTA":
            call = self._calls.get(ev.tool_call_id)
            if call is not None:
                call.result.append(ev.delta)
            return []
        if t == "TOOL_RESULT_DATA_DELTA":
            return []
        if t == "TOOL_RESULT_END":
            call = self._calls.get(ev.tool_call_id)
            content = "".join(call.result) if call else ""
            state = str(getattr(ev.state, "value", ev.state))
            if not content:
                content = f"(tool {state})"
            msg_id = f"{self._prefix}-result-{ev.tool_call_id}"
            self.messages.append(ToolMessage(id=msg_id, role="tool", tool_call_id=ev.tool_call_id, content=content,
                                             error=None if state == "success" else state))
            return [ToolCallResultEvent(message_id=msg_id, tool_call_id=ev.tool_call_id, content=content, role="tool")]
        return []

    def _split(self, block_id: str, delta: str) -> list[tuple[str, str]]:
        splitter = self._splitters.get(block_id)
        return splitter.feed(delta) if splitter is not None else [("text", delta)]

    def _text_pieces(self, block_id: str, pieces: list[tuple[str, str]]) -> list[BaseEvent]:
        """Text pieces go through the entity-tag buffer; block bodies become ``block`` events."""
        out: list[BaseEvent] = []
        for kind, value in pieces:
            if kind == "text":
                self._text[block_id].append(value)
                safe = self._buffers[block_id].feed(value)
                if safe:
                    out.append(TextMessageContentEvent(message_id=block_id, delta=safe))
            elif self._block_value is not None and (block := self._block_value(value)) is not None:
                held = self._buffers[block_id].flush()  # text before the block goes out first
                if held:
                    out.append(TextMessageContentEvent(message_id=block_id, delta=held))
                out.append(CustomEvent(name="block", value=block))
        return out

    def _start_reasoning(self, block_id: str) -> list[BaseEvent]:
        self._reasoning.add(block_id)
        return [ReasoningStartEvent(message_id=block_id),
                ReasoningMessageStartEvent(message_id=block_id, role="reasoning")]

    def _end_reasoning(self, block_id: str) -> list[BaseEvent]:
        if block_id not in self._reasoning:
            return []
        self._reasoning.discard(block_id)
        return [ReasoningMessageEndEvent(message_id=block_id), ReasoningEndEvent(message_id=block_id)]

    def _end_step(self) -> list[BaseEvent]:
        if self._step is None:
            return []
        step, self._step = self._step, None
        return [StepFinishedEvent(step_name=step)]

    def _start_text(self, block_id: str) -> list[BaseEvent]:
        self._text[block_id] = []
        self._buffers[block_id] = EntityTagBuffer()
        if self._block_value is not None:
            self._splitters[block_id] = BlockSplitter()
        self.messages.append(AssistantMessage(id=block_id, role="assistant", content=""))
        self.turn_message_ids.append(block_id)
        return [TextMessageStartEvent(message_id=block_id, role="assistant")]

    def _end_text(self, block_id: str) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        splitter = self._splitters.pop(block_id, None)
        if splitter is not None and block_id in self._buffers:
            out.extend(self._text_pieces(block_id, splitter.flush()))
        buf = self._buffers.pop(block_id, None)
        if buf is not None:
            rest = buf.flush()
            if rest:
                out.append(TextMessageContentEvent(message_id=block_id, delta=rest))
        text = "".join(self._text.pop(block_id, []))
        for m in self.messages:
            if m.id == block_id and isinstance(m, AssistantMessage):
                m.content = text
        out.append(TextMessageEndEvent(message_id=block_id))
        return out

    def _end_open_calls(self) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        for call_id in self._open_calls:
            call = self._calls[call_id]
            if call.ended:
                continue
            call.ended = True
            parent = self._tool_message_for_turn()
            try:
                arguments = json.dumps(json.loads(call.args or "{}"), ensure_ascii=False)
            except ValueError:
                arguments = call.args
            assert parent.tool_calls is not None
            parent.tool_calls.append(ToolCall(id=call_id, type="function", function=FunctionCall(name=call.name, arguments=arguments)))
            out.append(ToolCallEndEvent(tool_call_id=call_id))
        self._open_calls = []
        return out

    def close(self) -> list[BaseEvent]:
        """Events that must still be emitted when a run ends early (open text and tool calls)."""
        out: list[BaseEvent] = []
        for block_id in list(self._buffers):
            out.extend(self._end_text(block_id))
        for block_id in list(self._reasoning):
            out.extend(self._end_reasoning(block_id))
        out.extend(self._end_open_calls())
        out.extend(self._end_step())
        return out
