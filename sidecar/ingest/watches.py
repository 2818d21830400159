"""Watches — the seed's "local directory agents" (DESIGN §5): the model and its persistence.

A watch is ``{id, name, paths[], fileExtensions[], dataTypes[], promptTemplate, scheduleCron,
useLlm, enabled, lastRunAt, projectId, skipDone}`` (camelCase on the wire). Watches are
configuration, not domain data: they live in ``ingest_watches`` and are not in the change log.

Validation (each failure is a 422 naming the field, e.g. ``paths.0``):

* ``paths``: 1–50 absolute paths of existing directories, none inside another of the same watch;
  stored normalised (``os.path.normpath``); system folders, pseudo file systems and the whole
  home folder are refused (:func:`sidecar.ingest.opener.unwatchable`).
* ``fileExtensions``: extensions the readers support (``.md``, ``md`` and ``.MD`` all mean
  ``.md``); default: every supported extension.
* ``dataTypes``: some of ``tasks | notes | timelines``; default: all three.
* ``scheduleCron``: a cron expression croniter accepts (``*/15 * * * *``), read in the user's
  time zone; ``null`` = no schedule.
* ``projectId``: an existing project (checked against committed data).
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Literal

import uuid6
from pydantic import Field, StringConstraints, field_validator

from sidecar import clock
from sidecar.errors import NotFound, ValidationFailed
from sidecar.ingest.atomic import atomic
from sidecar.ingest.opener import unwatchable
from sidecar.store.db import Store, Writer
from sidecar.store.models import ApiModel, Id, Offset, Title

DataType = Literal["tasks", "notes", "timelines"]
ALL_DATA_TYPES: tuple[DataType, ...] = ("tasks", "notes", "timelines")
#: Longest prompt template accepted (characters).
PROMPT_MAX = 20_000
PromptTemplate = Annotated[str, StringConstraints(max_length=PROMPT_MAX)]
Cron = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def supported_extensions() -> frozenset[str]:
    """The extensions the readers accept (imported lazily: the readers load PDF/iCalendar libraries)."""
    from sidecar.ingest.readers import SUPPORTED_EXTENSIONS

    return SUPPORTED_EXTENSIONS


def _check_paths(paths: list[str]) -> list[str]:
    out: list[str] = []
    for i, raw in enumerate(paths):
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(f"paths[{i}] is empty")
        if not os.path.isabs(raw):
            raise ValueError(f"paths[{i}] {raw!r} is not an absolute path")
        norm = os.path.normpath(raw)
        if not os.path.exists(norm):
            raise ValueError(f"paths[{i}] {raw!r} does not exist")
        if not os.path.isdir(norm):
            raise ValueError(f"paths[{i}] {raw!r} is not a directory")
        why = unwatchable(norm)
        if why is not None:
            raise ValueError(f"paths[{i}]: {why}")
        if norm in out:
            continue
        for other in out:
            if norm.startswith(other.rstrip(os.sep) + os.sep) or other.startswith(norm.rstrip(os.sep) + os.sep):
                raise ValueError(f"paths[{i}] {raw!r} and {other!r} are nested; watch the outer folder only")
        out.append(norm)
    return out


def _check_extensions(exts: list[str]) -> list[str]:
    supported = supported_extensions()
    out: list[str] = []
    for raw in exts:
        ext = raw.strip().lower()
        if ext and not ext.startswith("."):
            ext = "." + ext
        if ext not in supported:
            raise ValueError(f"unsupported extension {raw!r}; supported: {', '.join(sorted(supported))}")
        if ext not in out:
            out.append(ext)
    return out


def _check_cron(expr: str | None) -> str | None:
    if expr is None:
        return None
    from croniter import croniter

    if not croniter.is_valid(expr):
        raise ValueError(f"not a valid cron expression: {expr!r} (e.g. '*/15 * * * *')")
    return expr


def _unique(values: list[DataType]) -> list[DataType]:
    out: list[DataType] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


class _WatchRules(ApiModel):
    """The validation shared by create and patch bodies (see the module docstring)."""

    @field_validator("paths", check_fields=False)
    @classmethod
    def _paths(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_paths(v)

    @field_validator("file_extensions", check_fields=False)
    @classmethod
    def _exts(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_extensions(v)

    @field_validator("data_types", check_fields=False)
    @classmethod
    def _types(cls, v: list[DataType] | None) -> list[DataType] | None:
        return None if v is None else _unique(v)

    @field_validator("schedule_cron", check_fields=False)
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        return _check_cron(v)


class WatchCreate(_WatchRules):
    """Body of ``POST /v1/watches``. Unknown fields are refused (422)."""

    name: Title
    paths: list[str] = Field(min_length=1, max_length=50)
    file_extensions: list[str] | None = Field(default=None, max_length=50)
    data_types: list[DataType] = Field(default_factory=lambda: list(ALL_DATA_TYPES), min_length=1, max_length=3)
    prompt_template: PromptTemplate = ""
    schedule_cron: Cron | None = None
    use_llm: bool = False
    enabled: bool = True
    project_id: Id | None = None
    skip_done: bool = False


class WatchPatch(_WatchRules):
    """Body of ``PATCH /v1/watches/{id}``: every field optional; ``scheduleCron``/``projectId``
    may be ``null`` to clear them."""

    name: Title | None = None
    paths: list[str] | None = Field(default=None, min_length=1, max_length=50)
    file_extensions: list[str] | None = Field(default=None, min_length=1, max_length=50)
    data_types: list[DataType] | None = Field(default=None, min_length=1, max_length=3)
    prompt_template: PromptTemplate | None = None
    schedule_cron: Cron | None = None
    use_llm: bool | None = None
    enabled: bool | None = None
    project_id: Id | None = None
    skip_done: bool | None = None


class Watch(ApiModel):
    """A stored watch as the API returns it. Times are Unix ms."""

    id: str
    name: str
    paths: list[str]
    file_extensions: list[str]
    data_types: list[DataType]
    prompt_template: str
    schedule_cron: str | None
    use_llm: bool
    enabled: bool
    last_run_at: int | None
    project_id: str | None
    skip_done: bool
    created_at: int
    updated_at: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Watch:
        """Build from an ``ingest_watches`` row."""
        return cls.from_db(row, json_columns=("paths", "file_extensions", "data_types"))


class WatchQuery(ApiModel):
    """Query of ``GET /v1/watches``."""

    limit: int = Field(default=100, ge=1, le=10_000)
    offset: Offset = 0
    enabled: bool | None = None


_JSON_COLUMNS = frozenset({"paths", "file_extensions", "data_types"})
_BOOL_COLUMNS = frozenset({"use_llm", "enabled", "skip_done"})


def _db_value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return json.dumps(value, ensure_ascii=False)
    if column in _BOOL_COLUMNS:
        return int(bool(value))
    return value


class WatchStore:
    """Reads and writes ``ingest_watches`` (and removes a deleted watch's runs and queue rows)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _check_project(self, project_id: str | None) -> None:
        if project_id is None:
            return
        row = await self.store.fetchone("SELECT 1 FROM projects WHERE id = ?", (project_id,))
        if row is None:
            raise ValidationFailed.field("projectId", f"no project with id {project_id}", "reference_missing")

    async def list(self, query: WatchQuery | None = None) -> tuple[list[Watch], int]:
        """A page of watches, oldest first, and the total count."""
        q = query or WatchQuery()
        where, params = "", []
        if q.enabled is not None:
            where, params = " WHERE enabled = ?", [int(q.enabled)]
        rows = await self.store.fetchall(
            f"SELECT * FROM ingest_watches{where} ORDER BY created_at, id LIMIT ? OFFSET ?",
            [*params, q.limit, q.offset],
        )
        total = await self.store.fetchone(f"SELECT count(*) FROM ingest_watches{where}", params)
        return [Watch.from_row(r) for r in rows], int(total[0]) if total else 0

    async def all(self) -> builtins.list[Watch]:
        """Every watch, oldest first."""
        rows = await self.store.fetchall("SELECT * FROM ingest_watches ORDER BY created_at, id")
        return [Watch.from_row(r) for r in rows]

    async def get(self, watch_id: str) -> Watch:
        """One watch. Raises NotFound."""
        row = await self.store.fetchone("SELECT * FROM ingest_watches WHERE id = ?", (watch_id,))
        if row is None:
            raise NotFound(f"no watch with id {watch_id}", detail={"entity": "watches", "id": watch_id})
        return Watch.from_row(row)

    @atomic
    async def create(self, body: WatchCreate) -> Watch:
        """Store a new watch. Raises ValidationFailed (``projectId`` names no project)."""
        await self._check_project(body.project_id)
        now = clock.now_ms()
        values: dict[str, Any] = body.model_dump()
        if values["file_extensions"] is None:
            values["file_extensions"] = sorted(supported_extensions())
        values.update(id=str(uuid6.uuid7()), created_at=now, updated_at=now, last_run_at=None)
        cols = list(values)
        async with self.store.write() as w:
            await w.execute(
                f"INSERT INTO ingest_watches ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [_db_value(c, values[c]) for c in cols],
            )
        return await self.get(values["id"])

    @atomic
    async def update(self, watch_id: str, patch: WatchPatch) -> tuple[Watch, Watch]:
        """Apply a partial update; returns ``(before, after)``. Raises NotFound, ValidationFailed."""
        before = await self.get(watch_id)
        changes = patch.model_dump(exclude_unset=True)
        for required in ("name", "paths", "file_extensions", "data_types", "prompt_template", "use_llm",
                         "enabled", "skip_done"):
            if required in changes and changes[required] is None:
                raise ValidationFailed.field(_camel(required), "must not be null", "none_forbidden")
        if "project_id" in changes:
            await self._check_project(changes["project_id"])
        if not changes:
            return before, before
        changes["updated_at"] = max(clock.now_ms(), before.updated_at)
        sets = ", ".join(f"{c} = ?" for c in changes)
        async with self.store.write() as w:
            await w.execute(
                f"UPDATE ingest_watches SET {sets} WHERE id = ?",
                [*(_db_value(c, v) for c, v in changes.items()), watch_id],
            )
        return before, await self.get(watch_id)

    @atomic
    async def delete(self, watch_id: str) -> Watch:
        """Delete a watch with its run log and queue rows. Extracted items and their provenance
        stay (they are the user's). Raises NotFound."""
        watch = await self.get(watch_id)
        async with self.store.write() as w:
            await w.execute("DELETE FROM ingest_files WHERE watch_id = ?", (watch_id,))
            await w.execute("DELETE FROM ingest_runs WHERE watch_id = ?", (watch_id,))
            await w.execute("DELETE FROM ingest_watches WHERE id = ?", (watch_id,))
        return watch

    async def ensure_for_path(self, path: Path, *, enabled: bool = True) -> tuple[Watch, bool]:
        """The watch whose ``paths`` include ``path`` (made enabled when ``enabled``), else a new
        watch on it named after the folder. Returns ``(watch, created)``.

        Raises:
            ValidationFailed: ``path`` is not an absolute path of an existing directory.
        """
        norm = os.path.normpath(str(path))  # noqa: ASYNC240 - string operation, no I/O
        for watch in await self.all():
            if norm in watch.paths:
                if enabled and not watch.enabled:
                    _, watch = await self.update(watch.id, WatchPatch(enabled=True))
                return watch, False
        body = _validated_create({"name": Path(norm).name or norm, "paths": [norm], "enabled": enabled})
        return await self.create(body), True


def _camel(name: str) -> str:
    from pydantic.alias_generators import to_camel

    return to_camel(name)


def _validated_create(data: dict[str, Any]) -> WatchCreate:
    from pydantic import ValidationError

    try:
        return WatchCreate.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None


async def set_auto_project(w: Writer, watch_id: str, project_id: str) -> None:
    """Remember the project created for a watch's milestones (inside the creating transaction)."""
    await w.execute("UPDATE ingest_watches SET auto_project_id = ? WHERE id = ?", (project_id, watch_id))
