"""Domain models: the single definition of each entity's API bodies (DESIGN §3).

Field names are snake_case in Python and SQL and camelCase on the wire (the shell's Drizzle
schema), via the alias generator. Ids are UUID strings; times are Unix milliseconds.
``*Create`` bodies are what a client may send to create, ``*Patch`` what it may change
(every field optional; an omitted field is left alone, an explicit ``null`` clears it where
the column allows), and the plain model is what the API returns.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from sidecar.basemodel import Model

TaskStatus = Literal["todo", "in_progress", "done"]
TaskPriority = Literal["high", "medium", "low"]
ProjectStatus = Literal["active", "archived"]
SortOrder = Literal["asc", "desc"]

#: Non-empty, stripped short text (names and titles), at most 500 characters.
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
#: Free text (descriptions, Markdown content, comments), at most 1 MB of characters.
LongText = Annotated[str, StringConstraints(max_length=1_000_000)]
#: An id as the API accepts it: a UUID-shaped or otherwise short opaque string.
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
#: Unix milliseconds, within years 1970..9999.
EpochMs = Annotated[int, Field(ge=0, le=253_402_300_799_999)]
#: Largest SQLite integer (signed 64-bit): bound of every offset and sequence number a client sends.
MAX_INT64 = (1 << 63) - 1
#: A list offset (rows to skip).
Offset = Annotated[int, Field(ge=0, le=MAX_INT64)]
#: A sequence number (change log ``seq``, stored event ``seq``) a client resumes after.
Seq = Annotated[int, Field(ge=0, le=MAX_INT64)]


class ApiModel(Model):
    """Base of every API body: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_max_length=1_000_000,
    )


class Row(ApiModel):
    """Base of stored entities as returned by the API."""

    model_config = ConfigDict(extra="ignore")
    id: str
    created_at: int


# --- clients ---------------------------------------------------------------------------------


class ClientCreate(ApiModel):
    name: Title
    industry: Title | None = None
    parent_id: Id | None = None


class ClientPatch(ApiModel):
    name: Title | None = None
    industry: Title | None = None
    parent_id: Id | None = None


class Client(Row):
    parent_id: str | None
    name: str
    industry: str | None
    updated_at: int


# --- projects --------------------------------------------------------------------------------


class ProjectCreate(ApiModel):
    name: Title
    client_id: Id | None = None
    status: ProjectStatus = "active"
    ai_summary: LongText | None = None


class ProjectPatch(ApiModel):
    name: Title | None = None
    client_id: Id | None = None
    status: ProjectStatus | None = None
    ai_summary: LongText | None = None


class Project(Row):
    client_id: str | None
    name: str
    status: ProjectStatus
    ai_summary: str | None
    updated_at: int


# --- tasks -----------------------------------------------------------------------------------


class TaskCreate(ApiModel):
    title: Title
    description: LongText | None = None
    status: TaskStatus = "todo"
    priority: TaskPriority = "medium"
    assignee: list[Title] = Field(default_factory=list, max_length=100)
    due_date: EpochMs | None = None
    project_id: Id | None = None
    is_ai_suggested: bool = False
    is_approved: bool = True


class TaskPatch(ApiModel):
    title: Title | None = None
    description: LongText | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    assignee: list[Title] | None = Field(default=None, max_length=100)
    due_date: EpochMs | None = None
    project_id: Id | None = None
    is_approved: bool | None = None


class Task(Row):
    project_id: str | None
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    assignee: list[str]
    due_date: int | None
    is_ai_suggested: bool
    is_approved: bool
    updated_at: int


# --- timelines (milestones) ------------------------------------------------------------------


class TimelineCreate(ApiModel):
    project_id: Id
    title: Title
    date: EpochMs
    is_ai_suggested: bool = False
    is_approved: bool = True


class TimelinePatch(ApiModel):
    project_id: Id | None = None
    title: Title | None = None
    date: EpochMs | None = None
    is_approved: bool | None = None


class Timeline(Row):
    project_id: str
    title: str
    date: int
    is_ai_suggested: bool
    is_approved: bool
    updated_at: int


# --- notes -----------------------------------------------------------------------------------


class NoteCreate(ApiModel):
    title: Title
    content: LongText = ""
    project_id: Id | None = None


class NotePatch(ApiModel):
    title: Title | None = None
    content: LongText | None = None
    project_id: Id | None = None


class Note(Row):
    project_id: str | None
    title: str
    content: str
    updated_at: int


# --- task comments ---------------------------------------------------------------------------


class TaskCommentCreate(ApiModel):
    task_id: Id
    author: Title
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]


class TaskCommentPatch(ApiModel):
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]


class TaskComment(Row):
    task_id: str
    author: str
    content: str


# --- list queries ----------------------------------------------------------------------------


class ListQuery(ApiModel):
    """Common list parameters. Filters named ``xFrom``/``xTo`` are inclusive ranges on ``x``;
    ``q`` is a case-insensitive substring search over the resource's text columns."""

    #: query fields that are not column filters
    CONTROL: ClassVar[frozenset[str]] = frozenset({"order_by", "order", "limit", "offset", "q"})

    order: SortOrder = "desc"
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: Offset = 0
    q: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] | None = None


class TaskQuery(ListQuery):
    order_by: Literal["createdAt", "updatedAt", "dueDate", "priority", "title", "status"] = "createdAt"
    project_id: Id | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    due_date_from: EpochMs | None = Field(default=None, alias="dueFrom")
    due_date_to: EpochMs | None = Field(default=None, alias="dueTo")
    is_ai_suggested: bool | None = None
    is_approved: bool | None = None


class ProjectQuery(ListQuery):
    order_by: Literal["createdAt", "updatedAt", "name"] = "createdAt"
    client_id: Id | None = None
    status: ProjectStatus | None = None


class TimelineQuery(ListQuery):
    order_by: Literal["createdAt", "updatedAt", "date", "title"] = "date"
    order: SortOrder = "asc"
    project_id: Id | None = None
    date_from: EpochMs | None = None
    date_to: EpochMs | None = None
    is_ai_suggested: bool | None = None
    is_approved: bool | None = None


class NoteQuery(ListQuery):
    order_by: Literal["createdAt", "updatedAt", "title"] = "updatedAt"
    project_id: Id | None = None


class ClientQuery(ListQuery):
    order_by: Literal["createdAt", "updatedAt", "name"] = "name"
    order: SortOrder = "asc"
    parent_id: Id | None = None


class TaskCommentQuery(ListQuery):
    order_by: Literal["createdAt"] = "createdAt"
    order: SortOrder = "asc"
    task_id: Id | None = None


class Page(Model):
    """A page of a list: ``{"items": [...], "total": N, "limit": L, "offset": O}``."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
