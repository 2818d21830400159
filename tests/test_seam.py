"""The seam parts plug into: each part imports alone, and no module of sidecar/ imports
itself through others (the circle app → agent/service → app that there used to be)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.app import PARTS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sidecar"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """sidecar modules imported anywhere in ``tree`` (late imports in functions included),
    except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        deps = _imports(ast.parse(path.read_text(encoding="utf-8")), modules)
        # importing a.b.c runs a/__init__ and a/b/__init__ too: not a dependency edge we care about
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := dfs(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_no_import_cycle_in_sidecar() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_cycle_finder_sees_a_cycle() -> None:
    # the guard can fail: the old app → agent.service → app circle is reported
    graph = import_graph()
    graph["sidecar.agent.service"] = {*graph["sidecar.agent.service"], "sidecar.app"}
    assert find_cycle(graph) is not None


def test_parts_are_plugged_by_setup_and_never_import_the_factory() -> None:
    graph = import_graph()
    names = [p.__name__ for p in PARTS]
    assert {"sidecar.agent.service", "sidecar.ingest.service", "sidecar.search.service"} <= set(names)
    for name in names:
        assert callable(getattr(sys.modules[name], "setup", None)), name
        part = name.rsplit(".", 1)[0]
        for mod, deps in graph.items():
            if mod == part or mod.startswith(part + "."):
                assert "sidecar.app" not in deps, f"{mod} imports the application factory"


@pytest.mark.parametrize("module", [p.__name__ for p in PARTS])
def test_each_part_imports_alone(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_every_app_key_is_declared_in_appstate() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "appstate.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "web.AppKey(" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"AppKeys outside sidecar/appstate.py: {offenders}"


def test_the_app_factory_loads_no_heavy_library_before_the_handshake() -> None:
    # LanceDB, numpy, the embedder and the AEAD library load after the handshake (DESIGN §1.3)
    heavy = ("numpy", "lancedb", "pyarrow", "wordllama", "cryptography", "litellm", "agentscope")
    code = f"import sys, sidecar.app; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_models_derive_from_the_one_base() -> None:
    # sidecar.basemodel.Model defers schema building; a model on pydantic's BaseModel directly
    # builds its validator at import, before the handshake.
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "basemodel.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id == "BaseModel" for b in node.bases):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not offenders, f"derive these from sidecar.basemodel.Model: {offenders}"


def test_the_app_factory_builds_no_model_schema_at_import() -> None:
    code = (
        "import sys, pydantic, sidecar.app\n"
        "seen, todo, built = set(), [pydantic.BaseModel], []\n"
        "while todo:\n"
        "    for sub in todo.pop().__subclasses__():\n"
        "        if sub not in seen:\n"
        "            seen.add(sub); todo.append(sub)\n"
        "            if sub.__module__.startswith('sidecar.') and sub.__pydantic_complete__:\n"
        "                built.append(sub.__module__ + '.' + sub.__qualname__)\n"
        "print(len([s for s in seen if s.__module__.startswith('sidecar.')]), sorted(built))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    count, built = proc.stdout.split(" ", 1)
    assert int(count) > 50  # the walk saw the models
    assert built.strip() == "[]", f"built at import: {built}"
