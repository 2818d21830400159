"""``sidecar sync status|now``, ``sidecar backup verify`` and the doctor's sync line, as real commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sidecar.sync import backup
from sidecar.sync.keys import Keychain, SyncKey
from sidecar.sync.settings import SyncSettings, save
from tests.sync.conftest import CLOUD_TOKEN, REPO, Cloud
from tests.sync.harness import open_device


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    full.update({"PYTHON_KEYRING_BACKEND": "tests.fakes.memory_keyring.MemoryKeyring", "PYTHONPATH": str(REPO),
                 **(env or {})})
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=120)


async def test_sync_now_status_verify_and_doctor(tmp_path: Path, cloud_process: Cloud) -> None:
    chain = Keychain.of(SyncKey.generate())
    dev = await open_device(tmp_path / "d", cloud_process.base, chain, CLOUD_TOKEN)
    await dev.repo.create("notes", {"title": "from the cli"})
    await save(dev.store, SyncSettings(enabled=True, api_base=cloud_process.base))
    made = await backup.create(dev.store, chain, tmp_path / "out")
    await dev.close()
    data = str(tmp_path / "d")
    env = {"SIDECAR_SECRET_CLOUD_TOKEN": CLOUD_TOKEN, "SIDECAR_SECRET_SYNC_KEY": chain.current_key.recovery_words}

    before = _run("sync", "status", "--data-dir", data, "--json")
    assert before.returncode == 0 and json.loads(before.stdout)["pendingEvents"] == 1
    now = _run("sync", "now", "--data-dir", data, "--json", env=env)
    assert now.returncode == 0, now.stderr
    assert json.loads(now.stdout)["state"] == "online" and cloud_process.stats()["records"] == 1
    after = json.loads(_run("sync", "status", "--data-dir", data, "--json").stdout)
    assert after["pendingEvents"] == 0 and after["lastPushAt"]

    ok = _run("backup", "verify", str(made.path), env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["rows"]["notes"] == 1
    bad = tmp_path / "bad.scbk"
    bad.write_bytes(made.path.read_bytes()[:-30])
    refused = _run("backup", "verify", str(bad), env=env)
    assert refused.returncode == 1 and "cannot be used" in refused.stderr
    words = tmp_path / "words.txt"
    words.write_text(SyncKey.generate().recovery_words)
    other = _run("backup", "verify", str(made.path), "--recovery-key-file", str(words))
    assert other.returncode == 1 and "sealed with key" in other.stderr

    doctor = _run("doctor", "--data-dir", data, "--json", "--no-model-probe")
    line = next(c for c in json.loads(doctor.stdout) if c["name"] == "sync")
    assert line["detail"].startswith("enabled") and "0 event(s) to push" in line["detail"]
