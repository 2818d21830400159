"""The lock (``uv.lock``) is the one source of installed versions: it must agree with
``pyproject.toml``, and a dependency added to ``pyproject.toml`` without re-locking must fail.

``bash tools/install`` (the README's quick start and ``.ci/run``) puts uv in ``.tools/uv`` and
installs with ``uv sync --locked``; these tests use that same uv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    local = ROOT / ".tools" / "uv" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    assert found, "uv is not installed: run `bash tools/install --extra test` (it installs uv into .tools/uv)"
    return found


def _lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    return subprocess.run([_uv(), "lock", "--check", "--python", "python3", "--project", str(project)],
                          capture_output=True, text=True, timeout=300, env=env)


def _copy_project(dest: Path) -> Path:
    """The files uv reads to lock the project: pyproject, lock, and the version's module."""
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    (dest / "sidecar").mkdir()
    shutil.copy2(ROOT / "sidecar" / "__init__.py", dest / "sidecar" / "__init__.py")
    return dest


def test_lock_agrees_with_pyproject(tmp_path: Path) -> None:
    proc = _lock_check(_copy_project(tmp_path))
    assert proc.returncode == 0, f"uv.lock is stale: run `bash tools/install --relock`\n{proc.stderr}"


@pytest.mark.parametrize("where", ["dependencies", "test extra"])
def test_a_dependency_the_lock_lacks_fails_the_check(tmp_path: Path, where: str) -> None:
    lock = (ROOT / "uv.lock").read_text()
    # A small, real package that is not in the lock (so uv has to resolve it to agree).
    name = next(n for n in ("pyfiglet", "art", "termcolor", "colorama") if f'name = "{n}"' not in lock)
    project = _copy_project(tmp_path)
    pyproject = (project / "pyproject.toml").read_text()
    anchor = "dependencies = [\n" if where == "dependencies" else "test = [\n"
    assert anchor in pyproject
    (project / "pyproject.toml").write_text(pyproject.replace(anchor, f'{anchor}    "{name}",\n', 1))
    proc = _lock_check(project)
    assert proc.returncode != 0, f"adding {name!r} to the {where} did not fail the lock check:\n{proc.stderr}"
    assert "needs to be updated" in proc.stderr, proc.stderr
