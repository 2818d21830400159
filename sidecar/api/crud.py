"""Generic list/get/create/patch/delete handlers for a domain entity, over the repository.

Each resource module (``tasks``, ``projects``, …) declares its routes with :func:`resource_routes`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import weakref
from typing import Any

from aiohttp import web
from pydantic.alias_generators import to_camel

from sidecar.api.io import dump, json_ok, read_body, read_query
from sidecar.appstate import REPOSITORY
from sidecar.errors import NotFound
from sidecar.heap import trim_native_heap
from sidecar.store.entities import ENTITIES, EntitySpec
from sidecar.store.repository import read_rows

#: Pages larger than this many rows are "heavy": bounded in number and serialised in a thread.
HEAVY_LIST_ROWS = 1000
#: Heavy pages built at once (per event loop); more wait their turn.
HEAVY_LISTS = 2


class _Heavy:
    """The heavy pages of one event loop: a gate of :data:`HEAVY_LISTS` and how many are
    waiting or running."""

    def __init__(self) -> None:
        self.gate = asyncio.Semaphore(HEAVY_LISTS)
        self.pending = 0


_heavy_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Heavy] = weakref.WeakKeyDictionary()


def _heavy() -> _Heavy:
    loop = asyncio.get_running_loop()
    heavy = _heavy_by_loop.get(loop)
    if heavy is None:
        heavy = _heavy_by_loop[loop] = _Heavy()
    return heavy


#: Rows converted and encoded per step of a large page. The JSON encoder holds the GIL for a
#: whole call; small steps let the event loop (health, other requests) run between them.
_PAGE_STEP = 250


def _page_json(entity: str, rows: list[Any], total: int, limit: int, offset: int) -> str:
    """A large page as the list route's JSON text, built in steps (run in a worker thread)."""
    parts: list[str] = []
    for start in range(0, len(rows), _PAGE_STEP):
        items = read_rows(entity, rows[start:start + _PAGE_STEP])
        parts.append(json.dumps([dump(i) for i in items], ensure_ascii=False)[1:-1])
        time.sleep(0)  # hand the GIL over between steps
    head = json.dumps({"total": total, "limit": limit, "offset": offset})
    return '{"items": [' + ", ".join(p for p in parts if p) + "], " + head[1:]


def release_memory() -> None:
    """Collect the page's garbage, then return freed heap memory to the OS (a no-op off glibc)."""
    gc.collect()
    trim_native_heap()


def resource_routes(spec: EntitySpec, base: str, *, parent: tuple[str, str] | None = None) -> list[web.RouteDef]:
    """Routes for ``spec`` under ``base``:

    - ``GET base`` → ``{"items": [...], "total", "limit", "offset"}`` (filters: the spec's query model)
    - ``POST base`` → 201 with the created row
    - ``GET base/{id}``, ``PATCH base/{id}`` → the row; ``DELETE base/{id}`` → ``{"deleted": id}``

    ``parent`` = (path parameter, field) scopes a nested resource, e.g. ``("taskId", "task_id")``
    for ``/v1/tasks/{taskId}/comments``: the parent id filters lists and is set on create.
    """

    def scope(request: web.Request) -> dict[str, str]:
        # by alias, so that a body field of the same name cannot override the path
        return {to_camel(parent[1]): request.match_info[parent[0]]} if parent else {}

    parent_entity = next((r.target for r in spec.references if parent and r.column == parent[1]), None)

    async def check_parent(request: web.Request, row_field_value: str | None = None) -> None:
        # The parent must exist (404 otherwise), and a child row must belong to it.
        if parent and parent_entity:
            parent_id = request.match_info[parent[0]]
            await request.app[REPOSITORY].get(parent_entity, parent_id)
            if row_field_value is not None and row_field_value != parent_id:
                raise NotFound(f"no {spec.label} with id {request.match_info['id']} on this {ENTITIES[parent_entity].label}")

    async def list_(request: web.Request) -> web.Response:
        query = read_query(request, spec.query, **scope(request))
        if parent:
            await check_parent(request)
        if query.limit <= HEAVY_LIST_ROWS:
            items, total = await request.app[REPOSITORY].list(spec.name, query)
            return json_ok({"items": [dump(i) for i in items], "total": total, "limit": query.limit,
                            "offset": query.offset})
        # A large page: at most HEAVY_LISTS at a time, serialised off the event loop, and the
        # memory handed back to the OS when the last one is done (health stays responsive).
        heavy = _heavy()
        heavy.pending += 1
        try:
            async with heavy.gate:
                rows, total = await request.app[REPOSITORY].list_rows(spec.name, query)
                text = await asyncio.to_thread(_page_json, spec.name, rows, total, query.limit, query.offset)
                del rows
        finally:
            heavy.pending -= 1
        if heavy.pending == 0:
            await asyncio.to_thread(release_memory)
        return web.Response(text=text, content_type="application/json")

    async def create(request: web.Request) -> web.Response:
        body = await read_body(request, spec.create, **scope(request))
        await check_parent(request)
        return json_ok(await request.app[REPOSITORY].create(spec.name, body), status=201)

    async def get(request: web.Request) -> web.Response:
        row = await request.app[REPOSITORY].get(spec.name, request.match_info["id"])
        await check_parent(request, getattr(row, parent[1]) if parent else None)
        return json_ok(row)

    async def patch(request: web.Request) -> web.Response:
        body = await read_body(request, spec.patch)
        repo = request.app[REPOSITORY]
        if parent:
            row = await repo.get(spec.name, request.match_info["id"])
            await check_parent(request, getattr(row, parent[1]))
        return json_ok(await repo.update(spec.name, request.match_info["id"], body))

    async def delete(request: web.Request) -> web.Response:
        repo = request.app[REPOSITORY]
        if parent:
            row = await repo.get(spec.name, request.match_info["id"])
            await check_parent(request, getattr(row, parent[1]))
        row = await repo.delete(spec.name, request.match_info["id"])
        return json_ok({"deleted": row.id})

    item = base + "/{id}"
    return [
        web.get(base, list_, allow_head=False),
        web.post(base, create),
        web.get(item, get, allow_head=False),
        web.patch(item, patch),
        web.delete(item, delete),
    ]
