"""The JavaScript clients' tests (``bundling/shell-client/test/*.test.mjs``), run by pytest.

They spawn the real sidecar and the scripted fake LLM and check, with the official AG-UI client
(``@ag-ui/client``), that the agent runs conform to AG-UI 1.0, and that the reference shell
client starts, talks to and stops the sidecar. Node's own test runner does the work; this wrapper
runs it with this interpreter (``SIDECAR_PYTHON``) and fails with Node's output.

Skipped, with the reason, when ``node`` is not installed or the npm packages are not
(``cd bundling/shell-client && npm ci``; ``.ci/run`` does it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
CLIENT_DIR = REPO / "bundling" / "shell-client"
NODE_TIMEOUT_S = 150
_OUTPUT_TAIL = 20_000


def _tail(text: str) -> str:
    return text if len(text) <= _OUTPUT_TAIL else "…" + text[-_OUTPUT_TAIL:]


def test_node_client_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript client tests need Node >= 18.17")
    if not (CLIENT_DIR / "node_modules" / "@ag-ui" / "client").is_dir():
        pytest.skip(f"npm packages missing: run `npm ci` in {CLIENT_DIR.relative_to(REPO)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env["SIDECAR_PYTHON"] = sys.executable
    env.pop("NODE_OPTIONS", None)
    try:
        proc = subprocess.run(
            [node, "--test", "--test-reporter=spec", "bundling/shell-client/test/"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=NODE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"node --test did not finish within {NODE_TIMEOUT_S}s\n--- stdout\n{_tail(out)}\n--- stderr\n{_tail(err)}")
    assert proc.returncode == 0, (
        f"node --test exited {proc.returncode}\n--- stdout\n{_tail(proc.stdout)}\n--- stderr\n{_tail(proc.stderr)}"
    )
