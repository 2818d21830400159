"""Offline means offline (DESIGN §4): a real sidecar process, with the whole agent stack loaded
and a tool-using run against a local model, connects to nothing but that model's address.

Every ``socket.connect`` and ``getaddrinfo`` in the spawned process is recorded by an audit
hook installed from ``sitecustomize`` before any sidecar or library code runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import SpawnFn

REPO = Path(__file__).resolve().parents[2]

SITECUSTOMIZE = textwrap.dedent(
    """
    import json, os, socket, sys
    _log = os.environ["SIDECAR_TEST_NET_LOG"]

    def _audit(event, args):
        if event == "socket.connect":
            sock, address = args[0], args[1]
            family = getattr(sock, "family", None)
            with open(_log, "a") as f:
                f.write(json.dumps({"event": "connect", "family": int(family) if family is not None else None,
                                    "address": list(address) if isinstance(address, tuple) else str(address)}) + "\\n")
        elif event == "socket.getaddrinfo":
            with open(_log, "a") as f:
                f.write(json.dumps({"event": "getaddrinfo", "host": str(args[0]), "port": str(args[1])}) + "\\n")

    sys.addaudithook(_audit)
    """
)


@pytest.fixture
def fake_model(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"queue": [
        {"type": "tool_calls", "calls": [{"name": "create_task", "arguments": {"title": "Offline task", "due_date": "2026-12-03"}}]},
        {"type": "text", "text": "Created <task>[x]</task>."},
    ]}))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm_server", "--script", str(script)],
                            cwd=REPO, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    try:
        yield f"http://127.0.0.1:{line['port']}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.e2e
def test_agent_run_contacts_only_the_configured_model(spawn_sidecar: SpawnFn, tmp_path: Path, fake_model: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    net_log = tmp_path / "net.jsonl"
    sc = spawn_sidecar(env={"PYTHONPATH": f"{site}:{REPO}", "SIDECAR_TEST_NET_LOG": str(net_log)})
    sc.wait_ready(components=["agent"], timeout=60)
    sc.ok("PUT", "/v1/settings/model", {"model": "openai/fake-model", "apiBase": fake_model, "contextSize": 131072})
    body = {"threadId": "offline", "runId": str(uuid.uuid4()), "state": None, "tools": [], "context": [],
            "forwardedProps": {"mode": "home"}, "messages": [{"id": str(uuid.uuid4()), "role": "user", "content": "add it"}]}
    with sc.stream("POST", "/v1/agent/runs", body, timeout=60) as events:
        kinds = [ev.json["type"] for ev in events]
    assert kinds[-1] == "RUN_FINISHED", kinds
    assert sc.ok("GET", "/v1/tasks?q=Offline")["total"] == 1
    assert sc.stop() == 0

    records = [json.loads(line) for line in net_log.read_text().splitlines()]
    port = int(fake_model.split(":")[2].split("/")[0])
    connects = [r for r in records if r["event"] == "connect"]
    assert connects, "the audit hook saw no connection at all: it is not installed"
    network = [r for r in connects if isinstance(r["address"], list)]
    assert network and all(r["address"][:2] == ["127.0.0.1", port] for r in network), network
    lookups = {r["host"] for r in records if r["event"] == "getaddrinfo"}
    assert lookups <= {"127.0.0.1", "localhost", "None"}, lookups
