"""glibc's heap controls, the one place that calls them (a no-op off glibc: macOS, Windows, musl).

Freed native memory (SQLite pages of a large list, LanceDB's writes) stays in malloc's arenas
and so in RSS until it is trimmed; threads each get an arena of their own unless capped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

_M_ARENA_MAX = -8  # mallopt parameter (glibc malloc.h)


@functools.cache
def _libc() -> Any:
    """glibc, or None where its heap controls are missing."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None


def bound_native_heap(arenas: int = 2) -> None:
    """Cap malloc's arenas at ``arenas``, before a library starts many worker threads."""
    lib = _libc()
    if lib is not None:
        lib.mallopt(_M_ARENA_MAX, arenas)


def trim_native_heap() -> None:
    """Give freed heap memory back to the OS (``malloc_trim(0)``)."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)
