"""``sidecar ingest PATH... [--data-dir DIR] [--llm]`` as a real process: the README's main job."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from sidecar.agent.history import History
from sidecar.store.db import Store
from tests.fakes.llm_server import FakeLLMServer, TextReply
from tests.ingest.conftest import encrypted_pdf

ROOT = Path(__file__).resolve().parents[2]
INBOX = ROOT / "examples" / "inbox"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar", "ingest", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TZ": "UTC"})


def test_examples_inbox_on_a_fresh_data_dir(tmp_path: Path) -> None:
    first = run_cli(str(INBOX), "--data-dir", "./demo-data", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    for expected in ("Draft the support rota for weekends", "Kettle demo for the tea shop owners",
                     "March at the Lakeside Library", "inbox/team-calendar.ics", "milestone", "note"):
        assert expected in out, out
    assert "19 items (19 new) from 6 files" in out and "files: done 6, error 0" in out
    assert "6/6" in first.stderr, "a progress bar on stderr"
    assert (tmp_path / "demo-data" / "sidecar.db").exists()

    again = run_cli(str(INBOX), "--data-dir", "./demo-data", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "19 items (0 new) from 6 files" in again.stdout, "nothing is extracted twice"


def test_failed_files_are_listed_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(INBOX, folder)
    (folder / "locked.pdf").write_bytes(encrypted_pdf("pw"))
    (folder / "junk.md").write_bytes(bytes(range(256)) * 16)
    result = run_cli(str(folder), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "files: done 6, error 2" in result.stdout
    assert "error: mixed/locked.pdf: encrypted PDF" in result.stdout
    assert "error: mixed/junk.md: binary content" in result.stdout


def test_usage_errors_and_a_busy_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file.md").write_text("x")
    bad = run_cli(str(tmp_path / "file.md"), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert bad.returncode == 2 and "is not a folder" in bad.stderr
    (tmp_path / "d").mkdir()
    with FileLock(str(tmp_path / "d" / "sidecar.lock"), timeout=0):
        busy = run_cli(str(INBOX), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert busy.returncode == 3 and "another sidecar is using" in busy.stderr


async def test_llm_flag_uses_the_configured_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "call.md").write_text("Call with Ana: she will send the contract on 2026-05-04.\n")
    async with FakeLLMServer() as fake:
        fake.push(TextReply(stream=False, text=json.dumps({"items": [
            {"type": "task", "title": "Send the contract", "dueDate": "2026-05-04", "assignees": ["Ana"]}]})))
        store = await Store.open(data / "sidecar.db")
        await History(store).put_setting("model", {"model": "openai/fake-model", "apiBase": fake.base_url,
                                                   "maxRetries": 0})
        await store.close()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", "ingest", str(folder), "--data-dir", str(data), "--llm",
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "Send the contract" in text and "2026-05-04" in text and "1 items (1 new)" in text, text
    assert len(fake.chat_requests) == 1 and "tools" not in fake.chat_requests[0].body
