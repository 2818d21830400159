"""``sidecar search`` and ``sidecar reindex`` as real processes on a real data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sidecar.store.db import Store
from sidecar.store.repository import Repository

ROOT = Path(__file__).resolve().parents[2]


def sidecar(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env=env)


async def test_search_and_reindex_from_the_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = await Store.open(data / "sidecar.db")
    repo = Repository(store)
    note = await repo.create("notes", {"title": "Kestrel survey", "content": "Two kestrels nest by the quarry."})
    await repo.create("notes", {"title": "Shopping", "content": "bread"})
    await store.close()
    proc = sidecar("search", "kestrels quarry", "--data-dir", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["items"][0]["entityId"] == note.id and res["mode"] == "hybrid"
    proc = sidecar("reindex", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    assert "reindexed: 2 chunks" in proc.stdout
    proc = sidecar("search", "quarry", "--data-dir", str(data), "--kind", "note")
    assert proc.returncode == 0, proc.stderr
    assert "Kestrel survey" in proc.stdout and note.id in proc.stdout
    assert "Shopping" not in proc.stdout
    proc = sidecar("doctor", "--data-dir", str(data), "--no-model-probe")
    line = next(x for x in proc.stdout.splitlines() if "index" in x and "chunks" in x)
    assert "2 chunks" in line and "0 not in the full-text index" in line and "wordllama" in line, line
    assert "0 change(s) behind" in line, line
    proc = sidecar("search", "x", "--kind", "email", "--data-dir", str(data))
    assert proc.returncode == 2  # argparse refuses an unknown kind
