"""Persistence of agent threads, runs, messages, emitted AG-UI events and per-thread agent state.

Agent bookkeeping is not domain data, so it does not go through the change log; it uses the
store's write transaction directly. Events are buffered and written in batches (every
``flush_interval_s`` or ``flush_every`` events, and always when a run ends) so that relaying
thousands of text deltas does not cost one durable commit each; the live tail of a running run
is served from memory (:class:`sidecar.agent.runs.RunHandle`), the replay from here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from sidecar import clock
from sidecar.store.db import Store
from sidecar.store.models import ApiModel

RunStatus = Literal["running", "finished", "cancelled", "interrupted", "error"]


class ThreadSummary(ApiModel):
    """A thread as listed by ``GET /v1/agent/threads``."""

    id: str
    title: str | None
    created_at: int
    updated_at: int
    last_run_id: str | None = None
    last_run_status: RunStatus | None = None


class StoredMessage(ApiModel):
    """One message of a thread's history (AG-UI message shape in ``message``)."""

    id: str
    run_id: str | None
    role: str
    message: dict[str, Any]
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    latency_ms: int | None = None
    created_at: int


class RunRecord(ApiModel):
    """One run's bookkeeping."""

    id: str
    thread_id: str
    status: RunStatus
    mode: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency_ms: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    interrupt: dict[str, Any] | None = None
    started_at: int
    finished_at: int | None = None


class StoredEvent(ApiModel):
    """An emitted AG-UI event as stored for replay (``event`` is its camelCase JSON)."""

    seq: int
    run_id: str
    type: str
    event: dict[str, Any]


class History:
    """Threads, runs, messages, events and agent state in SQLite."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start_run(self, run_id: str, thread_id: str, mode: str, model: str | None,
                        title: str | None) -> bool:
        """In one transaction: create the thread if new (``title``, its first user message,
        becomes its title) and record the run as ``running`` unless the thread already has a
        running run (one statement: the claim of the thread and of the run id is atomic).
        Returns False when the thread is taken. Raises sqlite3.IntegrityError for a reused run
        id (and nothing is written)."""
        now = clock.now_ms()
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO agent_threads (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at",
                (thread_id, (title or "")[:200] or None, now, now),
            )
            return await w.execute(
                "INSERT INTO agent_runs (id, thread_id, status, mode, model, started_at)"
                " SELECT ?, ?, 'running', ?, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM agent_runs WHERE thread_id = ? AND status = 'running')",
                (run_id, thread_id, mode, model, now, thread_id),
            ) == 1

    async def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        *,
        events: Sequence[tuple[str, str, str, str | dict[str, Any]]] = (),
        messages: Sequence[StoredMessage] = (),
        state: dict[str, Any] | None = None,
        thread_id: str | None = None,
        usage: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
        interrupt: dict[str, Any] | None = None,
    ) -> None:
        """Close a run in one transaction: remaining events, new messages, agent state, totals."""
        u = usage or {}
        now = clock.now_ms()
        async with self.store.write() as w:
            await self._insert_events(w, events)
            if messages:
                await w.executemany(
                    "INSERT OR IGNORE INTO agent_messages (id, thread_id, run_id, role, content, model, input_tokens,"
                    " output_tokens, cost, latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(m.id, thread_id, m.run_id, m.role, json.dumps(m.message, ensure_ascii=False), m.model,
                      m.input_tokens, m.output_tokens, m.cost, m.latency_ms, m.created_at) for m in messages],
                )
            await w.execute(
                "UPDATE agent_runs SET status = ?, finished_at = ?, input_tokens = ?, output_tokens = ?, cost = ?,"
                " latency_ms = ?, error_code = ?, error_message = ?, interrupt = ? WHERE id = ?",
                (
                    status,
                    now,
                    int(u.get("input_tokens", 0)),
                    int(u.get("output_tokens", 0)),
                    float(u.get("cost", 0.0)),
                    u.get("latency_ms"),
                    error[0] if error else None,
                    error[1] if error else None,
                    json.dumps(interrupt) if interrupt else None,
                    run_id,
                ),
            )
            if thread_id is not None:
                await w.execute(
                    "UPDATE agent_threads SET updated_at = ?"
                    + (", state = ?" if state is not None else "")
                    + " WHERE id = ?",
                    (now, json.dumps(state, ensure_ascii=False), thread_id)
                    if state is not None
                    else (now, thread_id),
                )

    @staticmethod
    async def _insert_events(w: Any, events: Any) -> None:
        """All the events in one statement run (one round trip to the writer's thread: one per
        event was hundreds per flush while a run's tool calls waited for the same thread)."""
        if not events:
            return
        now = clock.now_ms()
        await w.executemany(
            "INSERT INTO agent_events (thread_id, run_id, type, event, created_at) VALUES (?, ?, ?, ?, ?)",
            [(thread_id, run_id, type_, event if isinstance(event, str)
              else json.dumps(event, ensure_ascii=False, separators=(",", ":")), now)
             for thread_id, run_id, type_, event in events],
        )

    async def append_events(self, events: Sequence[tuple[str, str, str, str | dict[str, Any]]]) -> None:
        """Store a batch of ``(thread_id, run_id, type, event)`` in one transaction; ``event`` is
        its JSON text or a JSON object."""
        if events:
            async with self.store.write() as w:
                await self._insert_events(w, events)

    async def mark_interrupted_runs_on_start(self) -> int:
        """Runs left ``running`` by a crash become ``error``; returns how many."""
        async with self.store.write() as w:
            return await w.execute(
                "UPDATE agent_runs SET status = 'error', error_code = 'sidecar_restarted',"
                " error_message = 'the sidecar stopped during this run', finished_at = ? WHERE status = 'running'",
                (clock.now_ms(),),
            )

    async def thread_exists(self, thread_id: str) -> bool:
        return await self.store.fetchone("SELECT 1 FROM agent_threads WHERE id = ?", (thread_id,)) is not None

    async def list_threads(self, limit: int = 100, offset: int = 0) -> tuple[list[ThreadSummary], int]:
        """Threads, most recently active first, with their last run's status."""
        rows = await self.store.fetchall(
            "SELECT t.id, t.title, t.created_at, t.updated_at,"
            " (SELECT r.id FROM agent_runs r WHERE r.thread_id = t.id ORDER BY r.started_at DESC, r.rowid DESC LIMIT 1) AS last_run_id,"
            " (SELECT r.status FROM agent_runs r WHERE r.thread_id = t.id ORDER BY r.started_at DESC, r.rowid DESC LIMIT 1) AS last_run_status"
            " FROM agent_threads t ORDER BY t.updated_at DESC, t.id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        total = await self.store.fetchone("SELECT count(*) FROM agent_threads")
        return [ThreadSummary.model_validate(dict(r)) for r in rows], int(total[0]) if total else 0

    async def messages(self, thread_id: str) -> list[StoredMessage]:
        """The thread's messages in order."""
        rows = await self.store.fetchall(
            "SELECT * FROM agent_messages WHERE thread_id = ? ORDER BY seq", (thread_id,)
        )
        return [StoredMessage.from_db(r, json_columns=("content",), renamed={"content": "message"}) for r in rows]

    async def runs(self, thread_id: str) -> list[RunRecord]:
        """The thread's runs, oldest first."""
        rows = await self.store.fetchall(
            "SELECT * FROM agent_runs WHERE thread_id = ? ORDER BY started_at, rowid", (thread_id,)
        )
        out = []
        for r in rows:
            d = dict(r)
            d["interrupt"] = json.loads(d["interrupt"]) if d["interrupt"] else None
            out.append(RunRecord.model_validate(d))
        return out

    async def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        r = await self.store.fetchone("SELECT * FROM agent_runs WHERE id = ?", (run_id,))
        if r is None:
            return None
        d = dict(r)
        d["interrupt"] = json.loads(d["interrupt"]) if d["interrupt"] else None
        return RunRecord.model_validate(d)

    async def events_after(self, thread_id: str, after: int, limit: int = 5000) -> list[StoredEvent]:
        """Stored events of the thread with ``seq`` greater than ``after``, oldest first."""
        rows = await self.store.fetchall(
            "SELECT seq, run_id, type, event FROM agent_events WHERE thread_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (thread_id, after, limit),
        )
        return [StoredEvent(seq=r[0], run_id=r[1], type=r[2], event=json.loads(r[3])) for r in rows]

    async def state(self, thread_id: str) -> dict[str, Any] | None:
        """The agent state saved after the thread's last run."""
        row = await self.store.fetchone("SELECT state FROM agent_threads WHERE id = ?", (thread_id,))
        return json.loads(row[0]) if row and row[0] else None

    # --- settings and core memory ------------------------------------------------------------

    async def get_setting(self, key: str) -> Any:
        """A stored user setting (JSON value) or None."""
        row = await self.store.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(row[0]) if row else None

    async def put_setting(self, key: str, value: Any) -> None:
        """Store a user setting."""
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, json.dumps(value), clock.now_ms()),
            )

    async def core_memory(self) -> dict[str, str]:
        """Every plaintext core-memory entry (written before encrypted memory existed; the one
        ``update_core_memory`` tool writes encrypted memory, ``sidecar.search.memory``)."""
        rows = await self.store.fetchall("SELECT key, value FROM core_memory ORDER BY key")
        return {r[0]: r[1] for r in rows}
