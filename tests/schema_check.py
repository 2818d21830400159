"""Validation of real responses and events against the generated ``schemas/`` files.

The ``api`` fixture installs :func:`validating_middleware`, so every JSON response of every
in-process test is checked against ``schemas/openapi.json`` (success bodies against their
operation, errors against the error shape); SSE helpers check event payloads.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web
from aiohttp.typedefs import Handler

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
PROBLEMS = web.AppKey("schema_problems", list)


@cache
def openapi() -> dict[str, Any]:
    return json.loads((SCHEMAS / "openapi.json").read_text())


@cache
def document(stem: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{stem}.json").read_text())


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": openapi()["components"]})


def response_schema(method: str, path: str, status: int) -> dict[str, Any] | None:
    """The JSON schema of a response of the route template ``path``, or None if not JSON."""
    doc = openapi()
    op = doc["paths"].get(path, {}).get(method.lower())
    if op is None or str(status) not in op["responses"]:
        return doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"] if status >= 400 else None
    resp = op["responses"][str(status)]
    if "$ref" in resp:
        resp = doc["components"]["responses"]["Error"]
    content = resp.get("content", {}).get("application/json")
    return content["schema"] if content else None


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError when ``body`` does not fit the documented response."""
    schema = response_schema(method, path, status)
    if schema is None:
        raise AssertionError(f"{method} {path} answered {status}, which schemas/openapi.json does not document")
    _validator(schema).validate(body)


def route_template(method: str, path: str) -> str:
    """The documented path template a concrete request path matches (``/v1/tasks/{id}``), or
    the path itself when none does."""
    import re

    bare = path.split("?", 1)[0]
    for template, ops in openapi()["paths"].items():
        if method.lower() in ops and re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), bare):
            return str(template)
    return bare


def check_document(stem: str, data: Any) -> None:
    """Validate against a stand-alone schema file (e.g. ``events.change``)."""
    jsonschema.Draft202012Validator(document(stem)).validate(data)


@web.middleware
async def validating_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if isinstance(response, web.Response) and response.content_type == "application/json" and response.body:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        try:
            check_response(request.method, path, response.status, json.loads(bytes(response.body)))  # type: ignore[arg-type]
        except (jsonschema.ValidationError, AssertionError) as exc:
            request.app[PROBLEMS].append(f"{request.method} {path} {response.status}: {exc}")
    return response
