"""What every route takes and answers, as models: the source of ``schemas/`` (OpenAPI 3.1 and
JSON Schema files) and of the tests that validate real responses against them.

Every route registered on the app has exactly one :class:`Operation` here (a test enforces it),
so a new route cannot ship undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ag_ui.core import Interrupt, ResumeEntry, RunAgentInput
from pydantic import BaseModel, Field

from sidecar.agent.blocks import BlockEvent
from sidecar.agent.history import RunRecord, ThreadSummary
from sidecar.agent.settings import AgentPrompts, ModelSettings
from sidecar.api.agent import EventsAfterQuery, ThreadsQuery
from sidecar.api.events import ChangeEvent, EventsQuery
from sidecar.api.search import SearchQuery
from sidecar.api.secrets import SecretBody
from sidecar.basemodel import Model
from sidecar.ingest.journey import JourneyMessage, JourneyStart, JourneyTurn
from sidecar.ingest.queue import FileQuery, FileRow
from sidecar.ingest.runs import Run, RunQuery
from sidecar.ingest.watches import Watch, WatchCreate, WatchPatch, WatchQuery
from sidecar.lifecycle import ErrorLine, ReadyLine
from sidecar.readiness import ComponentStatus
from sidecar.search.embedders import EmbedderSettings
from sidecar.search.memory import MemoryItem, MemoryPatch, MemoryQuery
from sidecar.store import models as m
from sidecar.store.models import ApiModel
from sidecar.sync.api import KeyImport, KeyImported, RecoveryKey, RestoreBody, SyncSettingsView
from sidecar.sync.models import BackupResult, RestoreResult, SyncStatus
from sidecar.sync.settings import SyncSettings

T = TypeVar("T")


class ErrorDetail(Model):
    code: str = Field(description="stable machine code, e.g. validation_failed, not_found, run_active")
    message: str
    detail: Any = Field(default=None, description="for 422: [{field, message, type}]; else code-specific")


class ErrorBody(Model):
    """Every error response (DESIGN §2)."""

    error: ErrorDetail


class Page(Model, Generic[T]):
    """A page of a list."""

    items: list[T]
    total: int
    limit: int
    offset: int


class FilePage(Page[FileRow]):
    counts: dict[str, int] = Field(description="files per status for the same watchId filter")


class Deleted(Model):
    deleted: str


class Health(Model):
    status: Literal["ok"]
    version: str


class Ready(Model):
    ready: bool
    components: dict[str, ComponentStatus]


class SecretStored(Model):
    name: str
    stored: bool


class SecretDeleted(Model):
    name: str
    deleted: bool


class CancelResult(ApiModel):
    run_id: str
    cancelled: bool


class ThreadHistory(ApiModel):
    thread_id: str
    messages: list[dict[str, Any]] = Field(description="AG-UI messages; assistant ones carry usage")
    runs: list[RunRecord]


class ModelSettingsView(ApiModel):
    configured: bool
    settings: ModelSettings | None
    api_key_set: bool


class SearchSource(Model):
    path: str
    start: int = Field(description="character offset into the file's text")
    end: int


class SearchItem(ApiModel):
    kind: Literal["note", "task", "timeline", "project", "comment", "file"]
    entity_id: str
    title: str
    snippet: str
    highlights: list[list[int]] = Field(description="[start, end] of matched words inside snippet")
    score: float
    project_id: str | None
    date: int | None
    source: SearchSource | None


class SearchResults(Model):
    items: list[SearchItem]
    mode: Literal["hybrid", "keyword", "vector"]


class EmbedderActive(Model):
    table: str | None
    embedder: str | None
    dim: int | None


class EmbedderView(Model):
    settings: EmbedderSettings
    active: EmbedderActive
    building: str | None = Field(description="table being re-embedded, swapped in when done")
    changing: bool = Field(description="an embedder change is loading or re-embedding")
    problem: str | None


class MemoryList(Model):
    items: list[MemoryItem]


class DeletedCount(Model):
    deleted: int


class IndexProgress(Model):
    """Transient ``index.progress`` event on ``/v1/events``."""

    table: str
    seq: int
    building: bool
    done: int
    total: int
    swapped: bool


# --- events that are not responses ------------------------------------------------------------


class MutationEntry(Model):
    """One change-log entry caused by a run (value of the CUSTOM ``mutations`` event)."""

    seq: int
    entity: str
    id: str
    op: Literal["insert", "update", "delete"]
    fields: dict[str, Any]


class MutationsEvent(Model):
    """AG-UI ``CUSTOM`` event sent before every run's terminal event."""

    type: Literal["CUSTOM"]
    name: Literal["mutations"]
    value: list[MutationEntry]


class DomainEvent(Model):
    """AG-UI ``CUSTOM`` event right after ``RUN_STARTED`` in floating mode."""

    type: Literal["CUSTOM"]
    name: Literal["domain"]
    value: Literal["tasks", "notes", "projects", "timelines"]


class ResumeDecision(Model):
    """``RunAgentInput.resume[].payload`` for a tool approval (status ``resolved``)."""

    approved: bool


class IngestProgress(ApiModel):
    """Transient ``ingest.progress`` event on ``/v1/events``."""

    watch_id: str
    run_id: str
    done: int
    total: int


class SyncStatusEvent(Model):
    """Transient ``sync.status`` event on ``/v1/events`` (see ``GET /v1/sync`` for the details)."""

    state: Literal["disabled", "offline", "online", "degraded"]
    detail: str


class RunStatusEvent(ApiModel):
    """Transient ``run.status`` event on ``/v1/events``."""

    run_id: str
    thread_id: str
    status: str


@dataclass(frozen=True)
class Operation:
    """One route: its request models and its success response."""

    method: str
    path: str
    summary: str
    response: Any = None
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: Server-Sent Events: the models the events' ``data`` can take
    events: tuple[type[BaseModel], ...] = ()


def _crud(base: str, label: str, create: type[BaseModel], patch: type[BaseModel], read: type[BaseModel],
          query: type[BaseModel]) -> list[Operation]:
    item = base + "/{id}"
    return [
        Operation("GET", base, f"List {label}s", Page[read], query=query),  # type: ignore[valid-type]
        Operation("POST", base, f"Create a {label}", read, 201, body=create),
        Operation("GET", item, f"Get a {label}", read),
        Operation("PATCH", item, f"Change a {label}", read, body=patch),
        Operation("DELETE", item, f"Delete a {label}", Deleted),
    ]


class _CommentCreateBody(ApiModel):
    """``POST /v1/tasks/{taskId}/comments`` body (the task comes from the path)."""

    author: str = Field(min_length=1, max_length=500)
    content: str = Field(min_length=1, max_length=100_000)


OPERATIONS: list[Operation] = [
    Operation("GET", "/v1/health", "Liveness", Health),
    Operation("GET", "/v1/ready", "Readiness of each component", Ready),
    Operation("GET", "/v1/events", "Notification stream (SSE): change and transient events", query=EventsQuery,
              events=(ChangeEvent, IngestProgress, RunStatusEvent, Run, IndexProgress, SyncStatusEvent)),
    *_crud("/v1/tasks", "task", m.TaskCreate, m.TaskPatch, m.Task, m.TaskQuery),
    *_crud("/v1/tasks/{taskId}/comments", "task comment", _CommentCreateBody, m.TaskCommentPatch, m.TaskComment,
           m.TaskCommentQuery),
    *_crud("/v1/projects", "project", m.ProjectCreate, m.ProjectPatch, m.Project, m.ProjectQuery),
    *_crud("/v1/timelines", "timeline", m.TimelineCreate, m.TimelinePatch, m.Timeline, m.TimelineQuery),
    *_crud("/v1/notes", "note", m.NoteCreate, m.NotePatch, m.Note, m.NoteQuery),
    *_crud("/v1/clients", "client", m.ClientCreate, m.ClientPatch, m.Client, m.ClientQuery),
    Operation("PUT", "/v1/secrets/{name}", "Store a secret in the OS keyring (write-only)", SecretStored, body=SecretBody),
    Operation("DELETE", "/v1/secrets/{name}", "Remove a secret", SecretDeleted),
    Operation("POST", "/v1/agent/runs", "Run the agent (AG-UI 1.0 over SSE)", body=RunAgentInput,
              events=(MutationsEvent, DomainEvent, BlockEvent)),
    Operation("POST", "/v1/agent/runs/{runId}/cancel", "Cancel a run", CancelResult),
    Operation("GET", "/v1/agent/threads", "List agent threads", Page[ThreadSummary], query=ThreadsQuery),
    Operation("GET", "/v1/agent/threads/{threadId}/history", "A thread's messages and runs", ThreadHistory),
    Operation("GET", "/v1/agent/threads/{threadId}/events", "Replay a thread's AG-UI events, then the live tail (SSE)",
              query=EventsAfterQuery, events=(MutationsEvent, DomainEvent, BlockEvent)),
    Operation("GET", "/v1/settings/model", "Model settings", ModelSettingsView),
    Operation("PUT", "/v1/settings/model", "Set the model", ModelSettingsView, body=ModelSettings),
    Operation("GET", "/v1/settings/agent-prompts", "The user's own agent instructions", AgentPrompts),
    Operation("PUT", "/v1/settings/agent-prompts", "Set the user's own agent instructions (after the fixed rules)",
              AgentPrompts, body=AgentPrompts),
    Operation("GET", "/v1/watches", "List watches", Page[Watch], query=WatchQuery),
    Operation("POST", "/v1/watches", "Create a watch", Watch, 201, body=WatchCreate),
    Operation("GET", "/v1/watches/{id}", "Get a watch", Watch),
    Operation("PATCH", "/v1/watches/{id}", "Change a watch", Watch, body=WatchPatch),
    Operation("DELETE", "/v1/watches/{id}", "Delete a watch (extracted items stay)", Deleted),
    Operation("POST", "/v1/watches/{id}/run", "Run a watch now", Run, 202),
    Operation("GET", "/v1/watches/{id}/runs", "A watch's runs, newest first", Page[Run], query=RunQuery),
    Operation("POST", "/v1/watches/journey", "Start the setup journey (the model's first question)", JourneyTurn,
              201, body=JourneyStart),
    Operation("POST", "/v1/watches/journey/{sessionId}/messages",
              "Answer the journey's question (next question, or done with the promptTemplate)", JourneyTurn,
              body=JourneyMessage),
    Operation("GET", "/v1/ingest/files", "Per-file extraction status", FilePage, query=FileQuery),
    Operation("GET", "/v1/search", "Hybrid search (full text + vectors, reciprocal-rank fusion)", SearchResults,
              query=SearchQuery),
    Operation("GET", "/v1/settings/embedder", "Embedder settings and index state", EmbedderView),
    Operation("PUT", "/v1/settings/embedder", "Set the embedder (re-embeds, then swaps)", EmbedderView,
              body=EmbedderSettings),
    Operation("GET", "/v1/memory", "The agent's memory, decrypted", MemoryList, query=MemoryQuery),
    Operation("DELETE", "/v1/memory", "Forget everything", DeletedCount),
    Operation("PATCH", "/v1/memory/{id}", "Change a memory", MemoryItem, body=MemoryPatch),
    Operation("DELETE", "/v1/memory/{id}", "Forget a memory", Deleted),
    Operation("GET", "/v1/settings/sync", "Sync settings", SyncSettingsView),
    Operation("PUT", "/v1/settings/sync", "Set sync (enabling creates a sync key in the OS keyring)", SyncSettingsView,
              body=SyncSettings),
    Operation("GET", "/v1/sync", "Sync status", SyncStatus),
    Operation("POST", "/v1/sync/now", "Push and pull now", SyncStatus),
    Operation("POST", "/v1/sync/key/export", "The sync key as recovery words", RecoveryKey),
    Operation("POST", "/v1/sync/key/import", "Learn the sync key from recovery words", KeyImported, body=KeyImport),
    Operation("POST", "/v1/backup", "Back up now (cloud and/or the local backup folder)", BackupResult),
    Operation("POST", "/v1/backup/restore", "Restore the newest backup on a fresh data dir, then pull",
              RestoreResult, body=RestoreBody),
]

#: Stand-alone documents (not HTTP bodies) exported as JSON Schema files.
DOCUMENTS: dict[str, type[BaseModel]] = {
    "handshake.ready": ReadyLine,
    "handshake.error": ErrorLine,
    "error": ErrorBody,
    "events.change": ChangeEvent,
    "events.ingest-progress": IngestProgress,
    "events.ingest-run": Run,
    "events.run-status": RunStatusEvent,
    "events.index-progress": IndexProgress,
    "events.sync-status": SyncStatusEvent,
    "agui.custom.mutations": MutationsEvent,
    "agui.custom.domain": DomainEvent,
    "agui.custom.block": BlockEvent,
    "agui.interrupt": Interrupt,
    "agui.resume-entry": ResumeEntry,
    "agui.resume-decision": ResumeDecision,
    "agui.run-agent-input": RunAgentInput,
}

ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 503, 507)


def find(method: str, path: str) -> Operation | None:
    """The operation of a route template (``/v1/tasks/{id}``)."""
    return next((o for o in OPERATIONS if o.method == method and o.path == path), None)
