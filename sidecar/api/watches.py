"""`/v1/watches`: the folder-extraction agents (DESIGN §5).

- ``GET /v1/watches`` → ``{"items": [watch…], "total", "limit", "offset"}`` (``?enabled=``)
- ``POST /v1/watches`` → 201 with the watch; 422 naming the fields for a relative or missing
  path, a bad cron expression, unknown ``dataTypes`` or extensions, a missing ``projectId``
- ``GET /v1/watches/{id}``, ``PATCH /v1/watches/{id}`` → the watch; ``DELETE`` → ``{"deleted": id}``
  (its run log and queue go; extracted items stay)
- ``POST /v1/watches/{id}/run`` → 202 with the run (a manual run; it joins a run already active)
- ``GET /v1/watches/{id}/runs`` → ``{"items": [run…], "total", "limit", "offset"}``, newest first

Shapes: :class:`sidecar.ingest.watches.Watch`, :class:`sidecar.ingest.runs.Run`.
"""

from __future__ import annotations

from aiohttp import web

from sidecar.api.io import dump, json_ok, read_body, read_query
from sidecar.appstate import INGEST
from sidecar.ingest.runs import RunQuery
from sidecar.ingest.watches import WatchCreate, WatchPatch, WatchQuery


async def list_watches(request: web.Request) -> web.Response:
    query = read_query(request, WatchQuery)
    items, total = await request.app[INGEST].pipeline.watches.list(query)
    return json_ok({"items": [dump(w) for w in items], "total": total, "limit": query.limit, "offset": query.offset})


async def create_watch(request: web.Request) -> web.Response:
    body = await read_body(request, WatchCreate)
    return json_ok(await request.app[INGEST].create_watch(body), status=201)


async def get_watch(request: web.Request) -> web.Response:
    return json_ok(await request.app[INGEST].pipeline.watches.get(request.match_info["id"]))


async def patch_watch(request: web.Request) -> web.Response:
    body = await read_body(request, WatchPatch)
    return json_ok(await request.app[INGEST].update_watch(request.match_info["id"], body))


async def delete_watch(request: web.Request) -> web.Response:
    watch = await request.app[INGEST].delete_watch(request.match_info["id"])
    return json_ok({"deleted": watch.id})


async def run_watch(request: web.Request) -> web.Response:
    return json_ok(await request.app[INGEST].run(request.match_info["id"]), status=202)


async def list_runs(request: web.Request) -> web.Response:
    service = request.app[INGEST]
    watch = await service.pipeline.watches.get(request.match_info["id"])
    query = read_query(request, RunQuery)
    items, total = await service.pipeline.runs.list(watch.id, query)
    return json_ok({"items": [dump(r) for r in items], "total": total, "limit": query.limit, "offset": query.offset})


routes = [
    web.get("/v1/watches", list_watches, allow_head=False),
    web.post("/v1/watches", create_watch),
    web.get("/v1/watches/{id}", get_watch, allow_head=False),
    web.patch("/v1/watches/{id}", patch_watch),
    web.delete("/v1/watches/{id}", delete_watch),
    web.post("/v1/watches/{id}/run", run_watch),
    web.get("/v1/watches/{id}/runs", list_runs, allow_head=False),
]
