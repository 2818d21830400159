"""Entry point of the frozen sidecar (PyInstaller): the same CLI as the ``sidecar`` console script.

``dist/sidecar/sidecar serve --data-dir DIR …`` behaves exactly like ``sidecar serve`` (same
handshake, same API, same exit codes). One extra, bundle-only command checks that the frozen
build carries what the lazily imported parts need (LiteLLM's data files, AgentScope, LanceDB and
pyarrow, the file readers, certifi): ``dist/sidecar/sidecar bundle-selftest`` prints one JSON
object on stdout and exits 0 when every check passed (see :mod:`sidecar_bundle_selftest`).
"""

from __future__ import annotations

import multiprocessing
import sys


def _run() -> int:
    multiprocessing.freeze_support()  # a no-op unless a library starts a spawn-mode child
    if sys.argv[1:2] == ["bundle-selftest"]:
        from sidecar_bundle_selftest import main as selftest

        return selftest(sys.argv[2:])
    from sidecar.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_run())
