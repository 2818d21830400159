"""Agent routes (AG-UI 1.0 over SSE) and model settings (DESIGN §4).

- ``POST /v1/agent/runs`` — body: AG-UI ``RunAgentInput``; answer: ``text/event-stream`` of AG-UI
  events (official encoder, LF framing, ``: ping`` heartbeats). 409 ``run_active`` (with
  ``detail.runId``) when the thread already runs.
- ``POST /v1/agent/runs/{runId}/cancel`` → ``{"runId", "cancelled": bool}``.
- ``GET /v1/agent/threads`` → ``{"items": [...], "total", "limit", "offset"}``.
- ``GET /v1/agent/threads/{threadId}/history`` → ``{"threadId", "messages": [...], "runs": [...]}``.
- ``GET /v1/agent/threads/{threadId}/events?after=SEQ`` — stored events (``id:`` = seq), then the
  live tail while a run is active.
- ``GET /v1/settings/model`` → ``{"configured", "settings", "apiKeySet"}``; ``PUT`` the same
  settings body (``ModelSettings``, camelCase).
- ``GET /v1/settings/agent-prompts`` → ``AgentPrompts`` (``{home?, floating?: {tasks?, notes?,
  projects?, timelines?}, extraction?}``); ``PUT`` replaces them (422 over the length bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from aiohttp import web
from pydantic import Field, ValidationError

from sidecar.agent.readiness import refresh_readiness
from sidecar.agent.runs import MODEL_SETTING_KEY
from sidecar.agent.settings import AGENT_PROMPTS_KEY, AgentPrompts, ModelSettings
from sidecar.api.io import compact_json, dump, json_ok, read_body, read_json, read_query, sse_response
from sidecar.appstate import AGENT, HISTORY, SECRETS
from sidecar.background import foreground
from sidecar.errors import NotFound, ValidationFailed
from sidecar.store.models import ApiModel, Offset, Seq


class ThreadsQuery(ApiModel):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: Offset = 0


class EventsAfterQuery(ApiModel):
    after: Seq = 0


_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def start_run(request: web.Request) -> web.StreamResponse:
    """Run the agent; stream its AG-UI events. The run goes on if the client disconnects."""
    from ag_ui.core import RunAgentInput  # imported on first use: its models are slow to build

    data = await read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed.field("(body)", "expected a RunAgentInput object", "object_type")
    for name, field in RunAgentInput.model_fields.items():  # camelCase only (DESIGN §2)
        if field.alias and field.alias != name and name in data:
            raise ValidationFailed.field(name, f"unknown field; the API spells it {field.alias}", "extra_forbidden")
    for key in ("threadId", "runId"):  # bounded ids, like every id of the API
        if not isinstance(data.get(key), str) or not _ID_RE.match(data[key]):
            raise ValidationFailed.field(key, "must be 1-64 letters, digits, '-' or '_'", "string_pattern_mismatch")
    try:
        run_input = RunAgentInput.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None
    with contextlib.ExitStack() as first_events:
        # Until its first events are out, the run has the CPU over start-up's background loading.
        first_events.enter_context(foreground())
        handle, queue = await request.app[AGENT].start(run_input)
        resp = sse_response(request)
        try:
            await resp.prepare(request)
            ended = False
            while not ended:
                ended = await _relay_queued(resp, queue)
                first_events.close()
        except ConnectionResetError:
            pass  # the client went away; the run itself continues and is stored
        finally:
            handle.subscribers.discard(queue)
    return resp


async def _relay_queued(resp: web.StreamResponse, queue: asyncio.Queue[Any]) -> bool:
    """Wait for the run's next event, then write it and everything already queued behind it in
    one write (fewer syscalls when the model is fast). Returns True once the run has ended."""
    frames = []
    item = await queue.get()
    while item is not None:
        frames.append(item.sse)
        if queue.empty():
            break
        item = queue.get_nowait()
    if frames:
        await resp.write("".join(frames).encode())
    return item is None


async def cancel_run(request: web.Request) -> web.Response:
    run_id = request.match_info["runId"]
    cancelled = await request.app[AGENT].cancel(run_id)
    return json_ok({"runId": run_id, "cancelled": cancelled})


async def list_threads(request: web.Request) -> web.Response:
    q = read_query(request, ThreadsQuery)
    items, total = await request.app[HISTORY].list_threads(q.limit, q.offset)
    return json_ok({"items": [dump(i) for i in items],
                    "total": total, "limit": q.limit, "offset": q.offset})


async def _thread_or_404(request: web.Request) -> str:
    thread_id = request.match_info["threadId"]
    if not await request.app[HISTORY].thread_exists(thread_id):
        raise NotFound(f"no thread with id {thread_id}")
    return thread_id


async def thread_history(request: web.Request) -> web.Response:
    thread_id = await _thread_or_404(request)
    history = request.app[HISTORY]
    usage = {"model", "input_tokens", "output_tokens", "cost", "latency_ms"}
    messages = [m.message | {"usage": m.model_dump(by_alias=True, include=usage)} if m.role == "assistant" else m.message
                for m in await history.messages(thread_id)]
    runs = [dump(r) for r in await history.runs(thread_id)]
    return json_ok({"threadId": thread_id, "messages": messages, "runs": runs})


async def thread_events(request: web.Request) -> web.StreamResponse:
    """Stored events after ``after``, then the live tail of an active run; ends when none runs."""
    last = read_query(request, EventsAfterQuery).after  # validated before anything else
    thread_id = await _thread_or_404(request)
    agent, history = request.app[AGENT], request.app[HISTORY]
    resp = sse_response(request)
    await resp.prepare(request)
    while True:
        handle = agent.active_run(thread_id)
        waiter = handle.flushed if handle is not None else None
        for ev in await history.events_after(thread_id, last):
            await resp.send(compact_json(ev.event), id=str(ev.seq))
            last = ev.seq
        if handle is None:
            break
        if waiter is not None:
            waits = [asyncio.ensure_future(waiter.wait()), asyncio.ensure_future(handle.done.wait())]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:  # a new pair is made each round; do not leave the other behind
                w.cancel()
    return resp


async def get_model_settings(request: web.Request) -> web.Response:
    settings = await request.app[AGENT].model_settings()
    key_set = False
    if settings is not None and settings.api_key_secret:
        key_set = await request.app[SECRETS].get(settings.api_key_secret) is not None
    return json_ok({"configured": settings is not None,
                    "settings": settings.model_dump(mode="json", by_alias=True) if settings else None,
                    "apiKeySet": key_set})


async def put_model_settings(request: web.Request) -> web.Response:
    body = await read_body(request, ModelSettings)
    await request.app[HISTORY].put_setting(MODEL_SETTING_KEY, body.model_dump(mode="json"))
    await refresh_readiness(request.app)
    return await get_model_settings(request)


async def get_agent_prompts(request: web.Request) -> web.Response:
    raw = await request.app[HISTORY].get_setting(AGENT_PROMPTS_KEY)
    try:
        prompts = AgentPrompts.model_validate(raw or {})
    except ValidationError:
        prompts = AgentPrompts()
    return json_ok(prompts.model_dump(mode="json", by_alias=True, exclude_none=True))


async def put_agent_prompts(request: web.Request) -> web.Response:
    body = await read_body(request, AgentPrompts)
    await request.app[HISTORY].put_setting(AGENT_PROMPTS_KEY, body.model_dump(mode="json", exclude_none=True))
    return await get_agent_prompts(request)


routes = [
    web.post("/v1/agent/runs", start_run),
    web.post("/v1/agent/runs/{runId}/cancel", cancel_run),
    web.get("/v1/agent/threads", list_threads, allow_head=False),
    web.get("/v1/agent/threads/{threadId}/history", thread_history, allow_head=False),
    web.get("/v1/agent/threads/{threadId}/events", thread_events, allow_head=False),
    web.get("/v1/settings/model", get_model_settings, allow_head=False),
    web.put("/v1/settings/model", put_model_settings),
    web.get("/v1/settings/agent-prompts", get_agent_prompts, allow_head=False),
    web.put("/v1/settings/agent-prompts", put_agent_prompts),
]
