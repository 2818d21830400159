"""A run's state: its handle (task, subscribers, emitted events) and :class:`RunState`, the one
object the run's steps share (what it was asked, how it is going, how it ended)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sidecar import clock
from sidecar.agent.history import RunStatus, StoredMessage
from sidecar.agent.tools import ToolScope

if TYPE_CHECKING:  # ag_ui's models take ~0.1 s to build: imported where used, after start-up
    from ag_ui.core import BaseEvent, RunAgentInput

    from sidecar.agent.settings import ModelSettings
    from sidecar.agent.translate import AguiTranslator


@dataclass(frozen=True, slots=True)
class Emitted:
    """An emitted event and its SSE frame (``data: <json>\n\n``, by ag-ui's ``EventEncoder``),
    encoded once for the live stream and the stored replay alike."""

    event: BaseEvent
    sse: str

    @property
    def json(self) -> str:
        """The event's JSON (camelCase, no nulls)."""
        return self.sse[len("data: "):-2]


_ENCODER: Any = None


def _encode(ev: BaseEvent) -> str:
    global _ENCODER
    if _ENCODER is None:
        from ag_ui.encoder import EventEncoder

        _ENCODER = EventEncoder()
    return str(_ENCODER.encode(ev))


@dataclass
class RunHandle:
    """A run in progress: its task, live subscribers and not yet stored events."""

    run_id: str
    thread_id: str
    task: asyncio.Task[None] | None = None
    subscribers: set[asyncio.Queue[Emitted | None]] = field(default_factory=set)
    #: ``(thread_id, run_id, type, event JSON)`` not yet stored
    pending_events: list[tuple[str, str, str, str]] = field(default_factory=list)
    emitted: list[BaseEvent] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    flushed: asyncio.Event = field(default_factory=asyncio.Event)
    #: ``time.monotonic()`` when it was registered (the watchdog's clock)
    created: float = field(default_factory=time.monotonic)

    def subscribe(self) -> asyncio.Queue[Emitted | None]:
        """A queue receiving every event emitted from now on, then ``None`` at the end."""
        q: asyncio.Queue[Emitted | None] = asyncio.Queue()
        if self.done.is_set():
            q.put_nowait(None)
        self.subscribers.add(q)
        return q

    def emit(self, ev: BaseEvent) -> None:
        """Send ``ev`` to the live subscribers and queue it for storage (serialised once)."""
        self.emitted.append(ev)
        item = Emitted(ev, _encode(ev))
        self.pending_events.append((self.thread_id, self.run_id, str(ev.type.value), item.json))
        for q in self.subscribers:
            q.put_nowait(item)


@dataclass
class Plan:
    """What a run will feed the agent: the pending confirmation or client tool calls it answers
    (``pending``, the stored interrupt), or new messages (``fresh``)."""

    pending: dict[str, Any] | None
    fresh: list[Any]
    #: the thread had runs before (a resumed or continued thread: MESSAGES_SNAPSHOT first)
    resumed: bool = False


@dataclass
class Accounting:
    """Tokens, cost (US dollars) and latency (ms) of a run's model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency_ms: int = 0
    model: str | None = None
    #: ``ModelCallStats`` of each model call, in order
    stats: list[Any] = field(default_factory=list)
    #: message id → the stats of the model call that produced it
    per_message: dict[str, Any] = field(default_factory=dict)

    def account(self, message_ids: list[str]) -> None:
        """Attribute the model call that just ended to the messages it produced."""
        if not self.stats:
            return
        stats = self.stats[-1]
        self.input_tokens += stats.input_tokens
        self.output_tokens += stats.output_tokens
        self.cost += stats.cost_usd
        self.latency_ms += stats.latency_ms
        if message_ids:
            self.per_message[message_ids[-1]] = stats


@dataclass
class RunState:
    """Everything one run carries from start to finish.

    Set at start: ``handle``, ``run_input``, ``plan``, ``mode``, ``domain``/``scope_id`` (a
    floating run's scope), ``settings`` (``None``: no model configured). Filled while running:
    ``translator``, ``status``, ``error`` (``(code, message)``), ``interrupt`` (the stored
    pending confirmation or client tool calls), ``user_messages``, the AgentScope ``state``, the
    tools' ``scope`` (mutations, rows shown) and ``acct``.
    """

    handle: RunHandle
    run_input: RunAgentInput
    plan: Plan
    mode: str
    domain: str | None
    scope_id: str | None
    settings: ModelSettings | None
    translator: AguiTranslator
    started: int = field(default_factory=clock.now_ms)
    status: RunStatus = "finished"
    error: tuple[str, str] | None = None
    interrupt: dict[str, Any] | None = None
    user_messages: list[StoredMessage] = field(default_factory=list)
    state: Any = None
    scope: ToolScope = field(default_factory=ToolScope)
    acct: Accounting = field(default_factory=Accounting)

    @property
    def thread_id(self) -> str:
        return self.handle.thread_id

    @property
    def run_id(self) -> str:
        return self.handle.run_id
