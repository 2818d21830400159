"""``sidecar schemas export [--check] [--out DIR]``: ``schemas/`` generated from the models.

Writes an OpenAPI 3.1 document of the whole local API (``openapi.json``: paths, bearer auth,
the error shape, SSE event payloads) and one JSON Schema file per stand-alone document
(handshake and error lines, notification events, the custom AG-UI events, interrupt/resume
payloads). Never edit the files by hand; ``--check`` fails when they are stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from sidecar import PROTOCOL, __version__

REF = "#/components/schemas/{model}"


def _params(query: type[BaseModel] | None, path: str) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{([^}]+)\}", path)
    ]
    if query is None:
        return params
    schema = query.model_json_schema(by_alias=True, ref_template=REF)
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        if any(p["name"] == name for p in params):
            continue
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the local API."""
    from sidecar.api.spec import ERROR_STATUSES, OPERATIONS, ErrorBody

    inputs = [(op.body, "validation") for op in OPERATIONS if op.body is not None]
    outputs: list[tuple[Any, str]] = [(op.response, "serialization") for op in OPERATIONS
                                      if isinstance(op.response, type) and issubclass(op.response, BaseModel)]
    events = [(e, "serialization") for op in OPERATIONS for e in op.events]
    keyed = {(id(model), mode): (model, mode) for model, mode in [*inputs, *outputs, *events, (ErrorBody, "serialization")]}
    refs, defs = models_json_schema(list(keyed.values()), by_alias=True, ref_template=REF)  # type: ignore[arg-type]
    defs = defs.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op.method, op.path),
                                 "parameters": _params(op.query, op.path)}
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(op.body, "validation")]}}}
        if op.events:
            content = {"text/event-stream": {
                "schema": {"type": "string", "description": "Server-Sent Events, LF framing, ': ping' heartbeats"},
                "x-event-data": [refs[(e, "serialization")] for e in op.events],
            }}
            entry["responses"] = {str(op.status): {"description": "event stream", "content": content}}
        else:
            schema = refs[(op.response, "serialization")] if op.response is not None else {}
            entry["responses"] = {str(op.status): {"description": "success", "content": {"application/json": {"schema": schema}}}}
        for status in ERROR_STATUSES:
            entry["responses"][str(status)] = {"$ref": "#/components/responses/Error"}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "sidecar local API", "version": __version__,
                 "description": f"Loopback API of the sidecar ({PROTOCOL}). Every request needs the bearer token "
                                "from the handshake and a Host of 127.0.0.1/localhost/[::1] with the port."},
        "servers": [{"url": "http://127.0.0.1:{port}", "variables": {"port": {"default": "0"}}}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {
                "schema": refs[(ErrorBody, "serialization")]}}}},
            "schemas": defs,
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[/{}]", path) if w and w != "v1"]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def documents() -> dict[str, dict[str, Any]]:
    """JSON Schema of each stand-alone document, by file stem."""
    from sidecar.api.spec import DOCUMENTS

    out = {}
    for stem, model in DOCUMENTS.items():
        schema = TypeAdapter(model).json_schema(by_alias=True, mode="serialization")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{stem}.json", **schema}
        out[stem] = schema
    return out


def render() -> dict[str, str]:
    """Every file of ``schemas/``: name → text (stable key order, LF, trailing newline)."""
    files = {"openapi.json": openapi(), **{f"{stem}.json": s for stem, s in documents().items()}}
    return {name: json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n" for name, doc in files.items()}


def export(out: Path, check: bool) -> list[str]:
    """Write (or with ``check`` compare) the files; returns the names that were stale."""
    stale = []
    wanted = render()
    for name, text in wanted.items():
        path = out / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(name)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    extra = sorted(p.name for p in out.glob("*.json") if p.name not in wanted) if out.exists() else []
    for name in extra:
        stale.append(name)
        if not check:
            (out / name).unlink()
    return stale


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``schemas export`` on the command line."""
    p = sub.add_parser("schemas", help="generated JSON Schema / OpenAPI of the local API")
    actions = p.add_subparsers(dest="action", required=True)
    e = actions.add_parser("export", help="write schemas/ from the models")
    e.add_argument("--out", type=Path, default=Path("schemas"), help="folder (default: ./schemas)")
    e.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is stale")
    e.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    stale = export(args.out, args.check)
    if args.check:
        if stale:
            print(f"stale in {args.out}: {', '.join(stale)} — run `sidecar schemas export`", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    print(f"{args.out}: wrote {len(stale)} file(s)" if stale else f"{args.out}: up to date")
    return 0
