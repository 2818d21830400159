"""Offline means offline: the model layer contacts only the configured model server.

A fresh interpreter (LiteLLM not yet imported, no LITELLM_* variables) imports the model layer
and calls the fake server, with a ``socket.connect``/``socket.getaddrinfo`` audit hook installed
first. Only 127.0.0.1:<fake port> may be contacted, LiteLLM must use its bundled price list, and
nothing but the probe's own line may reach stdout (the sidecar's stdout is the handshake channel).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.llm_server import ErrorReply, FakeLLMServer, ToolCallSpec, ToolCallsReply

ROOT = Path(__file__).resolve().parents[2]


async def test_only_the_configured_model_server_is_contacted(fake_llm: FakeLLMServer) -> None:
    # No usage from the server: LiteLLM then counts tokens itself (tiktoken), which must not
    # download an encoding either.
    fake_llm.push(ToolCallsReply(calls=[ToolCallSpec(name="add")], send_usage=False), ErrorReply(status=401))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM")}
    env.pop("OPENAI_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.agent._offline_probe",
        fake_llm.base_url,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]

    lines = out.decode().splitlines()
    assert len(lines) == 1, f"stdout must hold only the probe's line, got: {lines[:-1]}"
    result = json.loads(lines[0])
    assert result["blocks"] == ["tool_call"], "tool calling works (LiteLLM's MCP import is skipped)"
    assert result["error"] == "model_auth"

    connects = {(host, port) for kind, host, port in result["events"] if kind == "connect"}
    assert connects == {("127.0.0.1", fake_llm.port)}, connects
    looked_up = {host for kind, host, _ in result["events"] if kind == "getaddrinfo"}
    assert looked_up <= {"127.0.0.1"}, f"name lookups for other hosts: {looked_up}"

    cost_map = result["cost_map"]
    assert cost_map["source"] == "local" and cost_map["is_env_forced"] is True and cost_map["url"] is None
    assert "Give Feedback" not in err.decode()
