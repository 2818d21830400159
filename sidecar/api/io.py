"""Reading request bodies and queries into models, and writing JSON responses.

The one place that turns HTTP input into validated models: malformed JSON → 400, JSON that
breaks the model → 422 naming the offending fields (camelCase), oversized → 413.

Strict, as DESIGN §2 has it: field names are the camelCase aliases only (no snake_case
spellings), body values are taken in strict mode (``"123"`` and ``true`` are not numbers), a
query key may appear once, and a body that does not match its ``Content-Encoding`` is a 400.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
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
    except (HttpProcessingError, RequestPayloadError):
        raise BadRequest("the request body could not be decoded (does it match its Content-Encoding?)",
                         code="malformed_body") from None
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ValidationFailed.field("(body)", f"nested deeper than {MAX_JSON_DEPTH} levels", "too_deep")
    return data


#: Deepest nesting of arrays and objects accepted in a request body.
MAX_JSON_DEPTH = 32


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), computed without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        stack.extend((c, level + 1) for c in children)
    return deepest


async def read_body(request: web.Request, model: type[M], **overrides: Any) -> M:
    """The JSON body validated against ``model``, with ``overrides`` (e.g. a parent id from the
    path) taking precedence over body fields. Raises BadRequest (400) or ValidationFailed (422)."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed.field("(body)", "expected a JSON object", "object_type")
    data.update(overrides)
    try:
        return model.model_validate(data, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None


def read_query(request: web.Request, model: type[M], **extra: Any) -> M:
    """Query-string parameters validated against ``model`` (camelCase names; a repeated key is a 422)."""
    params: dict[str, Any] = {}
    for k, v in request.query.items():
        if k in params:
            raise ValidationFailed.field(k, "given more than once", "duplicate_parameter")
        params[k] = v
    params.update(extra)
    try:
        return model.model_validate(params, by_alias=True, by_name=False)
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
