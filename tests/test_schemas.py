"""schemas/ is generated from the models, complete, current, and what the API really answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from pydantic import Field

from sidecar import schemas
from sidecar.api import spec
from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.store import models as m
from tests.schema_check import SCHEMAS, check_document

REPO = Path(__file__).resolve().parents[1]


def test_committed_schemas_are_current() -> None:
    proc = subprocess.run([sys.executable, "-m", "sidecar", "schemas", "export", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_changed_model_field_makes_the_check_fail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, text in schemas.render().items():
        (tmp_path / name).write_text(text)
    assert schemas.export(tmp_path, check=True) == []

    class TaskCreateWithEstimate(m.TaskCreate):
        estimate_minutes: int | None = Field(default=None, ge=0)

    ops = [spec.Operation(o.method, o.path, o.summary, o.response, o.status,
                          TaskCreateWithEstimate if o.body is m.TaskCreate else o.body, o.query, o.events)
           for o in spec.OPERATIONS]
    monkeypatch.setattr(spec, "OPERATIONS", ops)
    assert schemas.export(tmp_path, check=True) == ["openapi.json"]
    proc_stale = schemas.export(tmp_path, check=False)
    assert proc_stale == ["openapi.json"] and "estimateMinutes" in (tmp_path / "openapi.json").read_text()


def test_every_route_is_described_and_every_description_is_a_route(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, token="t" * 40))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    described = {(o.method, o.path) for o in spec.OPERATIONS}
    assert routes == described, {"undocumented": routes - described, "no such route": described - routes}


def test_handshake_example_and_error_line_validate() -> None:
    check_document("handshake.ready", {"event": "ready", "protocol": "sidecar/1", "port": 5000, "token": "x",
                                       "pid": 1, "instance": "u", "version": "0.1.0"})
    check_document("handshake.error", {"event": "error", "code": "already_running", "message": "m"})
    with pytest.raises(jsonschema.ValidationError):
        check_document("handshake.ready", {"event": "ready", "port": "nope"})


def test_schema_files_are_json_schema_2020_12() -> None:
    import json

    for path in SCHEMAS.glob("*.json"):
        doc = json.loads(path.read_text())
        if path.name != "openapi.json":
            jsonschema.Draft202012Validator.check_schema(doc)
        else:
            assert doc["openapi"] == "3.1.0" and doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
