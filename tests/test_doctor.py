"""`sidecar doctor` tells what works, and fails only when something essential is broken."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fakes.llm_server import FakeLLMServer, TextReply

REPO = Path(__file__).resolve().parents[1]


async def _doctor(*args: str, keyring_backend: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env["PYTHONPATH"] = str(REPO)
    if keyring_backend:
        env["PYTHON_KEYRING_BACKEND"] = keyring_backend
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "sidecar", "doctor", *args, cwd=REPO, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _configure(data_dir: Path, base_url: str) -> None:
    from sidecar.agent.history import History
    from sidecar.store.db import Store
    from sidecar.store.repository import Repository

    store = await Store.open(data_dir / "sidecar.db")
    await History(store).put_setting("model", {"model": "openai/fake-model", "api_base": base_url, "max_retries": 0})
    await Repository(store).create("tasks", {"title": "one"})
    await store.close()


async def test_fresh_machine_passes_with_warnings(tmp_path: Path) -> None:
    code, out = await _doctor("--data-dir", str(tmp_path / "d"), "--no-model-probe")
    assert code == 0, out
    for name in ("runtime", "data dir", "database", "vectors", "secrets", "model", "watches", "sync"):
        assert name in out
    assert "essential checks passed" in out and "no model configured" in out


async def test_configured_model_answers_and_keyring_round_trips(tmp_path: Path) -> None:
    async with FakeLLMServer() as fake:
        fake.default = TextReply(text="ok")
        await _configure(tmp_path, fake.base_url)
        code, out = await _doctor("--data-dir", str(tmp_path), "--json",
                                  keyring_backend="tests.fakes.memory_keyring.MemoryKeyring")
    assert code == 0, out
    checks = {c["name"]: c for c in json.loads(out[out.index("["):])}
    assert checks["model"]["level"] == "ok" and "answers" in checks["model"]["detail"]
    assert checks["secrets"]["level"] == "ok" and "round-trips" in checks["secrets"]["detail"]
    assert checks["database"]["level"] == "ok" and "1 tasks" in checks["database"]["detail"]


async def test_unreachable_model_is_a_warning_with_its_code(tmp_path: Path) -> None:
    await _configure(tmp_path, "http://127.0.0.1:9/v1")
    code, out = await _doctor("--data-dir", str(tmp_path))
    assert code == 0, out
    assert "does not answer: [model_unavailable]" in out


async def test_broken_essentials_exit_non_zero(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, out = await _doctor("--data-dir", str(not_a_dir), "--no-model-probe")
    assert code == 1 and "FAIL  data dir" in out, out
    garbage = tmp_path / "g"
    garbage.mkdir()
    (garbage / "sidecar.db").write_bytes(b"this is not sqlite" * 100)
    code, out = await _doctor("--data-dir", str(garbage), "--no-model-probe")
    assert code == 1 and "FAIL  database" in out, out
