"""What the index holds: each searchable thing as a :class:`SourceDoc`, read from SQLite.

Kinds (the API's ``kind``): ``note | task | timeline | project | comment | file``, plus the
internal ``memory`` (associative memories: only their vectors are indexed, with empty text —
the text stays encrypted in SQLite). A document's id is ``"<kind>:<entity id>"``; its chunks'
ids are ``"<doc id>#<n>"``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sidecar.store.db import Store

Kind = Literal["note", "task", "timeline", "project", "comment", "file", "memory"]
#: kinds a search may ask for (``GET /v1/search?kind=``)
SEARCH_KINDS: tuple[str, ...] = ("note", "task", "timeline", "project", "comment", "file")

#: change-log entity → index kind
ENTITY_KINDS: dict[str, Kind] = {
    "notes": "note", "tasks": "task", "timelines": "timeline", "projects": "project",
    "taskComments": "comment", "memories": "memory",
}


@dataclass
class SourceDoc:
    """One searchable thing. ``text`` is what is chunked (offsets index into it); for files it is
    the reader's text of the file at ``path``. ``date`` is the item's own date in Unix ms (a
    task's due date, a milestone's date, a file's document date) or its last change."""

    kind: Kind
    entity_id: str
    title: str
    text: str
    project_id: str | None = None
    date: int | None = None
    path: str | None = None
    updated_at: int = 0
    #: for memories: the plaintext to embed (``text`` stays empty in the index)
    embed_text: str | None = None

    @property
    def doc_id(self) -> str:
        return f"{self.kind}:{self.entity_id}"


def _join(*parts: str | None) -> str:
    return "\n\n".join(p for p in parts if p)


def _note(r: sqlite3.Row) -> SourceDoc:
    return SourceDoc("note", r["id"], r["title"], _join(r["title"], r["content"]), r["project_id"],
                     r["updated_at"], updated_at=r["updated_at"])


def _task(r: sqlite3.Row) -> SourceDoc:
    return SourceDoc("task", r["id"], r["title"], _join(r["title"], r["description"]), r["project_id"],
                     r["due_date"] if r["due_date"] is not None else r["updated_at"], updated_at=r["updated_at"])


def _timeline(r: sqlite3.Row) -> SourceDoc:
    return SourceDoc("timeline", r["id"], r["title"], r["title"], r["project_id"], r["date"],
                     updated_at=r["updated_at"])


def _project(r: sqlite3.Row) -> SourceDoc:
    return SourceDoc("project", r["id"], r["name"], _join(r["name"], r["ai_summary"]), r["id"],
                     r["updated_at"], updated_at=r["updated_at"])


def _comment(r: sqlite3.Row) -> SourceDoc:
    title = f"Comment by {r['author']} on {r['task_title'] or 'a task'}"
    return SourceDoc("comment", r["id"], title, r["content"], r["project_id"], r["created_at"],
                     updated_at=r["created_at"])


#: kind → (SELECT returning the columns the builder reads, with ``{where}``, builder)
_QUERIES: dict[str, tuple[str, Callable[[sqlite3.Row], SourceDoc]]] = {
    "note": ("SELECT * FROM notes WHERE {where}", _note),
    "task": ("SELECT * FROM tasks WHERE {where}", _task),
    "timeline": ("SELECT * FROM timelines WHERE {where}", _timeline),
    "project": ("SELECT * FROM projects WHERE {where}", _project),
    "comment": ("SELECT c.*, t.title AS task_title, t.project_id AS project_id FROM task_comments c"
                " LEFT JOIN tasks t ON t.id = c.task_id WHERE {where}", _comment),
}
_ID_COLUMN = {"comment": "c.id"}


async def load_entities(store: Store, kind: str, ids: list[str]) -> dict[str, SourceDoc]:
    """The current documents of ``kind`` with these entity ids (missing ids: deleted)."""
    sql, build = _QUERIES[kind]
    out: dict[str, SourceDoc] = {}
    col = _ID_COLUMN.get(kind, "id")
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        rows = await store.fetchall(sql.format(where=f"{col} IN ({', '.join('?' * len(part))})"), part)
        for r in rows:
            doc = build(r)
            out[doc.entity_id] = doc
    return out


async def all_entity_ids(store: Store, kind: str) -> list[str]:
    """Every entity id of ``kind`` (``sidecar reindex`` and embedder changes rebuild from these)."""
    table = {"note": "notes", "task": "tasks", "timeline": "timelines", "project": "projects",
             "comment": "task_comments"}[kind]
    return [r[0] for r in await store.fetchall(f"SELECT id FROM {table} ORDER BY rowid")]


def file_doc(r: sqlite3.Row) -> SourceDoc | None:
    """A ``search_files`` row as a document (None for a tombstone)."""
    if r["text"] is None:
        return None
    title = r["title"] or r["path"].replace("\\", "/").rsplit("/", 1)[-1]
    return SourceDoc("file", r["file_id"], title, r["text"], None, r["doc_date"] or r["updated_at"],
                     path=r["path"], updated_at=r["updated_at"])


EntityLoader = Callable[[str, list[str]], Awaitable[dict[str, SourceDoc]]]
