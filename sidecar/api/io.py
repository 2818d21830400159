"""Reading request bodies and queries into models, and writing JSON responses.

The one place that turns HTTP input into validated models: malformed JSON → 400, JSON that
breaks the model → 422 naming the offending fields (camelCase), oversized → 413.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from aiohttp_sse import EventSourceResponse
from pydantic import BaseModel, ValidationError

from sidecar.appstate import SETTINGS
from sidecar.errors import BadRequest, PayloadTooLarge, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request) -> Any:
    """The request body parsed as strict JSON (no NaN/Infinity). Raises BadRequest/PayloadTooLarge."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        raise PayloadTooLarge(f"request body over {limit} bytes", detail={"limit": limit}) from None
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None


async def read_body(request: web.Request, model: type[M], **overrides: Any) -> M:
    """The JSON body validated against ``model``, with ``overrides`` (e.g. a parent id from the
    path) taking precedence over body fields. Raises BadRequest (400) or ValidationFailed (422)."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed.field("(body)", "expected a JSON object", "object_type")
    data.update(overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None


def read_query(request: web.Request, model: type[M], **extra: Any) -> M:
    """Query-string parameters validated against ``model`` (repeated keys: last wins)."""
    params: dict[str, Any] = {k: v for k, v in request.query.items()}
    params.update(extra)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None


def compact_json(data: Any) -> str:
    """JSON without spaces (SSE ``data:`` lines)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def sse_response(request: web.Request) -> EventSourceResponse:
    """The one kind of event stream: LF framing, ``: ping`` every heartbeat interval, any method
    (the routes decide which)."""
    return EventSourceResponse(sep="\n", ping_interval=request.app[SETTINGS].heartbeat_s, allow_all_methods=True)


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as the API's camelCase JSON object."""
    return model.model_dump(mode="json", by_alias=True)


def json_ok(data: Any, status: int = 200) -> web.Response:
    """A JSON response; models are dumped by alias."""
    if isinstance(data, BaseModel):
        data = dump(data)
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))
