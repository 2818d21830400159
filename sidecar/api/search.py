"""Search, embedder settings and memory routes (DESIGN §2, §6).

- ``GET /v1/search?q=&kind=&projectId=&dateFrom=&dateTo=&limit=&mode=`` →
  ``{"items": [{kind, entityId, title, snippet, highlights, score, projectId, date, source}],
  "mode": "hybrid" | "keyword" | "vector"}``; ``source`` is ``{path, start, end}`` for files
  (character offsets into the file's text), else null. The first search loads an idle index
  (and waits for it); 503 ``search_starting`` if it fails to load.
- ``GET /v1/settings/embedder`` → ``{settings, active: {table, embedder, dim}, building, problem}``;
  ``PUT`` an :class:`~sidecar.search.embedders.EmbedderSettings` body: answers at once; the
  embedder loads, the index re-embeds in the background and swaps when done (``changing``).
- ``GET /v1/memory?tier=`` → ``{"items": [MemoryItem]}`` (decrypted for the shell);
  ``PATCH /v1/memory/{id}`` (``{text?, confidence?}``); ``DELETE /v1/memory/{id}``;
  ``DELETE /v1/memory`` (forget everything) → ``{"deleted": n}``. 503 ``memory_unavailable``
  when there is no memory key.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from sidecar.api.io import dump, json_ok, read_body, read_query
from sidecar.appstate import SEARCH
from sidecar.search.embedders import EmbedderSettings
from sidecar.search.memory import MemoryPatch, MemoryQuery
from sidecar.store.models import ApiModel, EpochMs, Id

SearchKind = Literal["note", "task", "timeline", "project", "comment", "file"]


class SearchQuery(ApiModel):
    q: str = Field(min_length=1, max_length=1000)
    kind: SearchKind | None = None
    project_id: Id | None = None
    date_from: EpochMs | None = None
    date_to: EpochMs | None = None
    limit: int = Field(default=20, ge=1, le=100)
    mode: Literal["hybrid", "keyword", "vector"] | None = None


async def search(request: web.Request) -> web.Response:
    q = read_query(request, SearchQuery)
    items, mode = await request.app[SEARCH].search(q.q, kind=q.kind, project_id=q.project_id, date_from=q.date_from,
                                                   date_to=q.date_to, limit=q.limit, mode=q.mode)
    return json_ok({"items": items, "mode": mode})


async def get_embedder(request: web.Request) -> web.Response:
    return json_ok(request.app[SEARCH].status())


async def put_embedder(request: web.Request) -> web.Response:
    body = await read_body(request, EmbedderSettings)
    await request.app[SEARCH].set_embedder(body)
    return json_ok(request.app[SEARCH].status())


async def list_memory(request: web.Request) -> web.Response:
    q = read_query(request, MemoryQuery)
    items = await request.app[SEARCH].memory.entries(q.tier)
    return json_ok({"items": [dump(m) for m in items]})


async def patch_memory(request: web.Request) -> web.Response:
    body = await read_body(request, MemoryPatch)
    return json_ok(await request.app[SEARCH].memory.patch(request.match_info["id"], body))


async def delete_memory(request: web.Request) -> web.Response:
    memory_id = request.match_info["id"]
    await request.app[SEARCH].memory.delete(memory_id)
    return json_ok({"deleted": memory_id})


async def forget_all(request: web.Request) -> web.Response:
    n = await request.app[SEARCH].memory.forget_all()
    return json_ok({"deleted": n})


routes = [
    web.get("/v1/search", search, allow_head=False),
    web.get("/v1/settings/embedder", get_embedder, allow_head=False),
    web.put("/v1/settings/embedder", put_embedder),
    web.get("/v1/memory", list_memory, allow_head=False),
    web.delete("/v1/memory", forget_all),
    web.patch("/v1/memory/{id}", patch_memory),
    web.delete("/v1/memory/{id}", delete_memory),
]
