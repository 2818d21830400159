"""A property-based fuzzer over every operation of ``schemas/openapi.json`` (schemathesis)
against the real spawned ``sidecar serve`` process (issue 9). The bar: no server error.

Each generated request (valid and invalid parameters, bodies and headers, per schemathesis'
``positive`` and ``negative`` modes) is sent with the token. A response must not be a 500, a
bare aiohttp page or a broken stream: every 4xx/5xx is the one JSON error shape, and the only
5xx allowed are the documented ``503 unavailable`` kinds (a component the request needs is not
configured, e.g. no agent model) — never ``internal``. Event-stream answers are checked from
their status and headers and then closed (they would stream forever).

``SIDECAR_FUZZ_EXAMPLES`` sets the examples per operation (default 25: about 1,300 requests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from tests.e2e.conftest import Sidecar, spawn, stop_all

SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "schemas" / "openapi.json")
EXAMPLES = int(os.environ.get("SIDECAR_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    base = tmp_path_factory.mktemp("fuzz")
    sc = spawn(base / "data", log_dir=base / "logs")
    yield sc
    stop_all([sc])
    bad = [r for r in sc.log_records() if r.get("level") in ("error", "critical", "ERROR", "CRITICAL")]
    assert not bad, f"the fuzzer caused errors in the sidecar log: {bad[:3]}"


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: Any, live: Sidecar) -> None:
    kwargs = case.as_transport_kwargs(base_url=f"http://127.0.0.1:{live.port}",
                                      headers={"Authorization": f"Bearer {live.token}"})
    kwargs.pop("timeout", None)
    # generous: the first settings change may load LiteLLM (seconds on a busy machine); a hang still fails
    with requests.request(**kwargs, stream=True, timeout=60) as resp:
        ctype = resp.headers.get("Content-Type", "")
        if ctype.startswith("text/event-stream"):
            assert resp.status_code == 200, (case.as_curl_command(), resp.status_code)
            return
        body = resp.content
    where = f"{case.method} {case.formatted_path} → {resp.status_code}: {body[:300]!r}"
    assert resp.status_code != 500, where
    if resp.status_code >= 400:
        assert ctype.startswith("application/json"), where
        err = json.loads(body)["error"]
        assert set(err) == {"code", "message", "detail"} and err["code"] != "internal", where
    if resp.status_code >= 500:
        assert resp.status_code in (503, 507), where
