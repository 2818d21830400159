"""`GET /v1/ingest/files`: the per-file status of folder extraction (DESIGN §5).

Query: ``status`` (``pending|processing|done|skipped|error``), ``watchId``, ``limit``,
``offset``. Answer: ``{"items": [file…], "total", "limit", "offset", "counts": {status: n}}``
where a file is :class:`sidecar.ingest.queue.FileRow` (``reason`` says why a file was skipped
or failed) and ``counts`` are per status for the same ``watchId`` filter.
"""

from __future__ import annotations

from aiohttp import web

from sidecar.api.io import dump, json_ok, read_query
from sidecar.appstate import INGEST
from sidecar.ingest.queue import FileQuery


async def list_files(request: web.Request) -> web.Response:
    query = read_query(request, FileQuery)
    queue = request.app[INGEST].pipeline.queue
    items, total = await queue.list(query)
    counts = await queue.counts(query.watch_id)
    return json_ok({"items": [dump(f) for f in items], "total": total, "limit": query.limit,
                    "offset": query.offset, "counts": counts})


routes = [web.get("/v1/ingest/files", list_files, allow_head=False)]
