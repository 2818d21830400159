"""Build the frozen sidecar (PyInstaller, onedir) into ``dist/sidecar/`` and report its size.

Usage (from anywhere, with the project's venv made from the lock — ``bash tools/install --extra test``
brings PyInstaller)::

    python bundling/build.py                 # build if stale, print the size report
    python bundling/build.py --force         # rebuild even if up to date
    python bundling/build.py --clean         # also drop PyInstaller's analysis cache
    python bundling/build.py --report        # only print the size report of dist/sidecar
    python bundling/build.py --selftest      # then run `dist/sidecar/sidecar bundle-selftest`
    python bundling/build.py --unlocked      # build from an environment that differs from uv.lock

A build refuses an environment that is not exactly ``uv.lock`` (runtime + ``test`` extra): the
shipped app carries the versions CI tested, nothing else.

The binary is ``dist/sidecar/sidecar`` (``sidecar.exe`` on Windows); ship the whole
``dist/sidecar/`` directory. ``dist/sidecar.build.json`` records a fingerprint of the inputs
(sources, spec, hooks, installed distributions, Python) so a second run — and the slow test —
rebuilds only when something changed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "sidecar.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
BUNDLE = DIST / "sidecar"
STAMP = DIST / "sidecar.build.json"
EXE_NAME = "sidecar.exe" if os.name == "nt" else "sidecar"


def binary_path() -> Path:
    return BUNDLE / EXE_NAME


def fingerprint(vectors: bool = True) -> str:
    """A hash of everything the bundle is built from."""
    h = hashlib.sha256(f"vectors={vectors}".encode())
    files = sorted([*(ROOT / "sidecar").rglob("*.py"), *HERE.glob("*.py"), SPEC, *(HERE / "hooks").glob("*.py"),
                    ROOT / "pyproject.toml"])
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    h.update("\n".join(dists).encode())
    h.update(f"{sys.version}|{platform.platform()}".encode())
    return h.hexdigest()


def is_fresh(vectors: bool = True) -> bool:
    if not binary_path().exists() or not STAMP.exists():
        return False
    try:
        return bool(json.loads(STAMP.read_text())["fingerprint"] == fingerprint(vectors))
    except (ValueError, KeyError):
        return False


def pyinstaller_available() -> bool:
    try:
        importlib.metadata.version("pyinstaller")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def lock_drift() -> str | None:
    """``None`` when the running environment is exactly ``uv.lock`` (runtime + ``test`` extra),
    else what uv would change (``uv sync --locked --check``, which also fails when
    ``pyproject.toml`` and the lock disagree). Needs uv from ``bash tools/install``."""
    uv = ROOT / ".tools" / "uv" / "bin" / ("uv.exe" if os.name == "nt" else "uv")
    if not uv.exists():
        return f"{uv} is missing: run `bash tools/install --extra test`"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_PROJECT_ENVIRONMENT": sys.prefix}
    proc = subprocess.run([str(uv), "sync", "--locked", "--extra", "test", "--check", "--python", sys.executable],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()


def build(*, clean: bool = False, log: Path | None = None, vectors: bool = True, locked: bool = True) -> float:
    """Run PyInstaller on the spec; returns the seconds it took. Raises CalledProcessError, or
    RuntimeError when ``locked`` and the environment is not exactly ``uv.lock``."""
    if locked and (drift := lock_drift()):
        raise RuntimeError(f"the build environment is not uv.lock (build with --unlocked to override):\n{drift}")
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)]
    if clean:
        cmd.insert(3, "--clean")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env.setdefault("PYTHONHASHSEED", "0")
    # PyInstaller imports LiteLLM to list its submodules: never let that fetch the price list.
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION"})
    env["SIDECAR_BUNDLE_VECTORS"] = "1" if vectors else "0"  # read by the spec
    STAMP.unlink(missing_ok=True)
    started = time.monotonic()
    if log is None:
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        if proc.returncode:
            tail = log.read_text(errors="replace")[-4000:]
            raise subprocess.CalledProcessError(proc.returncode, cmd, output=tail)
    n, saved = strip_binaries()
    print(f"stripped {n} shared libraries: -{saved / 1e6:.1f} MB", flush=True)
    took = time.monotonic() - started
    total, files = size_of(BUNDLE)
    STAMP.write_text(json.dumps({"fingerprint": fingerprint(vectors), "vectors": vectors, "built_at": time.time(),
                                 "build_seconds": round(took, 1),
                                 "size_mb": round(total / 1e6, 1), "files": files}, indent=2) + "\n")
    return took


def strip_binaries(directory: Path = BUNDLE) -> tuple[int, int]:
    """``strip --strip-unneeded`` the shared libraries that still carry a symbol table (pyarrow's,
    cryptography's, …) — Linux only; returns (files stripped, bytes saved).

    Skipped: the executable (its archive is appended to the bootloader), anything in an
    auditwheel ``*.libs`` directory and numpy (libraries patched by patchelf break when stripped:
    "ELF load command address/offset not page-aligned").
    """
    strip, readelf = shutil.which("strip"), shutil.which("readelf")
    internal = directory / "_internal"
    if not sys.platform.startswith("linux") or not strip or not readelf or not internal.is_dir():
        return 0, 0
    count = saved = 0
    for path in sorted(internal.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(internal).parts
        if any(p.endswith(".libs") for p in rel) or rel[0] == "numpy":
            continue
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        sections = subprocess.run([readelf, "-S", "-W", str(path)], capture_output=True, text=True).stdout
        if " .symtab " not in sections:
            continue
        before = path.stat().st_size
        subprocess.run([strip, "--strip-unneeded", str(path)], check=True)
        count += 1
        saved += before - path.stat().st_size
    return count, saved


def size_of(directory: Path) -> tuple[int, int]:
    """(bytes — the sum of file sizes, symlinks not followed — and the number of files)."""
    total, count = 0, 0
    for root, _dirs, names in os.walk(directory):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_size
            count += 1
    return total, count


def report(directory: Path = BUNDLE, top: int = 25) -> str:
    """The bundle's size, its largest parts (by package) and its largest files."""
    internal = directory / "_internal"
    groups: dict[str, int] = defaultdict(int)
    files: list[tuple[int, str]] = []
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = Path(root, name)
            size = os.lstat(path).st_size
            rel = path.relative_to(internal) if path.is_relative_to(internal) else path.relative_to(directory)
            parts = rel.parts
            key = parts[0] if len(parts) > 1 else _library_group(parts[0])
            groups[key] += size
            files.append((size, str(rel)))
    total, count = size_of(directory)
    lines = [f"bundle {directory}: {total / 1e6:.1f} MB in {count} files"]
    lines.append("largest parts (package dir, or shared-library family at the top level):")
    for key, size in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {size / 1e6:8.1f} MB  {key}")
    lines.append("largest files:")
    for fsize, fname in sorted(files, reverse=True)[:top]:
        lines.append(f"  {fsize / 1e6:8.1f} MB  {fname}")
    return "\n".join(lines)


def _library_group(name: str) -> str:
    if name == "base_library.zip":
        return "base_library.zip (stdlib bytecode)"
    if (name.startswith("lib") and ".so" in name) or name.endswith((".dll", ".dylib")):
        return "(top-level shared libraries)"
    return name


#: Names a traced process has in ``sys.modules`` that are not modules a bundle carries: aliases,
#: modules created at run time, and the source checkout's own import machinery.
_TRACE_ONLY = ("__main__", "__mp_main__", "__editable___", "_distutils_hack", "_frozen_importlib", "_cython_",
               "cython_runtime", "_openssl", "calendar_patched", "strptime_patched", "requests.packages.",
               "six.moves", "os.path", "typing.io", "typing.re", "pyexpat.", "xml.parsers.expat.",
               "zipp.compat.overlay")
TRACE = ROOT / "build" / "runtime-trace.json"


def _excluded(name: str, excludes: dict[str, str]) -> str | None:
    for ex in excludes:
        if name == ex or name.startswith(ex + "."):
            return ex
    return None


def source_imports() -> dict[str, set[str]]:
    """Absolute imports of every module of ``sidecar/`` (module → files importing it)."""
    import ast

    found: dict[str, set[str]] = defaultdict(set)
    for path in (ROOT / "sidecar").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found[alias.name].add(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found[node.module].add(str(path.relative_to(ROOT)))
    return found


def bundled_modules() -> set[str]:
    """Every module the last build carries: its PYZ, base_library.zip, extensions, builtins."""
    import re
    import zipfile

    from PyInstaller.archive.readers import ZlibArchiveReader

    work = WORK / "sidecar"
    have = set(ZlibArchiveReader(str(work / "PYZ-00.pyz")).toc)
    with zipfile.ZipFile(work / "base_library.zip") as z:
        have |= {n[:-4].replace("/", ".").removesuffix(".__init__") for n in z.namelist() if n.endswith(".pyc")}
    toc = (work / "Analysis-00.toc").read_text()
    for part in ("PKG-00.toc",):  # bootstrap modules embedded in the executable (struct, pyimod*)
        have |= set(re.findall(r"\('([^']*)',\s*'[^']*',\s*'PYMODULE'\)", (work / part).read_text()))
    for name in re.findall(r"\('([^']*)',\s*'[^']*',\s*'EXTENSION'\)", toc):
        name = name.rsplit("/", 1)[-1] if name.startswith("python3") else name
        have.add(re.split(r"\.(cpython|abi3|so|pyd)", name)[0].replace("/", ".").replace("\\", "."))
    return have | set(sys.builtin_module_names)


def load_excludes() -> dict[str, str]:
    sys.path.insert(0, str(HERE))
    from excludes import EXCLUDES

    return dict(EXCLUDES)


def excluded_source_imports(excludes: dict[str, str] | None = None) -> list[str]:
    """Imports of excluded packages by modules of ``sidecar/`` (empty list = fine)."""
    excludes = load_excludes() if excludes is None else excludes
    problems = []
    for mod, files in sorted(source_imports().items()):
        ex = _excluded(mod, excludes)
        if ex:
            problems.append(f"sidecar imports excluded {mod!r} ({ex}) in {sorted(files)}")
    return problems


def _hook_exists(package: str) -> bool:
    """Whether a PyInstaller hook (PyInstaller's, the contrib set's or ``bundling/hooks``) exists for
    ``package``: such a hook collects the data files its package reads."""
    dirs = [HERE / "hooks"]
    try:
        import _pyinstaller_hooks_contrib
        import PyInstaller

        dirs += [Path(PyInstaller.__file__).parent / "hooks",
                 Path(_pyinstaller_hooks_contrib.__file__).parent / "stdhooks"]
    except ImportError:
        pass
    return any((d / f"hook-{package}.py").exists() for d in dirs)


def _dist_name(info_dir: str) -> str:
    """``aiohttp-3.14.5.dist-info`` → ``aiohttp`` (normalised as importlib.metadata does)."""
    return info_dir.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("-", "_")


def trace_problems(trace: dict[str, list[str]], *, excludes: dict[str, str] | None = None,
                   vectors: bool = True) -> list[str]:
    """What a runtime trace (``{"modules": [...], "opened": [...]}``, from ``trace_runtime.py``)
    needs that the spec would not ship, judged from the declarations alone (no build):

    * a loaded module (a native extension included) that ``excludes.py`` leaves out;
    * a dist-info file read at run time (``importlib.metadata``) of a distribution not in
      ``collect.metadata()``;
    * a data file read from a package that neither ``collect.DATA`` collects (or whose globs
      there leave it out) nor a PyInstaller hook covers.

    Each problem names the module or file. Empty list = fine.
    """
    import fnmatch

    sys.path.insert(0, str(HERE))
    import collect

    if excludes is None:
        from excludes import EXCLUDES, VECTOR_EXCLUDES

        excludes = {**EXCLUDES, **({} if vectors else VECTOR_EXCLUDES)}
    problems = []
    loaded: dict[str, list[str]] = defaultdict(list)  # exclusion → the traced modules it drops
    for mod in trace.get("modules", []):
        ex = None if mod.startswith(_TRACE_ONLY) else _excluded(mod, excludes)
        if ex:
            loaded[ex].append(mod)
    for ex, mods in loaded.items():
        more = f" and {len(mods) - 1} more" if len(mods) > 1 else ""
        problems.append(f"the runtime trace loads {mods[0]!r}{more}, which bundling/excludes.py leaves out ({ex!r})")
    shipped_metadata = {d.lower().replace("-", "_") for d in collect.metadata(vectors)}
    for name in trace.get("opened", []):
        top, _, rest = name.partition("/")
        if name.endswith("entry_points.txt") or not rest:
            continue
        if top.endswith(".dist-info"):
            if _dist_name(top) not in shipped_metadata and not _hook_exists(_dist_name(top)):
                problems.append(f"the runtime trace reads {name!r}: add {_dist_name(top)!r} to "
                                "bundling/collect.py METADATA")
            continue
        if top in collect.DATA:
            skipped = next((g for g in collect.DATA[top] if fnmatch.fnmatch(rest, g)), None)
            if skipped:
                problems.append(f"the runtime trace reads data file {name!r}, which bundling/collect.py DATA "
                                f"leaves out ({skipped!r})")
        elif not _hook_exists(top):
            problems.append(f"the runtime trace reads data file {name!r} of {top!r}, which no PyInstaller "
                            "hook and no bundling/collect.py DATA entry collects")
    return problems


def verify(excludes: dict[str, str] | None = None, trace: dict[str, list[str]] | None = None) -> list[str]:
    """Problems with the exclusions and the bundle's coverage (empty list = fine):

    * a module of ``sidecar/`` imports an excluded package;
    * the runtime trace (``trace``, else ``build/runtime-trace.json`` from ``trace_runtime.py``
      when present) needs what the declarations would not ship (:func:`trace_problems`), or —
      after a build — loads a module or reads a data file the built bundle does not carry.
    """
    excludes = load_excludes() if excludes is None else excludes
    problems = excluded_source_imports(excludes)
    if trace is None and TRACE.exists():
        trace = json.loads(TRACE.read_text())
    if trace is not None:
        problems += trace_problems(trace, excludes=excludes)
        have = bundled_modules() if (WORK / "sidecar" / "PYZ-00.pyz").exists() else None
        if have is not None:
            sys.path.insert(0, str(HERE))
            from collect import PYARROW_SKIP

            internal = BUNDLE / "_internal"
            for mod in trace["modules"]:
                if mod.startswith(_TRACE_ONLY) or _excluded(mod, excludes) or mod in have:
                    continue
                if mod.startswith(PYARROW_SKIP):  # optional imports the frozen app does without
                    continue
                if not (internal / mod.replace(".", "/")).is_dir():  # namespace package of data
                    problems.append(f"the runtime trace loads {mod!r}, which the bundle does not carry")
            for name in trace.get("opened", []):
                top = name.split("/", 1)[0]
                if name.endswith("entry_points.txt") or "/" not in name:
                    continue
                if top.endswith(".dist-info"):
                    found = any(_dist_name(d.name) == _dist_name(top) for d in internal.glob("*.dist-info"))
                else:
                    found = (internal / name).exists()
                if not found:
                    problems.append(f"the runtime trace reads {name!r}, which the bundle does not carry")
    return problems


def selftest() -> dict[str, object]:
    proc = subprocess.run([str(binary_path()), "bundle-selftest"], capture_output=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")})
    try:
        result: dict[str, object] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"bundle-selftest printed no JSON (rc={proc.returncode}):\n"
                           f"{proc.stdout.decode(errors='replace')[-2000:]}\n{proc.stderr.decode(errors='replace')[-4000:]}") from None
    if proc.returncode != 0 or not result.get("ok"):
        raise RuntimeError(f"bundle-selftest failed (rc={proc.returncode}): {json.dumps(result, indent=1)}\n"
                           f"{proc.stderr.decode(errors='replace')[-4000:]}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build dist/sidecar/ (PyInstaller onedir) and report its size.")
    parser.add_argument("--force", action="store_true", help="rebuild even if the bundle is up to date")
    parser.add_argument("--clean", action="store_true", help="drop PyInstaller's cache first (implies --force)")
    parser.add_argument("--report", action="store_true", help="only print the size report")
    parser.add_argument("--without-vectors", action="store_true",
                        help="leave LanceDB and pyarrow out (-266 MB; see excludes.VECTOR_EXCLUDES)")
    parser.add_argument("--selftest", action="store_true", help="run `sidecar bundle-selftest` after building")
    parser.add_argument("--unlocked", action="store_true",
                        help="build even if the environment differs from uv.lock (not for shipping)")
    parser.add_argument("--verify", action="store_true",
                        help="check the exclusions against sidecar/'s imports and build/runtime-trace.json")
    args = parser.parse_args(argv)
    if not args.report:
        if not pyinstaller_available():
            print("PyInstaller is not installed: bash tools/install --extra test", file=sys.stderr)
            return 2
        vectors = not args.without_vectors
        if args.force or args.clean or not is_fresh(vectors):
            if args.clean:
                shutil.rmtree(WORK, ignore_errors=True)
            print(f"building {BUNDLE}{'' if vectors else ' without LanceDB/pyarrow'} …", flush=True)
            try:
                took = build(clean=args.clean, vectors=vectors, locked=not args.unlocked)
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 2
            print(f"built in {took:.0f} s")
        else:
            print(f"{BUNDLE} is up to date ({STAMP.name})")
    if not binary_path().exists():
        print(f"no bundle at {BUNDLE}", file=sys.stderr)
        return 1
    print(report())
    if args.verify:
        problems = verify()
        for p in problems:
            print(f"VERIFY: {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"verify: exclusions unused by sidecar/ and by the runtime trace ({TRACE.name if TRACE.exists() else 'no trace; run bundling/trace_runtime.py'})")
    if args.selftest:
        result = selftest()
        checks: dict[str, dict[str, object]] = result["checks"]  # type: ignore[assignment]
        for name, check in checks.items():
            print(f"selftest {name}: {check.get('detail')} ({check.get('seconds')} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
