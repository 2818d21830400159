"""One agent run from ``RUN_STARTED`` to its terminal event (DESIGN §4).

:class:`RunExecution` drives the AgentScope agent for one :class:`~sidecar.agent.run_state.RunState`:
the opening events (``RUN_STARTED``, the floating ``domain``, ``STATE_SNAPSHOT``, and
``MESSAGES_SNAPSHOT`` when a thread is resumed), the agent's events translated to AG-UI, and —
always, in ``finally`` — the ``mutations`` event and exactly one ``RUN_FINISHED`` or
``RUN_ERROR``, with the run, its messages and the agent state stored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sidecar import clock
from sidecar.agent.history import StoredMessage
from sidecar.agent.prompts import system_prompt
from sidecar.agent.run_state import RunState
from sidecar.agent.settings import AGENT_PROMPTS_KEY, AgentPrompts
from sidecar.agent.stack import load_agent_stack
from sidecar.agent.tools import CURRENT_SCOPE
from sidecar.errors import SidecarError
from sidecar.logs import scrub

if TYPE_CHECKING:
    from sidecar.agent.runs import AgentService

log = logging.getLogger(__name__)

MAX_ITERS = 20


class RunFailure(SidecarError):
    """A run-ending failure with a stable code, reported as ``RUN_ERROR``."""


def model_not_configured() -> RunFailure:
    return RunFailure(
        "No model is configured. Set one with PUT /v1/settings/model, e.g. "
        '{"model": "ollama/llama3.2", "apiBase": "http://127.0.0.1:11434"}.',
        code="model_not_configured",
    )


def text_of(message: Any) -> str:
    """The text of an AG-UI message (string content or its text parts)."""
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(getattr(p, "text", "") for p in content if getattr(p, "type", "") == "text")
    return ""


class RunExecution:
    """Runs one :class:`RunState` on the service's history, secrets, toolkits and extensions."""

    def __init__(self, service: AgentService, rs: RunState) -> None:
        self.service = service
        self.history = service.history
        self.rs = rs

    async def run(self) -> None:
        rs = self.rs
        try:
            await self._open()
            await self._drive()
        except asyncio.CancelledError:
            rs.status = "cancelled"
        except SidecarError as exc:  # ModelError included: part of the one error tree
            rs.status, rs.error = "error", (exc.code, exc.message)
        except Exception as exc:
            log.exception("agent run failed", extra={"run_id": rs.run_id})
            rs.status, rs.error = "error", ("internal", f"the run failed: {type(exc).__name__}; see the sidecar log")
        finally:
            await self._finish()

    # --- opening --------------------------------------------------------------------------------

    async def _open(self) -> None:
        from ag_ui.core import PROTOCOL_VERSION, CustomEvent, RunStartedEvent, StateSnapshotEvent

        rs, emit = self.rs, self.rs.handle.emit
        # ``input`` lets a client replaying the thread's events rebuild the user messages too.
        emit(RunStartedEvent(thread_id=rs.thread_id, run_id=rs.run_id, protocol_version=PROTOCOL_VERSION,
                             input=rs.run_input))
        if rs.domain:
            emit(CustomEvent(name="domain", value=rs.domain))
        pending = rs.plan.pending
        emit(StateSnapshotEvent(snapshot={
            "mode": rs.mode, "domain": rs.domain, "entityId": rs.scope_id,
            "model": rs.settings.model if rs.settings else None,
            "pendingToolCalls": [c["id"] for c in pending["toolCalls"]] if pending else [],
        }))
        if rs.plan.resumed:
            await self._messages_snapshot()

    async def _messages_snapshot(self) -> None:
        """``MESSAGES_SNAPSHOT`` of the thread so far (with this run's new user messages), so a
        reconnecting shell can redraw it."""
        from ag_ui.core import MessagesSnapshotEvent

        rs = self.rs
        stored = [m.message for m in await self.history.messages(rs.thread_id)]
        known = {m.get("id") for m in stored}
        fresh = [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in rs.plan.fresh]
        messages = stored + [m for m in fresh if m.get("id") not in known]
        try:
            rs.handle.emit(MessagesSnapshotEvent.model_validate({"type": "MESSAGES_SNAPSHOT", "messages": messages}))
        except ValueError:
            log.exception("thread messages do not validate as AG-UI messages", extra={"thread_id": rs.thread_id})

    # --- the agent ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        rs = self.rs
        if rs.settings is None:
            raise model_not_configured()
        await load_agent_stack()
        from agentscope.event import EventType, RequireExternalExecutionEvent, RequireUserConfirmEvent
        from agentscope.state import AgentState

        settings = rs.settings
        api_key = await self.service.secrets.get(settings.api_key_secret) if settings.api_key_secret else None
        saved = await self.history.state(rs.thread_id)
        rs.state = AgentState.model_validate(saved) if saved else AgentState(session_id=rs.thread_id)
        inputs = self._inputs()
        agent = await self._agent(api_key)
        token = CURRENT_SCOPE.set(rs.scope)
        try:
            async for ev in agent.reply_stream(inputs):
                if isinstance(ev, RequireUserConfirmEvent):
                    rs.status = "interrupted"
                    rs.interrupt = {"replyId": ev.reply_id, "toolCalls": [c.model_dump(mode="json") for c in ev.tool_calls]}
                elif isinstance(ev, RequireExternalExecutionEvent):
                    # the shell executes these; its next run carries their results as tool messages
                    rs.interrupt = {"replyId": ev.reply_id, "kind": "client_tools",
                                    "toolCalls": [c.model_dump(mode="json") for c in ev.tool_calls]}
                elif ev.type == EventType.REPLY_END and str(getattr(ev.finished_reason, "value", ev.finished_reason)) == "interrupted":
                    rs.status = "cancelled"
                for out in rs.translator.translate(ev):
                    rs.handle.emit(out)
                if ev.type == EventType.MODEL_CALL_END:
                    rs.acct.account(rs.translator.turn_message_ids)
                elif ev.type == EventType.TOOL_RESULT_END:
                    # Let the relay write the result now: the agent goes straight on to the next
                    # call, and its first wait (often inside that tool) came ~1 ms later.
                    await asyncio.sleep(0)
        finally:
            CURRENT_SCOPE.reset(token)

    def _inputs(self) -> Any:
        """What to feed the agent: the resume decision, the client tools' results, or the messages
        it has not seen yet (also kept in ``rs.user_messages`` for the history)."""
        from agentscope.event import ConfirmResult, ExternalExecutionResultEvent, UserConfirmResultEvent
        from agentscope.message import (
            AssistantMsg,
            TextBlock,
            ToolCallBlock,
            ToolResultBlock,
            ToolResultState,
            UserMsg,
        )

        rs = self.rs
        pending = rs.plan.pending
        now = clock.now_ms()
        rs.user_messages = [StoredMessage(id=m.id, run_id=rs.run_id, role=m.role,
                                          message=m.model_dump(mode="json", by_alias=True, exclude_none=True),
                                          created_at=now) for m in rs.plan.fresh]
        if pending is not None and pending.get("kind") == "client_tools":
            results = {m.tool_call_id: m for m in rs.plan.fresh if m.role == "tool"}
            blocks = [ToolResultBlock(id=c["id"], name=c["name"], output=[TextBlock(text=text_of(results[c["id"]]))],
                                      state=ToolResultState.ERROR if getattr(results[c["id"]], "error", None)
                                      else ToolResultState.SUCCESS)
                      for c in pending["toolCalls"]]
            return ExternalExecutionResultEvent(reply_id=pending["replyId"], execution_results=blocks)
        if pending is not None:
            decisions = {r.interrupt_id: r for r in rs.run_input.resume or []}
            confirms = []
            for call in pending["toolCalls"]:
                entry = decisions.get(call["id"])
                payload = entry.payload if entry is not None else None
                approved = bool(entry is not None and entry.status == "resolved"
                                and (payload is True or (isinstance(payload, dict) and payload.get("approved") is True)))
                confirms.append(ConfirmResult(confirmed=approved, tool_call=ToolCallBlock.model_validate(call)))
            return UserConfirmResultEvent(reply_id=pending["replyId"], confirm_results=confirms)
        return [UserMsg("user", text_of(m), id=m.id) if m.role == "user" else AssistantMsg("assistant", text_of(m), id=m.id)
                for m in rs.plan.fresh if m.role in ("user", "assistant")]

    async def _agent(self, api_key: str | None) -> Any:
        from agentscope.agent import Agent, InjectionConfig, ModelConfig, ReActConfig
        from agentscope.tool import Toolkit

        from sidecar.agent.model import LiteLLMChatModel
        from sidecar.agent.toolkit import client_tools

        rs = self.rs
        assert rs.settings is not None
        core, recall = await self._memory()
        prompts = await self._prompts()
        await self.service.toolkits.ready()
        ours = self.service.toolkits.tools(rs.domain)
        tools = ours + client_tools(list(rs.run_input.tools or []), {t.name for t in ours})
        return Agent(
            name="assistant",
            system_prompt=system_prompt(rs.mode, domain=rs.domain, entity_id=rs.scope_id, memory=core, recall=recall,
                                        instructions=prompts.for_mode(rs.mode, rs.domain),
                                        context=[(c.description, c.value) for c in rs.run_input.context or []]),
            model=LiteLLMChatModel(rs.settings, api_key, on_call_end=rs.acct.stats.append),
            toolkit=Toolkit(tools=tools),
            state=rs.state,
            model_config=ModelConfig(max_retries=0),
            react_config=ReActConfig(max_iters=MAX_ITERS, interruption_raise_cancelled_error=True),
            # The time and the rest of the runtime context are in the system prompt: AgentScope's
            # injection would add a user turn after the user's message.
            injection_config=InjectionConfig(inject_runtime_state=False, emit_hint_event=False),
        )

    async def _prompts(self) -> AgentPrompts:
        raw = await self.history.get_setting(AGENT_PROMPTS_KEY)
        try:
            return AgentPrompts.model_validate(raw or {})
        except ValueError:
            log.warning("stored agent prompts are invalid; using none")
            return AgentPrompts()

    async def _memory(self) -> tuple[dict[str, str], str]:
        """Core memory and recalled memory for the run's system prompt (from the extensions)."""
        rs = self.rs
        text = "\n".join(text_of(m) for m in rs.plan.fresh if m.role == "user")
        core: dict[str, str] | None = None
        recall = []
        for ext in self.service.extensions:
            try:
                core = core if core is not None else await ext.core()
                recall.append(await ext.before_run(rs.thread_id, text))
            except Exception:  # memory is a help: a failure must not fail the run
                log.exception("memory for the run failed", extra={"thread_id": rs.thread_id})
        return (core if core is not None else await self.history.core_memory()), "\n\n".join(r for r in recall if r)

    # --- the end --------------------------------------------------------------------------------

    async def _finish(self) -> None:
        rs, handle = self.rs, self.rs.handle
        if rs.error is not None:  # provider errors may quote a key: never stored or sent as is
            rs.error = (rs.error[0], scrub(rs.error[1]))
        try:
            for out in rs.translator.close():
                handle.emit(out)
            self._emit_end()
            batch, handle.pending_events = handle.pending_events, []
            acct = rs.acct
            await asyncio.shield(self.history.finish_run(
                rs.run_id, rs.status, events=batch, messages=self._messages(), thread_id=rs.thread_id,
                state=rs.state.model_dump(mode="json") if rs.state is not None else None,
                usage={"input_tokens": acct.input_tokens, "output_tokens": acct.output_tokens, "cost": acct.cost,
                       "latency_ms": clock.now_ms() - rs.started},
                error=rs.error, interrupt=rs.interrupt))
            if self.service.extensions:
                await asyncio.shield(self._after_extensions())
        except Exception:
            log.exception("finishing the run failed", extra={"run_id": rs.run_id})
        finally:
            self.service.ended(rs)

    def _emit_end(self) -> None:
        from ag_ui.core import (
            CustomEvent,
            Interrupt,
            RunErrorEvent,
            RunFinishedCancelledOutcome,
            RunFinishedEvent,
            RunFinishedInterruptOutcome,
            RunFinishedSuccessOutcome,
            TokenUsage,
        )

        rs, emit, acct = self.rs, self.rs.handle.emit, self.rs.acct
        emit(CustomEvent(name="mutations", value=[
            {"seq": m.seq, "entity": m.entity, "id": m.entity_id, "op": m.op, "fields": m.fields} for m in rs.scope.changes
        ]))
        usage = [TokenUsage(provider=(acct.model or "").split("/")[0] or None, model=acct.model,
                            input_tokens=acct.input_tokens, output_tokens=acct.output_tokens,
                            total_tokens=acct.input_tokens + acct.output_tokens)] if acct.stats else None
        def finished(outcome: Any) -> RunFinishedEvent:
            return RunFinishedEvent(thread_id=rs.thread_id, run_id=rs.run_id, outcome=outcome, usage=usage)

        if rs.status == "error" and rs.error is not None:
            emit(RunErrorEvent(message=rs.error[1], code=rs.error[0], usage=usage))
        elif rs.status == "interrupted" and rs.interrupt is not None:
            interrupts = [Interrupt(id=c["id"], reason="tool_approval", tool_call_id=c["id"],
                                    message=f"Allow {c.get('name')}?",
                                    metadata={"toolName": c.get("name"), "arguments": c.get("input")})
                          for c in rs.interrupt["toolCalls"]]
            emit(finished(RunFinishedInterruptOutcome(type="interrupt", interrupts=interrupts)))
        elif rs.status == "cancelled":
            emit(finished(RunFinishedCancelledOutcome(type="cancelled")))
        else:
            emit(finished(RunFinishedSuccessOutcome(type="success")))

    def _messages(self) -> list[StoredMessage]:
        rs = self.rs
        messages = list(rs.user_messages)
        for m in rs.translator.messages:
            s = rs.acct.per_message.get(m.id)
            messages.append(StoredMessage(
                id=m.id, run_id=rs.run_id, role=m.role, message=m.model_dump(mode="json", by_alias=True, exclude_none=True),
                model=rs.acct.model if s else None, input_tokens=s.input_tokens if s else None,
                output_tokens=s.output_tokens if s else None, cost=s.cost_usd if s else None,
                latency_ms=s.latency_ms if s else None, created_at=clock.now_ms()))
        return messages

    async def _after_extensions(self) -> None:
        rs = self.rs
        user_text = "\n".join(str(m.message.get("content") or "") for m in rs.user_messages if m.role == "user")
        answer = "\n".join(str(m.content) for m in rs.translator.messages
                           if m.role == "assistant" and isinstance(getattr(m, "content", None), str))
        for ext in self.service.extensions:
            try:
                await ext.after_run(rs.thread_id, rs.run_id, rs.status, user_text, answer, len(rs.scope.changes))
            except Exception:
                log.exception("storing the run's memory failed", extra={"run_id": rs.run_id})
