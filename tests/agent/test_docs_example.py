"""The minimal example in docs/agentscope-notes.md runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agentscope_notes_example_runs(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "agentscope-notes.md").read_text(encoding="utf-8")
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "TOOL_RESULT_TEXT_DELTA 2 + 3 = 5" in lines
    assert lines[-1] == "resumed run ended: completed"
