"""What the sidecar really loads at run time: the evidence behind the spec's exclusions.

Runs the smoke test (:mod:`bundling.smoke`) against the *source* sidecar started through a tiny
launcher that records, in every sidecar process, each imported module (``sys.modules`` at exit)
and each non-code file opened from site-packages (an audit hook on ``open``) — the data files the
frozen app must carry. Then prints, per top-level distribution, whether it was imported.

Usage::

    python bundling/trace_runtime.py [--out build/runtime-trace.json]

A package the spec excludes must be absent from ``modules`` here (and the smoke test of the
frozen build must pass without it); a package that is imported must not be excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import smoke

LAUNCHER = r"""
import atexit, json, os, sys, sysconfig
_out = os.environ["BUNDLE_TRACE_OUT"]
_site = sysconfig.get_paths()["purelib"]
_opened = set()
def _hook(event, args):
    if event == "open" and args and isinstance(args[0], str) and args[0].startswith(_site):
        if not args[0].endswith((".py", ".pyc", ".so", ".pth")):
            _opened.add(os.path.relpath(args[0], _site))
sys.addaudithook(_hook)
def _dump():
    mods = sorted(n for n, m in list(sys.modules.items()) if m is not None)
    with open(f"{_out}.{os.getpid()}.json", "w") as fh:
        json.dump({"modules": mods, "opened": sorted(_opened)}, fh)
atexit.register(_dump)
sys.argv[0] = "sidecar"
from sidecar.cli import main
sys.exit(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=smoke.REPO / "build" / "runtime-trace.json")
    parser.add_argument("--allow-log", action="append", default=[], metavar="TEXT",
                        help="tolerate error records containing TEXT (see smoke.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sidecar-trace-") as tmp:
        prefix = str(Path(tmp) / "trace")
        os.environ["BUNDLE_TRACE_OUT"] = prefix
        figures = smoke.run([sys.executable, "-c", LAUNCHER], spawns=1, allow_log=args.allow_log)
        modules: set[str] = set()
        opened: set[str] = set()
        for f in Path(tmp).glob("trace.*.json"):
            data = json.loads(f.read_text())
            modules.update(data["modules"])
            opened.update(data["opened"])
    top = sorted({m.split(".")[0] for m in modules})
    site = Path(sysconfig.get_paths()["purelib"])
    installed = sorted(p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"modules": sorted(modules), "top_level": top, "opened": sorted(opened)}, indent=1))
    print(figures.report())
    print(f"\n{len(modules)} modules imported, {len(top)} top-level packages; written to {args.out}")
    print("imported top-level:", " ".join(top))
    print("\ninstalled but never imported:", " ".join(n for n in installed if n not in top))
    print("\ndata files opened from site-packages (entry_points.txt scans left out):")
    for name in sorted(opened):
        if not name.endswith("entry_points.txt"):
            print("  ", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
