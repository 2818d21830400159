"""The run lifecycle: one AgentScope agent run per AG-UI ``RunAgentInput`` (DESIGN §4).

A run executes in its own asyncio task, independent of the HTTP request that started it (a
client that disconnects does not stop it; ``POST …/cancel`` does). Its AG-UI events go to live
subscribers and, in batches, to the ``agent_events`` table for replay. Rules enforced here:

- one active run per thread (:class:`RunConflict`, HTTP 409 naming the running run);
- what a run is to do is checked before its stream starts (a resume needs a pending
  confirmation, client tool calls need their results, a new run needs a new user message);
- the run itself (:class:`~sidecar.agent.execute.RunExecution`): ``RUN_STARTED`` first (with
  ``protocolVersion``), in ``floating`` mode the ``CUSTOM`` ``domain`` event next, and at the end,
  always, the ``CUSTOM`` ``mutations`` event and exactly one ``RUN_FINISHED`` or ``RUN_ERROR``;
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
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sidecar.agent.execute import MAX_ITERS, RunExecution, RunFailure, model_not_configured, text_of
from sidecar.agent.history import History
from sidecar.agent.prompts import SCOPE_DOMAINS
from sidecar.agent.run_state import Emitted, Plan, RunHandle, RunState
from sidecar.agent.settings import ModelSettings
from sidecar.agent.stack import import_agent_stack, load_agent_stack, stack_loaded
from sidecar.agent.toolkit import AgentToolkits
from sidecar.background import ForegroundWork
from sidecar.errors import Conflict, NotFound, SidecarError, ValidationFailed
from sidecar.secrets import SecretStore
from sidecar.store.db import Store

if TYPE_CHECKING:  # ag_ui's models take ~0.1 s to build: imported where used, after start-up
    from ag_ui.core import RunAgentInput

__all__ = ["MAX_ITERS", "AgentService", "RunConflict", "RunFailure", "RunHandle", "import_agent_stack",
           "load_agent_stack", "model_not_configured", "new_run_input", "stack_loaded"]

log = logging.getLogger(__name__)

MODEL_SETTING_KEY = "model"
EVENT_FLUSH_INTERVAL_S = 0.1
#: A run registered this long without a task is ended by the watchdog (seconds).
ORPHAN_AFTER_S = 30.0


class RunConflict(Conflict):
    """409: the thread already has an active run (``detail.runId`` names it)."""

    code = "run_active"


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
        #: runs in progress, for background work that can wait (search indexing): a run's tool
        #: calls get the CPU
        self.foreground = ForegroundWork()
        #: parts that add to runs (search: memory in the context, the search tool, episodes
        #: stored after): ``tools()``, ``core()``, ``before_run(thread_id, text)``,
        #: ``after_run(thread_id, run_id, status, user_text, assistant_text, changed)``
        self.extensions: list[Any] = []
        #: each mode's tools, built once (:meth:`warm` or the first run)
        self.toolkits = AgentToolkits(store, self.extensions)

    async def warm(self) -> None:
        """Load the agent stack and build every mode's tools, so the first run pays for neither."""
        await load_agent_stack()
        await self.toolkits.ready()

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

    async def start(self, run_input: RunAgentInput) -> tuple[RunHandle, asyncio.Queue[Emitted | None]]:
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
        self.foreground.begin()
        try:
            if await self.history.run(run_id) is not None:
                raise Conflict(f"run id {run_id} was already used", code="run_exists")
            plan = await self._plan(run_input)
            queue = handle.subscribe()
            first_user = next((text_of(m) for m in run_input.messages if m.role == "user"), None)
            settings = await self.model_settings()
            if not await self.history.start_run(run_id, thread_id, mode, settings.model if settings else None,
                                                first_user):
                raise RunConflict(f"thread {thread_id} already has an active run")
        except sqlite3.IntegrityError:
            self._forget(handle)
            raise Conflict(f"run id {run_id} was already used", code="run_exists") from None
        except BaseException:
            self._forget(handle)
            raise
        from sidecar.agent.blocks import parse_block
        from sidecar.agent.translate import AguiTranslator

        rs = RunState(handle=handle, run_input=run_input, plan=plan, mode=mode, domain=domain, scope_id=scope_id,
                      settings=settings, translator=AguiTranslator(message_id_prefix=run_id))
        rs.acct.model = settings.model if settings else None
        if mode == "home":  # output blocks; entity_ref rows from what this run's tools showed
            rs.translator = AguiTranslator(message_id_prefix=run_id, blocks=lambda raw: parse_block(raw, rs.scope.shown_row))
        handle.task = asyncio.get_running_loop().create_task(RunExecution(self, rs).run(), name=f"agent-run-{run_id}")
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

    def ended(self, rs: RunState) -> None:
        """Called last by a run, however it ended: the thread is free, subscribers are told."""
        handle = rs.handle
        self._forget(handle)
        handle.done.set()
        handle.flushed.set()
        for q in handle.subscribers:
            q.put_nowait(None)
        self._status({"runId": rs.run_id, "threadId": rs.thread_id, "status": rs.status})

    def _forget(self, handle: RunHandle) -> None:
        if self._by_thread.get(handle.thread_id) is handle:
            del self._by_thread[handle.thread_id]
        if self._by_run.get(handle.run_id) is handle:
            del self._by_run[handle.run_id]
            self.foreground.end()

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

    async def _plan(self, run_input: RunAgentInput) -> Plan:
        """Check what the run is to do before its stream starts, so mistakes are HTTP errors:
        a resume needs the thread's pending confirmation (409 ``nothing_to_resume``, 422
        ``unknown_interrupt``); a new message is refused while one is pending (409
        ``interrupt_pending``: answer it with ``resume`` first) and must be a user message the
        thread has not seen (422 ``no_input``)."""
        runs = await self.history.runs(run_input.thread_id)
        last = runs[-1] if runs else None
        if last is not None and last.interrupt and last.interrupt.get("kind") == "client_tools":
            return await self._plan_client_results(run_input, last.interrupt)
        pending = last if last is not None and last.status == "interrupted" and last.interrupt else None
        if run_input.resume:
            if pending is None or pending.interrupt is None:
                raise Conflict("nothing to resume: the thread has no pending confirmation", code="nothing_to_resume")
            known_ids = {c["id"] for c in pending.interrupt["toolCalls"]}
            unknown = {r.interrupt_id for r in run_input.resume} - known_ids
            if unknown:
                raise ValidationFailed(f"unknown interrupt id(s): {', '.join(sorted(unknown))}", code="unknown_interrupt",
                                       detail=[{"field": "resume", "message": f"pending: {sorted(known_ids)}", "type": "unknown_interrupt"}])
            return Plan(pending=pending.interrupt, fresh=[], resumed=True)
        if pending is not None and pending.interrupt is not None:
            raise Conflict("the thread is waiting for a confirmation; answer it with resume first",
                           code="interrupt_pending",
                           detail={"runId": pending.id, "interrupts": [c["id"] for c in pending.interrupt["toolCalls"]]})
        known = {m.id for m in await self.history.messages(run_input.thread_id)}
        fresh = [m for m in run_input.messages if m.id not in known and m.role in ("user", "assistant")]
        if not fresh or fresh[-1].role != "user":
            raise ValidationFailed("the run input has no new user message", code="no_input",
                                   detail=[{"field": "messages", "message": "add a new user message", "type": "no_input"}])
        return Plan(pending=None, fresh=fresh, resumed=bool(runs))

    async def _plan_client_results(self, run_input: RunAgentInput, pending: dict[str, Any]) -> Plan:
        """The run after one that ended on client tool calls must carry a ``tool`` message with
        the result of each (422 ``tool_results_missing`` names the missing ones)."""
        known = {m.id for m in await self.history.messages(run_input.thread_id)}
        fresh = [m for m in run_input.messages if m.id not in known and m.role in ("user", "assistant", "tool")]
        answered = {m.tool_call_id for m in fresh if m.role == "tool"}
        missing = [c["id"] for c in pending["toolCalls"] if c["id"] not in answered]
        if missing:
            raise ValidationFailed("the thread waits for the results of client tool calls",
                                   code="tool_results_missing",
                                   detail=[{"field": "messages", "message": f"add a tool message for {i}",
                                            "type": "tool_results_missing"} for i in missing])
        return Plan(pending=pending, fresh=fresh, resumed=True)


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
