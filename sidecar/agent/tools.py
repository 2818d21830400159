"""The agent's tools over the local store (DESIGN §4), with the names and arguments the shell's
prompts and analytics use.

Each tool is an async method of :class:`StoreTools` returning a short human-readable summary
with ids, so the model can reason over real rows. A tool is declared once, by the :func:`tool`
decorator on its method (the domains whose floating assistant gets it, whether it needs the
user's confirmation); :data:`TOOLS`, :data:`TOOL_NAMES`, :data:`DESTRUCTIVE_TOOLS` and
:data:`DOMAIN_TOOLS` are derived from those declarations. The rows a tool shows the model are
recorded in the run's :class:`ToolScope` (``entity_ref`` blocks are filled from them). Every mutation goes through the repository
(so it lands in the change log). Dates come from the model as ISO 8601 strings and are
converted to Unix ms in the user's time zone. A bad argument never raises: it comes back as an
``Error: …`` text the model can correct. Optional means omitted, not a sentinel.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from sidecar import clock
from sidecar.agent.tool_decl import (
    CURRENT_SCOPE,
    DOMAINS,
    ToolScope,
    ToolSpec,
    declared_tools,
    record_changes,
    shown,
    tool,
    tool_errors,
)
from sidecar.errors import ValidationFailed
from sidecar.store.models import Client, Note, Project, Row, Task, TaskComment, Timeline
from sidecar.store.repository import Repository

__all__ = ["CURRENT_SCOPE", "DESTRUCTIVE_TOOLS", "DOMAINS", "DOMAIN_TOOLS", "TOOLS", "TOOL_NAMES", "StoreTools",
           "ToolScope", "ToolSpec", "declared_tools", "record_changes", "tool", "tool_errors"]

log = logging.getLogger(__name__)

NO_FIELDS = "Error: give at least one field to change."
#: Listings of tasks and notes count matches up to this many, then say "more than": a model
#: needs no exact total of thousands (it narrows the filters), and counting them all was most of
#: a text search's cost on a large store.
COUNT_UPTO = 200

TaskStatus = Literal["todo", "in_progress", "done"]
TaskPriority = Literal["high", "medium", "low"]


class StoreTools:
    """The tool set bound to one repository and the user's time zone."""

    def __init__(self, repo: Repository, tz: dt.tzinfo | None = None) -> None:
        self.repo = repo
        self.tz = tz or clock.local_timezone()

    # --- writing ------------------------------------------------------------------------------

    async def _create(self, entity: str, fields: dict[str, Any]) -> Row:
        """Create from the arguments given (omitted ones are left to the model's defaults)."""
        return await self.repo.create(entity, {k: v for k, v in fields.items() if v is not None})

    async def _update(self, entity: str, entity_id: str, fields: dict[str, Any]) -> Row | None:
        """Apply the arguments given; None when none was (the caller says so to the model)."""
        patch = {k: v for k, v in fields.items() if v is not None}
        return await self.repo.update(entity, entity_id, patch) if patch else None

    # --- formatting ---------------------------------------------------------------------------

    def _date(self, ms: int | None) -> str:
        if ms is None:
            return "none"
        return clock.ms_to_iso(ms, self.tz)

    def _ms(self, iso: str | None, arg: str) -> int | None:
        if iso is None:
            return None
        try:
            return clock.parse_iso_to_ms(iso, self.tz)
        except ValueError as exc:
            raise ValidationFailed.field(arg, str(exc)) from None

    def _task(self, t: Row) -> str:
        assert isinstance(t, Task)
        shown("task", t)
        parts = [f"[{t.id}] {t.title}", f"status={t.status}", f"priority={t.priority}"]
        if t.due_date is not None:
            parts.append(f"due={self._date(t.due_date)}")
        if t.assignee:
            parts.append("assignees=" + ",".join(t.assignee))
        if t.project_id:
            parts.append(f"project={t.project_id}")
        if t.is_ai_suggested and not t.is_approved:
            parts.append("(suggestion awaiting approval)")
        return " ".join(parts)

    def _project(self, p: Row) -> str:
        assert isinstance(p, Project)
        shown("project", p)
        return f"[{p.id}] {p.name} status={p.status}" + (f" client={p.client_id}" if p.client_id else "")

    def _timeline(self, t: Row) -> str:
        assert isinstance(t, Timeline)
        shown("timeline", t)
        return f"[{t.id}] {t.title} date={self._date(t.date)} project={t.project_id}"

    def _note(self, n: Row, full: bool = False) -> str:
        assert isinstance(n, Note)
        shown("note", n)
        head = f"[{n.id}] {n.title}" + (f" project={n.project_id}" if n.project_id else "")
        if full:
            return f"{head}\n{n.content}"
        preview = n.content.strip().replace("\n", " ")
        return head + (f" — {preview[:120]}{'…' if len(preview) > 120 else ''}" if preview else "")

    @staticmethod
    def _listing(kind: str, rows: list[str], total: int) -> str:
        """``total`` above :data:`COUNT_UPTO` reads "more than COUNT_UPTO" (a listing counts no
        further, :meth:`Repository.list`)."""
        if not rows:
            return f"No {kind} found."
        if total > COUNT_UPTO:
            return (f"More than {COUNT_UPTO} {kind} (showing {len(rows)}; narrow the filters to see others):\n"
                    + "\n".join(f"- {r}" for r in rows))
        more = f" (showing {len(rows)} of {total})" if total > len(rows) else ""
        return f"{total} {kind}{more}:\n" + "\n".join(f"- {r}" for r in rows)

    # --- tasks --------------------------------------------------------------------------------

    @tool("tasks")
    async def list_tasks(
        self,
        project_id: str | None = None,
        status: TaskStatus | None = None,
        search: str | None = None,
        order_by: Literal["createdAt", "updatedAt", "dueDate", "priority", "title"] | None = None,
    ) -> str:
        """List tasks, optionally filtered by project, status or a text search.

        Args:
            project_id: Only tasks of this project.
            status: Only tasks with this status: todo, in_progress or done.
            search: Text to look for in titles and descriptions.
            order_by: createdAt, updatedAt, dueDate, priority or title.
        """
        query: dict[str, Any] = {"limit": 50, "project_id": project_id, "status": status, "q": search}
        if order_by:
            query["order_by"] = order_by
            query["order"] = "asc" if order_by in ("dueDate", "title") else "desc"
        rows, total = await self.repo.list("tasks", {k: v for k, v in query.items() if v is not None},
                                           count_upto=COUNT_UPTO)
        return self._listing("tasks", [self._task(t) for t in rows], total)

    @tool("tasks")
    async def create_task(
        self,
        title: str,
        description: str | None = None,
        status: TaskStatus | None = None,
        priority: TaskPriority | None = None,
        assignees: list[str] | None = None,
        due_date: str | None = None,
        project_id: str | None = None,
    ) -> str:
        """Create a task.

        Args:
            title: Short title of the task.
            description: Longer details.
            status: todo (default), in_progress or done.
            priority: high, medium (default) or low.
            assignees: Names of the people responsible.
            due_date: ISO 8601 date or date-time, e.g. 2026-12-03 or 2026-12-03T15:00.
            project_id: Id of the project the task belongs to.
        """
        row = await self._create("tasks", {"title": title, "description": description, "status": status,
                                           "priority": priority, "assignee": assignees,
                                           "due_date": self._ms(due_date, "due_date"), "project_id": project_id})
        return f"Created task {self._task(row)}"

    @tool("tasks")
    async def update_task(
        self,
        task_id: str,
        title: str | None = None,
        description: str | None = None,
        status: TaskStatus | None = None,
        priority: TaskPriority | None = None,
        assignees: list[str] | None = None,
        due_date: str | None = None,
        project_id: str | None = None,
    ) -> str:
        """Change fields of a task; fields not given are left as they are.

        Args:
            task_id: Id of the task.
            title: New title.
            description: New description.
            status: todo, in_progress or done.
            priority: high, medium or low.
            assignees: New list of assignees (replaces the old list).
            due_date: New due date, ISO 8601 (e.g. 2026-12-03).
            project_id: Move the task to this project.
        """
        row = await self._update("tasks", task_id, {"title": title, "description": description, "status": status,
                                                    "priority": priority, "assignee": assignees,
                                                    "due_date": self._ms(due_date, "due_date"), "project_id": project_id})
        return f"Updated task {self._task(row)}" if row else NO_FIELDS

    @tool("tasks", confirm=True)
    async def delete_task(self, task_id: str) -> str:
        """Delete a task and its comments (asks the user to confirm first).

        Args:
            task_id: Id of the task.
        """
        row = await self.repo.delete("tasks", task_id)
        assert isinstance(row, Task)
        return f"Deleted task [{row.id}] {row.title}"

    @tool("tasks")
    async def list_tasks_due_today(self) -> str:
        """List open tasks due today (in the user's time zone), and overdue ones."""
        today = dt.datetime.now(self.tz).date()
        end = clock.to_ms(today + dt.timedelta(days=1), self.tz) - 1
        rows, _ = await self.repo.list("tasks", {"due_date_to": end, "order_by": "dueDate", "order": "asc", "limit": 200})
        start = clock.to_ms(today, self.tz)
        open_rows = [t for t in rows if isinstance(t, Task) and t.status != "done"]
        due = [self._task(t) for t in open_rows if t.due_date is not None and t.due_date >= start]
        overdue = [self._task(t) for t in open_rows if t.due_date is not None and t.due_date < start]
        out = self._listing(f"open tasks due today ({today.isoformat()})", due, len(due))
        if overdue:
            out += "\n" + self._listing("overdue tasks", overdue, len(overdue))
        return out

    @tool("tasks")
    async def list_task_comments(self, task_id: str) -> str:
        """List the comments on a task, oldest first.

        Args:
            task_id: Id of the task.
        """
        await self.repo.get("tasks", task_id)
        rows, total = await self.repo.list("taskComments", {"task_id": task_id, "limit": 200})
        lines = [f"[{c.id}] {c.author} ({self._date(c.created_at)}): {c.content}" for c in rows if isinstance(c, TaskComment)]
        return self._listing("comments", lines, total)

    @tool("tasks")
    async def add_task_comment(self, task_id: str, author: str, content: str) -> str:
        """Add a comment to a task.

        Args:
            task_id: Id of the task.
            author: Who is writing the comment.
            content: The comment text.
        """
        row = await self._create("taskComments", {"task_id": task_id, "author": author, "content": content})
        return f"Added comment [{row.id}] to task {task_id}"

    @tool("tasks", confirm=True)
    async def delete_task_comment(self, comment_id: str) -> str:
        """Delete a comment (asks the user to confirm first).

        Args:
            comment_id: Id of the comment.
        """
        row = await self.repo.delete("taskComments", comment_id)
        return f"Deleted comment [{row.id}]"

    # --- projects -----------------------------------------------------------------------------

    @tool("tasks", "notes", "projects", "timelines")
    async def list_projects(self, client_id: str | None = None, include_archived: bool | None = None) -> str:
        """List projects (active ones unless include_archived is true).

        Args:
            client_id: Only projects of this client.
            include_archived: Also list archived projects.
        """
        query: dict[str, Any] = {"limit": 200, "order_by": "name", "order": "asc"}
        if client_id:
            query["client_id"] = client_id
        if not include_archived:
            query["status"] = "active"
        rows, total = await self.repo.list("projects", query)
        return self._listing("projects", [self._project(p) for p in rows], total)

    @tool("projects")
    async def list_all_projects(self) -> str:
        """List every project, archived ones included."""
        rows, total = await self.repo.list("projects", {"limit": 500, "order_by": "name", "order": "asc"})
        return self._listing("projects", [self._project(p) for p in rows], total)

    @tool("projects")
    async def get_project(self, project_id: str) -> str:
        """Show a project with its summary and counts of its tasks, milestones and notes.

        Args:
            project_id: Id of the project.
        """
        p = await self.repo.get("projects", project_id)
        assert isinstance(p, Project)
        _, tasks = await self.repo.list("tasks", {"project_id": project_id, "limit": 1})
        _, open_tasks = await self.repo.list("tasks", {"project_id": project_id, "status": "todo", "limit": 1})
        _, timelines = await self.repo.list("timelines", {"project_id": project_id, "limit": 1})
        _, notes = await self.repo.list("notes", {"project_id": project_id, "limit": 1})
        summary = f"\nSummary: {p.ai_summary}" if p.ai_summary else ""
        return (f"Project {self._project(p)}: {tasks} tasks ({open_tasks} todo), "
                f"{timelines} milestones, {notes} notes.{summary}")

    @tool("projects")
    async def create_project(self, name: str, client_id: str | None = None) -> str:
        """Create a project.

        Args:
            name: Name of the project.
            client_id: Id of the client the project is for.
        """
        row = await self._create("projects", {"name": name, "client_id": client_id})
        return f"Created project {self._project(row)}"

    @tool("projects")
    async def update_project(
        self,
        project_id: str,
        name: str | None = None,
        status: Literal["active", "archived"] | None = None,
        client_id: str | None = None,
        ai_summary: str | None = None,
    ) -> str:
        """Change fields of a project; archive it with status=archived.

        Args:
            project_id: Id of the project.
            name: New name.
            status: active or archived.
            client_id: New client id.
            ai_summary: A short summary of the project.
        """
        row = await self._update("projects", project_id,
                                 {"name": name, "status": status, "client_id": client_id, "ai_summary": ai_summary})
        return f"Updated project {self._project(row)}" if row else NO_FIELDS

    @tool("projects", confirm=True)
    async def delete_project(self, project_id: str) -> str:
        """Delete a project and its milestones; its tasks and notes are kept without a project.
        Prefer archiving (update_project with status=archived). Asks the user to confirm first.

        Args:
            project_id: Id of the project.
        """
        row = await self.repo.delete("projects", project_id)
        assert isinstance(row, Project)
        return f"Deleted project [{row.id}] {row.name}"

    # --- timelines ----------------------------------------------------------------------------

    @tool("timelines")
    async def list_timelines(self, project_id: str | None = None) -> str:
        """List milestones (timelines) by date.

        Args:
            project_id: Only milestones of this project.
        """
        query: dict[str, Any] = {"limit": 200, **({"project_id": project_id} if project_id else {})}
        rows, total = await self.repo.list("timelines", query)
        return self._listing("milestones", [self._timeline(t) for t in rows], total)

    @tool("timelines")
    async def create_timeline(self, project_id: str, title: str, date: str) -> str:
        """Create a milestone in a project.

        Args:
            project_id: Id of the project.
            title: What happens at this milestone.
            date: ISO 8601 date or date-time, e.g. 2026-12-03.
        """
        row = await self._create("timelines", {"project_id": project_id, "title": title, "date": self._ms(date, "date")})
        return f"Created milestone {self._timeline(row)}"

    @tool("timelines")
    async def update_timeline(
        self, timeline_id: str, title: str | None = None, date: str | None = None, project_id: str | None = None
    ) -> str:
        """Change fields of a milestone.

        Args:
            timeline_id: Id of the milestone.
            title: New title.
            date: New date, ISO 8601.
            project_id: Move it to this project.
        """
        row = await self._update("timelines", timeline_id,
                                 {"title": title, "date": self._ms(date, "date"), "project_id": project_id})
        return f"Updated milestone {self._timeline(row)}" if row else NO_FIELDS

    @tool("timelines", confirm=True)
    async def delete_timeline(self, timeline_id: str) -> str:
        """Delete a milestone (asks the user to confirm first).

        Args:
            timeline_id: Id of the milestone.
        """
        row = await self.repo.delete("timelines", timeline_id)
        assert isinstance(row, Timeline)
        return f"Deleted milestone [{row.id}] {row.title}"

    # --- notes --------------------------------------------------------------------------------

    @tool("notes")
    async def list_notes(self, project_id: str | None = None) -> str:
        """List notes, newest first, with a preview of each.

        Args:
            project_id: Only notes of this project.
        """
        query: dict[str, Any] = {"limit": 100, **({"project_id": project_id} if project_id else {})}
        rows, total = await self.repo.list("notes", query, count_upto=COUNT_UPTO)
        return self._listing("notes", [self._note(n) for n in rows], total)

    @tool("notes")
    async def get_note(self, note_id: str) -> str:
        """Show a note in full.

        Args:
            note_id: Id of the note.
        """
        return self._note(await self.repo.get("notes", note_id), full=True)

    @tool("notes")
    async def create_note(self, title: str, content: str, project_id: str | None = None) -> str:
        """Create a note (Markdown content).

        Args:
            title: Title of the note.
            content: The note's text, in Markdown.
            project_id: Id of the project it belongs to.
        """
        row = await self._create("notes", {"title": title, "content": content, "project_id": project_id})
        return f"Created note {self._note(row)}"

    @tool("notes")
    async def update_note(
        self, note_id: str, title: str | None = None, content: str | None = None, project_id: str | None = None
    ) -> str:
        """Change fields of a note; content replaces the whole text.

        Args:
            note_id: Id of the note.
            title: New title.
            content: New Markdown content.
            project_id: Move it to this project.
        """
        row = await self._update("notes", note_id, {"title": title, "content": content, "project_id": project_id})
        return f"Updated note {self._note(row)}" if row else NO_FIELDS

    @tool("notes", confirm=True)
    async def delete_note(self, note_id: str) -> str:
        """Delete a note (asks the user to confirm first).

        Args:
            note_id: Id of the note.
        """
        row = await self.repo.delete("notes", note_id)
        assert isinstance(row, Note)
        return f"Deleted note [{row.id}] {row.title}"

    # --- other --------------------------------------------------------------------------------

    @tool("projects")
    async def list_clients(self) -> str:
        """List clients."""
        rows, total = await self.repo.list("clients", {"limit": 500})
        lines = [f"[{c.id}] {c.name}" + (f" industry={c.industry}" if c.industry else "")
                 for c in rows if isinstance(c, Client)]
        return self._listing("clients", lines, total)

    @tool("projects")
    async def create_client(self, name: str, industry: str | None = None, parent_id: str | None = None) -> str:
        """Create a client.

        Args:
            name: Name of the client.
            industry: The client's industry.
            parent_id: Id of a parent client (for subsidiaries).
        """
        row = await self._create("clients", {"name": name, "industry": industry, "parent_id": parent_id})
        return f"Created client [{row.id}] {name}"


#: Every store tool's declaration, in the order they are offered to the model.
TOOLS: tuple[ToolSpec, ...] = tuple(declared_tools(StoreTools))
#: Names of every store tool, in that order.
TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS)
#: Tools that destroy data: they run only after the user confirms (AG-UI interrupt).
DESTRUCTIVE_TOOLS: frozenset[str] = frozenset(t.name for t in TOOLS if t.confirm)
#: Store tools offered per floating-mode domain.
DOMAIN_TOOLS: dict[str, tuple[str, ...]] = {d: tuple(t.name for t in TOOLS if d in t.domains) for d in DOMAINS}
