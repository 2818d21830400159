"""The run lifecycle: one AgentScope agent run per AG-UI ``RunAgentInput`` (DESIGN §4).

A run executes in its own asyncio task, independent of the HTTP request that started it (a
client that disconnects does not stop it; ``POST …/cancel`` does). Its AG-UI events go to live
subscribers and, in batches, to the ``agent_events`` table for replay. Rules enforced here:

- one active run per thread (:class:`RunConflict`, HTTP 409 naming the running run);
- ``RUN_STARTED`` first (with ``protocolVersion``); in ``floating`` mode the ``CUSTOM`` ``domain``
  event next; at the end, always (``try/finally``), the ``CUSTOM`` ``mutations`` event with the
  change-log entries the run caused and then exactly one ``RUN_FINISHED`` or ``RUN_ERROR``;
- destructive tools ask: the run finishes with an interrupt outcome naming the pending tool call,
  and a later run with ``resume`` carries the user's decision;
- the agent state is saved after every run, whatever its end, so a thread continues across runs
  and across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sidecar import clock
from sidecar.agent.history import History, RunStatus, StoredMessage
from sidecar.agent.prompts import SCOPE_DOMAINS, system_prompt
from sidecar.agent.settings import ModelSettings
from sidecar.background import loading_libraries
from sidecar.errors import Conflict, NotFound, SidecarError, ValidationFailed
from sidecar.logs import scrub
from sidecar.secrets import SecretStore
from sidecar.store.db import ChangeEntry, Store
from sidecar.store.repository import Repository

if TYPE_CHECKING:  # ag_ui's models take ~0.1 s to build: imported where used, after start-up
    from ag_ui.core import BaseEvent, RunAgentInput

log = logging.getLogger(__name__)

MODEL_SETTING_KEY = "model"
EVENT_FLUSH_INTERVAL_S = 0.1
#: A run registered this long without a task is ended by the watchdog (seconds).
ORPHAN_AFTER_S = 30.0
MAX_ITERS = 20

#: Tools offered per floating-mode domain (home mode gets all of them).
DOMAIN_TOOLS: dict[str, tuple[str, ...]] = {
    "tasks": ("list_tasks", "create_task", "update_task", "delete_task", "list_tasks_due_today",
              "list_task_comments", "add_task_comment", "delete_task_comment", "list_projects"),
    "notes": ("list_notes", "get_note", "create_note", "update_note", "delete_note", "list_projects"),
    "projects": ("list_projects", "list_all_projects", "get_project", "create_project", "update_project",
                 "delete_project", "list_clients", "create_client"),
    "timelines": ("list_timelines", "create_timeline", "update_timeline", "delete_timeline", "list_projects"),
}


class RunConflict(Conflict):
    """409: the thread already has an active run (``detail.runId`` names it)."""

    code = "run_active"


class RunFailure(SidecarError):
    """A run-ending failure with a stable code, reported as ``RUN_ERROR``."""


def model_not_configured() -> RunFailure:
    return RunFailure(
        "No model is configured. Set one with PUT /v1/settings/model, e.g. "
        '{"model": "ollama/llama3.2", "apiBase": "http://127.0.0.1:11434"}.',
        code="model_not_configured",
    )


def import_agent_stack() -> None:
    """Import LiteLLM (offline-safe) and AgentScope and settle their global settings. Idempotent;
    slow the first time (about a second), so the service calls it after the handshake."""
    from sidecar.agent.litellm_env import configure_agentscope_logging, import_litellm

    import_litellm()
    configure_agentscope_logging()
    import agentscope.agent  # noqa: F401


_stack_loaded = threading.Event()


def stack_loaded() -> bool:
    """True once :func:`load_agent_stack` has finished."""
    return _stack_loaded.is_set()


async def load_agent_stack() -> None:
    """:func:`import_agent_stack` off the event loop, in a daemon thread: an import cannot be
    interrupted, and a shutdown must not wait seconds for one to finish (the default executor's
    threads are joined at exit; a daemon thread is not)."""
    if _stack_loaded.is_set():
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def target() -> None:
        error: BaseException | None = None
        try:
            with loading_libraries():
                import_agent_stack()
            _stack_loaded.set()
        except BaseException as exc:
            error = exc

        def settle() -> None:
            if not done.done():
                done.set_exception(error) if error is not None else done.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=target, name="agent-stack-import", daemon=True).start()
    await done


@dataclass
class RunHandle:
    """A run in progress: its task, live subscribers and not yet stored events."""

    run_id: str
    thread_id: str
    task: asyncio.Task[None] | None = None
    subscribers: set[asyncio.Queue[BaseEvent | None]] = field(default_factory=set)
    pending_events: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    emitted: list[BaseEvent] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    flushed: asyncio.Event = field(default_factory=asyncio.Event)
    #: ``time.monotonic()`` when it was registered (the watchdog's clock)
    created: float = field(default_factory=time.monotonic)

    def subscribe(self) -> asyncio.Queue[BaseEvent | None]:
        """A queue receiving every event emitted from now on, then ``None`` at the end."""
        q: asyncio.Queue[BaseEvent | None] = asyncio.Queue()
        if self.done.is_set():
            q.put_nowait(None)
        self.subscribers.add(q)
        return q

    def emit(self, ev: BaseEvent) -> None:
        self.emitted.append(ev)
        data = ev.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.pending_events.append((self.thread_id, self.run_id, str(data.get("type")), data))
        for q in self.subscribers:
            q.put_nowait(ev)


def _text_of(message: Any) -> str:
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(getattr(p, "text", "") for p in content if getattr(p, "type", "") == "text")
    return ""


@dataclass
class _Plan:
    """What a run will feed the agent: the pending confirmation it answers, or new messages."""

    pending: dict[str, Any] | None
    fresh: list[Any]


@dataclass
class _Accounting:
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency_ms: int = 0
    model: str | None = None
    #: ``ModelCallStats`` of each model call, in order
    stats: list[Any] = field(default_factory=list)
    #: message id → the stats of the model call that produced it
    per_message: dict[str, Any] = field(default_factory=dict)


class AgentService:
    """Starts, tracks, cancels and records agent runs for one store."""

    def __init__(self, store: Store, history: History, secrets: SecretStore,
                 on_run_status: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.store = store
        self.history = history
        self.secrets = secrets
        self._on_run_status = on_run_status
        self._by_thread: dict[str, RunHandle] = {}
        self._by_run: dict[str, RunHandle] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        #: parts that add to runs (search: memory in the context, the search tool, episodes
        #: stored after): ``tools()``, ``core()``, ``before_run(thread_id, text)``,
        #: ``after_run(thread_id, run_id, status, user_text, assistant_text, changed)``
        self.extensions: list[Any] = []

    # --- settings -----------------------------------------------------------------------------

    async def model_settings(self) -> ModelSettings | None:
        """The configured ``ModelSettings``, or None."""
        raw = await self.history.get_setting(MODEL_SETTING_KEY)
        if not raw:
            return None
        try:
            return ModelSettings.model_validate(raw)
        except ValidationError:
            log.warning("stored model settings are invalid; treating as not configured")
            return None

    # --- lifecycle ----------------------------------------------------------------------------

    def active_run(self, thread_id: str) -> RunHandle | None:
        """The thread's running run, if any."""
        return self._by_thread.get(thread_id)

    def handle(self, run_id: str) -> RunHandle | None:
        return self._by_run.get(run_id)

    async def start(self, run_input: RunAgentInput) -> tuple[RunHandle, asyncio.Queue[BaseEvent | None]]:
        """Register and launch a run; returns its handle and a queue already subscribed to it.

        Raises:
            RunConflict: the thread has an active run.
            Conflict: the run id was used before.
            ValidationFailed: bad ``forwardedProps``, no new user message, unknown interrupt ids.
            Conflict: a resume with nothing pending, or a new message while a confirmation is pending.
        """
        if self._closing:
            raise SidecarError("the sidecar is shutting down", code="shutting_down", status=503)
        thread_id, run_id = run_input.thread_id, run_input.run_id
        mode, domain, scope_id = self._mode(run_input)
        # Claim the thread and the run id in memory with no await in between (so concurrent
        # starts cannot both pass), then in the database in one statement (history.start_run).
        running = self._by_thread.get(thread_id)
        if running is not None:
            raise RunConflict(f"thread {thread_id} already has an active run", detail={"runId": running.run_id})
        if run_id in self._by_run:
            raise Conflict(f"run id {run_id} was already used", code="run_exists")
        handle = RunHandle(run_id=run_id, thread_id=thread_id)
        self._by_thread[thread_id] = handle
        self._by_run[run_id] = handle
        try:
            if await self.history.run(run_id) is not None:
                raise Conflict(f"run id {run_id} was already used", code="run_exists")
            plan = await self._plan(run_input)
            queue = handle.subscribe()
            first_user = next((_text_of(m) for m in run_input.messages if m.role == "user"), None)
            await self.history.ensure_thread(thread_id, first_user)
            settings = await self.model_settings()
            if not await self.history.start_run(run_id, thread_id, mode, settings.model if settings else None):
                raise RunConflict(f"thread {thread_id} already has an active run")
        except sqlite3.IntegrityError:
            self._forget(handle)
            raise Conflict(f"run id {run_id} was already used", code="run_exists") from None
        except BaseException:
            self._forget(handle)
            raise
        handle.task = asyncio.get_running_loop().create_task(
            self._run(handle, run_input, plan, mode, domain, scope_id, settings), name=f"agent-run-{run_id}"
        )
        self._ensure_flusher()
        self._status({"runId": run_id, "threadId": thread_id, "status": "running"})
        return handle, queue

    def _mode(self, run_input: RunAgentInput) -> tuple[str, str | None, str | None]:
        props = run_input.forwarded_props if isinstance(run_input.forwarded_props, dict) else {}
        mode = props.get("mode", "home")
        if mode not in ("home", "floating"):
            raise ValidationFailed.field("forwardedProps.mode", "must be 'home' or 'floating'")
        if mode == "home":
            return mode, None, None
        scope = props.get("scope")
        if not isinstance(scope, dict) or scope.get("type") not in SCOPE_DOMAINS:
            raise ValidationFailed.field(
                "forwardedProps.scope", "floating mode needs scope {type: task|note|project|timeline, id?}"
            )
        scope_id = scope.get("id")
        return mode, SCOPE_DOMAINS[scope["type"]], str(scope_id) if scope_id else None

    async def cancel(self, run_id: str) -> bool:
        """Cancel a running run; False when it is not running (already ended). Raises NotFound."""
        handle = self._by_run.get(run_id)
        if handle is None or handle.task is None or handle.task.done():
            if await self.history.run(run_id) is None:
                raise NotFound(f"no run with id {run_id}")
            return False
        handle.task.cancel()
        return True

    async def shutdown(self, timeout_s: float = 4.0) -> None:
        """Cancel every run and wait (bounded) for their final events to be stored."""
        self._closing = True
        tasks = [h.task for h in self._by_run.values() if h.task is not None and not h.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def _forget(self, handle: RunHandle) -> None:
        if self._by_thread.get(handle.thread_id) is handle:
            del self._by_thread[handle.thread_id]
        if self._by_run.get(handle.run_id) is handle:
            del self._by_run[handle.run_id]

    def _status(self, data: dict[str, Any]) -> None:
        if self._on_run_status is not None:
            self._on_run_status(data)

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="agent-event-flusher")

    async def _flush_loop(self) -> None:
        """Store emitted events in batches while runs are active (replay and live tail read them)."""
        while True:
            await asyncio.sleep(EVENT_FLUSH_INTERVAL_S)
            for handle in list(self._by_run.values()):
                await self._flush(handle)
                await self._watchdog(handle)
            if not self._by_run:
                return

    async def _watchdog(self, handle: RunHandle) -> None:
        """A run still registered whose task is gone (finished without ending the run) or that
        never got one within ``ORPHAN_AFTER_S`` is ended: ``RUN_ERROR``, recorded, the thread freed."""
        from ag_ui.core import RunErrorEvent

        task = handle.task
        orphan = task.done() if task is not None else time.monotonic() - handle.created > ORPHAN_AFTER_S
        if not orphan or handle.done.is_set():
            return
        log.error("run left registered without a task; ending it", extra={"run_id": handle.run_id})
        handle.emit(RunErrorEvent(message="the run stopped unexpectedly; see the sidecar log", code="internal"))
        await self._flush(handle)
        with contextlib.suppress(Exception):
            await self.history.finish_run(handle.run_id, "error", thread_id=handle.thread_id,
                                          error=("internal", "the run stopped unexpectedly"))
        self._forget(handle)
        handle.done.set()
        for q in list(handle.subscribers):
            q.put_nowait(None)

    async def _flush(self, handle: RunHandle) -> None:
        if handle.pending_events:
            batch, handle.pending_events = handle.pending_events, []
            try:
                await self.history.append_events(batch)
            except Exception:
                handle.pending_events[:0] = batch  # try again with the next batch
                log.exception("storing run events failed")
                return
            handle.flushed.set()
            handle.flushed = asyncio.Event()

    # --- the run ------------------------------------------------------------------------------

    async def _plan(self, run_input: RunAgentInput) -> _Plan:
        """Check what the run is to do before its stream starts, so mistakes are HTTP errors:
        a resume needs the thread's pending confirmation (409 ``nothing_to_resume``, 422
        ``unknown_interrupt``); a new message is refused while one is pending (409
        ``interrupt_pending``: answer it with ``resume`` first) and must be a user message the
        thread has not seen (422 ``no_input``)."""
        runs = await self.history.runs(run_input.thread_id)
        last = runs[-1] if runs else None
        pending = last if last is not None and last.status == "interrupted" and last.interrupt else None
        if run_input.resume:
            if pending is None or pending.interrupt is None:
                raise Conflict("nothing to resume: the thread has no pending confirmation", code="nothing_to_resume")
            known_ids = {c["id"] for c in pending.interrupt["toolCalls"]}
            unknown = {r.interrupt_id for r in run_input.resume} - known_ids
            if unknown:
                raise ValidationFailed(f"unknown interrupt id(s): {', '.join(sorted(unknown))}", code="unknown_interrupt",
                                       detail=[{"field": "resume", "message": f"pending: {sorted(known_ids)}", "type": "unknown_interrupt"}])
            return _Plan(pending=pending.interrupt, fresh=[])
        if pending is not None and pending.interrupt is not None:
            raise Conflict("the thread is waiting for a confirmation; answer it with resume first",
                           code="interrupt_pending",
                           detail={"runId": pending.id, "interrupts": [c["id"] for c in pending.interrupt["toolCalls"]]})
        known = {m.id for m in await self.history.messages(run_input.thread_id)}
        fresh = [m for m in run_input.messages if m.id not in known and m.role in ("user", "assistant")]
        if not fresh or fresh[-1].role != "user":
            raise ValidationFailed("the run input has no new user message", code="no_input",
                                   detail=[{"field": "messages", "message": "add a new user message", "type": "no_input"}])
        return _Plan(pending=None, fresh=fresh)

    def _inputs(self, run_input: RunAgentInput, plan: _Plan) -> tuple[Any, list[StoredMessage]]:
        """What to feed the agent: the resume decision, or the messages it has not seen yet."""
        from agentscope.event import ConfirmResult, UserConfirmResultEvent
        from agentscope.message import AssistantMsg, ToolCallBlock, UserMsg

        if plan.pending is not None:
            decisions = {r.interrupt_id: r for r in run_input.resume or []}
            results = []
            for call in plan.pending["toolCalls"]:
                entry = decisions.get(call["id"])
                payload = entry.payload if entry is not None else None
                approved = bool(entry is not None and entry.status == "resolved"
                                and (payload is True or (isinstance(payload, dict) and payload.get("approved") is True)))
                results.append(ConfirmResult(confirmed=approved, tool_call=ToolCallBlock.model_validate(call)))
            return UserConfirmResultEvent(reply_id=plan.pending["replyId"], confirm_results=results), []
        msgs = [UserMsg("user", _text_of(m), id=m.id) if m.role == "user" else AssistantMsg("assistant", _text_of(m), id=m.id)
                for m in plan.fresh]
        now = clock.now_ms()
        stored = [StoredMessage(id=m.id, run_id=run_input.run_id, role=m.role,
                                message=m.model_dump(mode="json", by_alias=True, exclude_none=True), created_at=now)
                  for m in plan.fresh]
        return msgs, stored

    def _build_agent(self, settings: Any, api_key: str | None, state: Any, mode: str, domain: str | None,
                     scope_id: str | None, memory: dict[str, str], acct: _Accounting,
                     on_changes: Callable[[list[ChangeEntry]], None], recall: str = "") -> Any:
        from agentscope.agent import Agent, InjectionConfig, ModelConfig, ReActConfig
        from agentscope.permission import PermissionBehavior, PermissionDecision
        from agentscope.tool import FunctionTool, Toolkit

        from sidecar.agent.model import LiteLLMChatModel
        from sidecar.agent.tools import DESTRUCTIVE_TOOLS, TOOL_NAMES, MemoryTools, StoreTools

        model = LiteLLMChatModel(settings, api_key, on_call_end=acct.stats.append)
        tools = StoreTools(Repository(self.store, on_commit=on_changes))
        allow = PermissionDecision(behavior=PermissionBehavior.ALLOW, message="safe tool on the local store")
        names = DOMAIN_TOOLS[domain] if domain else TOOL_NAMES
        # Destructive tools get no permission (AgentScope's default: ASK the user); the others
        # are allowed. Not concurrency-safe, so mutations land in the change log in call order.
        callables: list[tuple[str, Any]] = [(n, getattr(tools, n)) for n in names]
        callables.append(("update_core_memory", MemoryTools(self.history).update_core_memory))
        extra = dict(t for ext in self.extensions for t in ext.tools())
        callables = [(n, fn) for n, fn in callables if n not in extra] + list(extra.items())
        fns: list[Any] = [FunctionTool(fn, name=n, is_concurrency_safe=False,
                                       permission=None if n in DESTRUCTIVE_TOOLS else allow) for n, fn in callables]
        tz = getattr(tools.tz, "key", "UTC")
        return Agent(
            name="assistant",
            system_prompt=system_prompt(mode, domain=domain, entity_id=scope_id, memory=memory, recall=recall),
            model=model,
            toolkit=Toolkit(tools=fns),
            state=state,
            model_config=ModelConfig(max_retries=0),
            react_config=ReActConfig(max_iters=MAX_ITERS, interruption_raise_cancelled_error=True),
            injection_config=InjectionConfig(timezone=tz, emit_hint_event=False),
        )

    async def _run(self, handle: RunHandle, run_input: RunAgentInput, plan: _Plan, mode: str, domain: str | None,
                   scope_id: str | None, settings: Any) -> None:
        from ag_ui.core import PROTOCOL_VERSION, CustomEvent, RunStartedEvent

        from sidecar.agent.translate import AguiTranslator

        thread_id, run_id = handle.thread_id, handle.run_id
        started = clock.now_ms()
        # ``input`` lets a client replaying the thread's events rebuild the user messages too.
        handle.emit(RunStartedEvent(thread_id=thread_id, run_id=run_id, protocol_version=PROTOCOL_VERSION,
                                    input=run_input))
        if domain:
            handle.emit(CustomEvent(name="domain", value=domain))
        mutations: list[ChangeEntry] = []
        acct = _Accounting(model=settings.model if settings else None)
        translator = AguiTranslator(message_id_prefix=run_id)
        status: RunStatus = "finished"
        error: tuple[str, str] | None = None
        interrupt: dict[str, Any] | None = None
        user_messages: list[StoredMessage] = []
        state: Any = None
        try:
            if settings is None:
                raise model_not_configured()
            await load_agent_stack()
            from agentscope.event import EventType, RequireUserConfirmEvent
            from agentscope.state import AgentState

            api_key = await self.secrets.get(settings.api_key_secret) if settings.api_key_secret else None
            saved = await self.history.state(thread_id)
            state = AgentState.model_validate(saved) if saved else AgentState(session_id=thread_id)
            inputs, user_messages = self._inputs(run_input, plan)
            core, recall = await self._memory(thread_id, plan)
            agent = self._build_agent(settings, api_key, state, mode, domain, scope_id,
                                      core, acct, mutations.extend, recall)
            async for ev in agent.reply_stream(inputs):
                if isinstance(ev, RequireUserConfirmEvent):
                    status = "interrupted"
                    interrupt = {"replyId": ev.reply_id,
                                 "toolCalls": [c.model_dump(mode="json") for c in ev.tool_calls]}
                elif ev.type == EventType.REPLY_END and str(getattr(ev.finished_reason, "value", ev.finished_reason)) == "interrupted":
                    status = "cancelled"
                for out in translator.translate(ev):
                    handle.emit(out)
                if ev.type == EventType.MODEL_CALL_END:
                    self._account(acct, translator.turn_message_ids)
        except asyncio.CancelledError:
            status = "cancelled"
        except SidecarError as exc:
            status, error = "error", (exc.code, exc.message)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, str) and code.startswith("model_"):
                status, error = "error", (code, getattr(exc, "message", str(exc)))
            else:
                log.exception("agent run failed", extra={"run_id": run_id})
                status, error = "error", ("internal", f"the run failed: {type(exc).__name__}; see the sidecar log")
        finally:
            await self._finish(handle, translator, status, error, interrupt, mutations, acct, started,
                               user_messages, state)

    async def _memory(self, thread_id: str, plan: _Plan) -> tuple[dict[str, str], str]:
        """Core memory and recalled memory for the run's system prompt (from the extensions)."""
        text = "\n".join(_text_of(m) for m in plan.fresh if m.role == "user")
        core: dict[str, str] | None = None
        recall = []
        for ext in self.extensions:
            try:
                core = core if core is not None else await ext.core()
                recall.append(await ext.before_run(thread_id, text))
            except Exception:  # memory is a help: a failure must not fail the run
                log.exception("memory for the run failed", extra={"thread_id": thread_id})
        return (core if core is not None else await self.history.core_memory()), "\n\n".join(r for r in recall if r)

    async def _after_extensions(self, thread_id: str, run_id: str, status: str, user_messages: list[StoredMessage],
                                translator: Any, changed: int) -> None:
        user_text = "\n".join(str(m.message.get("content") or "") for m in user_messages if m.role == "user")
        answer = "\n".join(m.content for m in translator.messages
                            if m.role == "assistant" and isinstance(getattr(m, "content", None), str))
        for ext in self.extensions:
            try:
                await ext.after_run(thread_id, run_id, status, user_text, answer, changed)
            except Exception:
                log.exception("storing the run's memory failed", extra={"run_id": run_id})

    def _account(self, acct: _Accounting, message_ids: list[str]) -> None:
        # Attribute the model call that just ended to the messages it produced.
        if not acct.stats:
            return
        stats = acct.stats[-1]
        acct.input_tokens += stats.input_tokens
        acct.output_tokens += stats.output_tokens
        acct.cost += stats.cost_usd
        acct.latency_ms += stats.latency_ms
        if message_ids:
            acct.per_message[message_ids[-1]] = stats

    async def _finish(self, handle: RunHandle, translator: Any, status: RunStatus, error: tuple[str, str] | None,
                      interrupt: dict[str, Any] | None, mutations: list[ChangeEntry], acct: _Accounting,
                      started: int, user_messages: list[StoredMessage], state: Any) -> None:
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

        thread_id, run_id = handle.thread_id, handle.run_id
        if error is not None:  # provider errors may quote a key: never stored or sent as is
            error = (error[0], scrub(error[1]))
        try:
            for out in translator.close():
                handle.emit(out)
            handle.emit(CustomEvent(name="mutations", value=[
                {"seq": m.seq, "entity": m.entity, "id": m.entity_id, "op": m.op, "fields": m.fields} for m in mutations
            ]))
            usage = [TokenUsage(provider=(acct.model or "").split("/")[0] or None, model=acct.model,
                                input_tokens=acct.input_tokens, output_tokens=acct.output_tokens,
                                total_tokens=acct.input_tokens + acct.output_tokens)] if acct.stats else None
            if status == "error" and error is not None:
                handle.emit(RunErrorEvent(message=error[1], code=error[0], usage=usage))
            elif status == "interrupted" and interrupt is not None:
                interrupts = [Interrupt(id=c["id"], reason="tool_approval", tool_call_id=c["id"],
                                        message=f"Allow {c.get('name')}?",
                                        metadata={"toolName": c.get("name"), "arguments": c.get("input")})
                              for c in interrupt["toolCalls"]]
                handle.emit(RunFinishedEvent(thread_id=thread_id, run_id=run_id,
                                             outcome=RunFinishedInterruptOutcome(type="interrupt", interrupts=interrupts), usage=usage))
            elif status == "cancelled":
                handle.emit(RunFinishedEvent(thread_id=thread_id, run_id=run_id,
                                             outcome=RunFinishedCancelledOutcome(type="cancelled"), usage=usage))
            else:
                handle.emit(RunFinishedEvent(thread_id=thread_id, run_id=run_id,
                                             outcome=RunFinishedSuccessOutcome(type="success"), usage=usage))
            per_message = acct.per_message
            messages = list(user_messages)
            for m in translator.messages:
                s = per_message.get(m.id)
                messages.append(StoredMessage(
                    id=m.id, run_id=run_id, role=m.role, message=m.model_dump(mode="json", by_alias=True, exclude_none=True),
                    model=acct.model if s else None, input_tokens=s.input_tokens if s else None,
                    output_tokens=s.output_tokens if s else None, cost=s.cost_usd if s else None,
                    latency_ms=s.latency_ms if s else None, created_at=clock.now_ms()))
            batch, handle.pending_events = handle.pending_events, []
            await asyncio.shield(self.history.finish_run(
                run_id, status, events=batch, messages=messages, thread_id=thread_id,
                state=state.model_dump(mode="json") if state is not None else None,
                usage={"input_tokens": acct.input_tokens, "output_tokens": acct.output_tokens, "cost": acct.cost,
                       "latency_ms": clock.now_ms() - started},
                error=error, interrupt=interrupt))
            if self.extensions:
                await asyncio.shield(self._after_extensions(thread_id, run_id, status, user_messages, translator,
                                                            len(mutations)))
        except Exception:
            log.exception("finishing the run failed", extra={"run_id": run_id})
        finally:
            self._forget(handle)
            handle.done.set()
            handle.flushed.set()
            for q in handle.subscribers:
                q.put_nowait(None)
            self._status({"runId": run_id, "threadId": thread_id, "status": status})


def new_run_input(thread_id: str, text: str | None, *, run_id: str | None = None, mode: str = "home",
                  resume: list[dict[str, Any]] | None = None) -> RunAgentInput:
    """A ``RunAgentInput`` with one new user message, or (``text=None``) a ``resume`` decision."""
    from ag_ui.core import RunAgentInput

    body: dict[str, Any] = {
        "threadId": thread_id, "runId": run_id or str(uuid.uuid4()), "state": None, "tools": [], "context": [],
        "forwardedProps": {"mode": mode},
        "messages": [{"id": str(uuid.uuid4()), "role": "user", "content": text}] if text is not None else [],
    }
    if resume is not None:
        body["resume"] = resume
    return RunAgentInput.model_validate(body)
