"""The registry of domain entities: table, models, references and how deletes cascade.

The repository, the HTTP resources and the agent tools all look entities up here, so a new
column or rule is declared once. Entity names are the change log's ``entity`` values and the
shell's table names (DESIGN §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from sidecar.store import models as m

#: What happens to rows that reference a deleted row (done by the repository, not by SQLite,
#: so that every cascaded change is written to the change log too).
OnDelete = Literal["cascade", "set_null"]


@dataclass(frozen=True)
class Reference:
    """A column holding another entity's id."""

    column: str  # snake_case column, e.g. "project_id"
    target: str  # entity name, e.g. "projects"
    on_delete: OnDelete


@dataclass(frozen=True)
class EntitySpec:
    """How one entity is stored and exposed."""

    name: str  # change-log entity and API name, e.g. "tasks", "taskComments"
    table: str  # SQL table
    label: str  # singular, for messages: "task"
    create: type[m.ApiModel]
    patch: type[m.ApiModel]
    read: type[m.Row]
    query: type[m.ListQuery]
    references: tuple[Reference, ...] = ()
    json_columns: frozenset[str] = frozenset()
    bool_columns: frozenset[str] = frozenset()
    search_columns: tuple[str, ...] = ()
    has_updated_at: bool = True
    #: SQL expressions for orderings that are not plain columns
    order_expressions: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """Stored columns in table order (read model fields)."""
        return tuple(self.read.model_fields)


CLIENTS = EntitySpec(
    name="clients",
    table="clients",
    label="client",
    create=m.ClientCreate,
    patch=m.ClientPatch,
    read=m.Client,
    query=m.ClientQuery,
    references=(Reference("parent_id", "clients", "set_null"),),
    search_columns=("name", "industry"),
)
PROJECTS = EntitySpec(
    name="projects",
    table="projects",
    label="project",
    create=m.ProjectCreate,
    patch=m.ProjectPatch,
    read=m.Project,
    query=m.ProjectQuery,
    references=(Reference("client_id", "clients", "set_null"),),
    search_columns=("name", "ai_summary"),
)
TASKS = EntitySpec(
    name="tasks",
    table="tasks",
    label="task",
    create=m.TaskCreate,
    patch=m.TaskPatch,
    read=m.Task,
    query=m.TaskQuery,
    references=(Reference("project_id", "projects", "set_null"),),
    json_columns=frozenset({"assignee"}),
    bool_columns=frozenset({"is_ai_suggested", "is_approved"}),
    search_columns=("title", "description"),
    order_expressions={"priority": "CASE priority WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END"},
)
TIMELINES = EntitySpec(
    name="timelines",
    table="timelines",
    label="timeline",
    create=m.TimelineCreate,
    patch=m.TimelinePatch,
    read=m.Timeline,
    query=m.TimelineQuery,
    references=(Reference("project_id", "projects", "cascade"),),
    bool_columns=frozenset({"is_ai_suggested", "is_approved"}),
    search_columns=("title",),
)
NOTES = EntitySpec(
    name="notes",
    table="notes",
    label="note",
    create=m.NoteCreate,
    patch=m.NotePatch,
    read=m.Note,
    query=m.NoteQuery,
    references=(Reference("project_id", "projects", "set_null"),),
    search_columns=("title", "content"),
)
TASK_COMMENTS = EntitySpec(
    name="taskComments",
    table="task_comments",
    label="comment",
    create=m.TaskCommentCreate,
    patch=m.TaskCommentPatch,
    read=m.TaskComment,
    query=m.TaskCommentQuery,
    references=(Reference("task_id", "tasks", "cascade"),),
    search_columns=("content",),
    has_updated_at=False,
)

ENTITIES: dict[str, EntitySpec] = {
    s.name: s for s in (CLIENTS, PROJECTS, TASKS, TIMELINES, NOTES, TASK_COMMENTS)
}


def referencing(target: str) -> list[tuple[EntitySpec, Reference]]:
    """Every (entity, reference) whose column points at ``target`` (for delete cascades)."""
    return [(s, r) for s in ENTITIES.values() for r in s.references if r.target == target]


def model_fields_of(model: type[BaseModel]) -> set[str]:
    """The snake_case field names of a model."""
    return set(model.model_fields)
