"""Generic list/get/create/patch/delete handlers for a domain entity, over the repository.

Each resource module (``tasks``, ``projects``, …) declares its routes with :func:`resource_routes`.
"""

from __future__ import annotations

from aiohttp import web
from pydantic.alias_generators import to_camel

from sidecar.api.io import dump, json_ok, read_body, read_query
from sidecar.appstate import REPOSITORY
from sidecar.errors import NotFound
from sidecar.store.entities import ENTITIES, EntitySpec


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
        items, total = await request.app[REPOSITORY].list(spec.name, query)
        return json_ok({"items": [dump(i) for i in items], "total": total, "limit": query.limit, "offset": query.offset})

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
