"""The frozen sidecar (PyInstaller onedir, ``bundling/``): build it, then use it as a shell does.

Slow: the first run builds ``dist/sidecar/`` (about 3 minutes on 2 cores); later runs reuse it
while ``dist/sidecar.build.json`` matches the sources, spec and installed packages
(``bundling/build.py`` decides). Skipped when PyInstaller is not installed.

* ``test_sidecar_imports_nothing_the_bundle_excludes`` (fast, no build) — no module of
  ``sidecar/`` imports a package ``bundling/excludes.py`` leaves out.
* ``test_runtime_needs_are_collected_by_the_spec`` (about 20 s, no build) — every module and
  data file the source sidecar loads under the smoke workload is shipped by the spec's
  declarations; ``test_bundle_carries_the_runtime_trace`` checks the same against the build.
* ``test_bundle_selftest`` — ``sidecar bundle-selftest`` inside the frozen interpreter: the agent
  stack with LiteLLM's bundled price map and tokenizers (offline), the PDF/ICS/EML/HTML/Markdown
  readers, LanceDB + pyarrow, certifi, time zones.
* ``test_bundle_smoke`` — ``bundling/smoke.py`` against the binary: handshake, health, ready,
  tasks, one agent run against the scripted fake model (a tool call creating a task), one
  ingest of a folder with a PDF, an iCalendar file, an e-mail and a note, clean JSON logs, and
  stdin EOF → the process and every child gone within 3 s. Prints the figures: bundle size,
  spawn → handshake median of 10, idle RSS. The size bound is asserted (it does not depend on
  the machine's load); the handshake target (≤ 1.0 s) is a benchmark figure, judged by
  ``python bundling/smoke.py dist/sidecar/sidecar`` on a quiet machine, which prints it against
  the target — a timed assertion here failed whenever other work shared the 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLING = ROOT / "bundling"
#: The bundle's size budget (MB): the bundling issue's 450 MB target for its feature set, plus
#: what each later required part measured when it landed (bundling/README.md, "Size"). A part
#: that grows, or a new one, fails the smoke test until it is cut or budgeted here on purpose.
BUNDLE_BUDGET_MB: dict[str, float] = {
    "the bundling issue's feature set": 450.0,
    "LiteLLM >= 1.110's required Rust bridge (_native.abi3.so, already stripped)": 45.0,
    "search's offline embedder (wordllama weights + tokenizers + safetensors)": 31.0,
    "extraction's PDF layout and language detection (pdfplumber, pdfminer, pypdfium2, Pillow, py3langid)": 36.0,
}
MAX_BUNDLE_MB = sum(BUNDLE_BUDGET_MB.values())
#: Error records to tolerate (``;``-separated substrings), for a known bug of the app that is not
#: the bundle's — reported in the output, never silently. Default: none (every error record fails).
ALLOW_LOG = [s for s in os.environ.get("BUNDLE_SMOKE_ALLOW_LOG", "").split(";") if s]


def _load(name: str) -> ModuleType:
    """``bundling/<name>.py`` as a module (bundling/ is scripts, not a package)."""
    if str(BUNDLING) not in sys.path:
        sys.path.insert(0, str(BUNDLING))
    spec = importlib.util.spec_from_file_location(f"_bundling_{name}", BUNDLING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    """The ``bundling/build.py`` module, after making sure ``dist/sidecar`` is built and fresh."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed (bash tools/install --extra test)")
    build = _load("build")
    if not build.is_fresh():
        log = ROOT / "build" / "pyinstaller-build.log"
        build.build(log=log)
    assert build.binary_path().is_file(), f"no binary at {build.binary_path()}"
    return build


def test_sidecar_imports_nothing_the_bundle_excludes() -> None:
    """Fast guard: a module of sidecar/ importing a package that bundling/excludes.py leaves out
    would work from source and fail only in the shipped app."""
    problems = _load("build").excluded_source_imports()
    assert not problems, "\n".join(problems) + "\n(remove the exclusion in bundling/excludes.py, or the import)"


def test_trace_check_names_what_the_spec_would_not_ship() -> None:
    """The fast guard's judge: each kind of gap is reported with the module or file it concerns,
    and what the declarations do ship is not."""
    trace = {
        "modules": ["aiohttp.web", "litellm.rust_bridge._native", "litellm.main"],
        "opened": [
            "litellm/model_prices_and_context_window_backup.json",  # collected (collect.DATA)
            "litellm-1.0.dist-info/METADATA",  # shipped (collect.METADATA)
            "jsonschema_specifications/schemas/draft7/metaschema.json",  # a PyInstaller hook collects it
            "newdep-2.0.dist-info/METADATA",
            "litellm/proxy/schema.json",
            "nohookpkg/data/table.bin",
        ],
    }
    problems = _load("build").trace_problems(trace, excludes={"litellm.rust_bridge._native": "a reason"})
    text = "\n".join(problems)
    assert len(problems) == 4, text
    for needle in ("'litellm.rust_bridge._native'", "'newdep'", "litellm/proxy/schema.json", "nohookpkg/data/table.bin"):
        assert needle in text, (needle, text)


@pytest.fixture(scope="module")
def runtime_trace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """``bundling/trace_runtime.py``: the smoke workload run from source, recording every module
    (native extensions included) and every data and dist-info file the sidecar loads."""
    out = tmp_path_factory.mktemp("trace") / "runtime-trace.json"
    proc = subprocess.run([sys.executable, str(BUNDLING / "trace_runtime.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=540, cwd=ROOT)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    trace: dict[str, list[str]] = json.loads(out.read_text())
    return trace


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_runtime_needs_are_collected_by_the_spec(runtime_trace: dict[str, list[str]]) -> None:
    """Fast guard (about 20 s, no build): everything the traced sidecar loads must be shipped by
    the spec's declarations (``bundling/collect.py``, ``bundling/excludes.py``, PyInstaller's
    hooks). A dependency upgrade that starts importing an excluded module or reading an
    uncollected file fails here, by name, minutes before the bundle build and smoke test would."""
    problems = _load("build").trace_problems(runtime_trace)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_bundle_carries_the_runtime_trace(build: ModuleType, runtime_trace: dict[str, list[str]]) -> None:
    """After the build, the precise check: every traced module is in the bundle's archive or
    extensions and every traced data/dist-info file is on disk in ``_internal``."""
    problems = build.verify(trace=runtime_trace)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_bundle_selftest(build: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    result: dict[str, Any] = build.selftest()
    assert result["ok"] and result["frozen"], json.dumps(result, indent=1)
    assert not result["network_refused"], result["network_refused"]
    with capsys.disabled():
        print()
        for name, check in result["checks"].items():
            print(f"  bundle-selftest {name}: {check['detail']}")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_bundle_smoke(build: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    smoke = _load("smoke")
    figures = smoke.run([str(build.binary_path())], bundle_dir=build.BUNDLE, spawns=10, workdir=tmp_path,
                        allow_log=ALLOW_LOG)
    with capsys.disabled():
        print()
        print(build.report(top=12))
        print(figures.report())
    assert figures.bundle_mb is not None and figures.bundle_mb <= MAX_BUNDLE_MB, figures.report()
    assert figures.exit_s < smoke.EXIT_BOUND_S
