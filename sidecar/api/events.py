"""`GET /v1/events`: the notification stream (Server-Sent Events).

Events:

- ``change`` — one committed change-log entry, ``id:`` = its ``seq``; the stream is resumable with
  ``?after=SEQ`` or the ``Last-Event-ID`` header, and delivers every later entry exactly once,
  in order (backlog first, then live).
- transient events published by other parts (``ingest.progress``, ``run.status``, …), no id.

A comment line (``: ping``) is sent every heartbeat interval so the shell can detect a dead
connection. Framing is LF-only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sidecar.api.io import compact_json, read_query, sse_response
from sidecar.appstate import NOTIFICATIONS, STORE
from sidecar.errors import ValidationFailed
from sidecar.notify import CHANGED, CLOSED
from sidecar.store.db import ChangeEntry
from sidecar.store.models import MAX_INT64, ApiModel, Seq


class EventsQuery(ApiModel):
    after: Seq | None = None


class ChangeEvent(ApiModel):
    """Data of a ``change`` event (camelCase on the wire)."""

    seq: int
    event_id: str
    entity: str
    id: str
    op: str
    fields: dict[str, Any]
    hlc: str
    origin: str
    device_id: str

    @classmethod
    def of(cls, e: ChangeEntry) -> ChangeEvent:
        return cls(
            seq=e.seq,
            event_id=e.event_id,
            entity=e.entity,
            id=e.entity_id,
            op=e.op,
            fields=e.fields,
            hlc=e.hlc,
            origin=e.origin,
            device_id=e.device_id,
        )


def _resume_point(request: web.Request) -> int:
    query = read_query(request, EventsQuery)
    if query.after is not None:
        return query.after
    header = request.headers.get("Last-Event-ID", "").strip()
    if not header:
        return -1  # live only
    if not (header.isascii() and header.isdigit()) or int(header) > MAX_INT64:
        raise ValidationFailed.field("Last-Event-ID", "must be a change sequence number")
    return int(header)


async def events(request: web.Request) -> web.StreamResponse:
    """Stream notifications until the client goes away or the server shuts down."""
    after = _resume_point(request)
    store = request.app[STORE]
    hub = request.app[NOTIFICATIONS]
    sub = hub.subscribe()  # before reading the backlog, so nothing committed meanwhile is missed
    try:
        last = after if after >= 0 else await store.last_seq()
        resp = sse_response(request)
        await resp.prepare(request)

        async def send_changes() -> None:
            nonlocal last
            while True:
                batch = await store.changes_after(last)
                for entry in batch:
                    await resp.send(compact_json(ChangeEvent.of(entry).model_dump(by_alias=True)), id=str(entry.seq), event="change")
                    last = entry.seq
                if len(batch) < 1000:
                    return

        await send_changes()
        while True:
            kind, data = await sub.get()
            if kind == CLOSED:
                break
            if kind == CHANGED:
                await send_changes()
            else:
                await resp.send(compact_json(data), event=kind)
        return resp
    finally:
        hub.unsubscribe(sub)


routes = [web.get("/v1/events", events, allow_head=False)]
