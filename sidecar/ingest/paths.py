"""Which paths under a watched folder are candidates for extraction (DESIGN §5).

Pure functions on path strings, shared by the watchdog bridge, the reconciliation scan and the
pipeline, so every entry point applies the same rules:

* hidden files and dot-folders (``.DS_Store``, ``.git/…``, ``.#lock``) are never candidates;
* temporary and lock files are skipped: ``~$*`` (Office owner files), ``*.swp``/``*.swx`` (vim),
  ``*.tmp``, ``*.part`` (Firefox, curl), ``*.crdownload`` (Chrome), ``*~`` (backup copies) and
  ``#*#`` (Emacs auto-save);
* the extension (case-insensitive) must be one of the watch's ``fileExtensions``.

Containment is not decided here but at the moment of opening, by :mod:`sidecar.ingest.opener`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable

#: Suffixes of files still being written or of editor scratch copies (lower case).
TEMP_SUFFIXES: tuple[str, ...] = (".swp", ".swx", ".tmp", ".temp", ".part", ".partial", ".crdownload", ".download")


def ignored_name(name: str) -> bool:
    """True for hidden, temporary, lock and backup file names (see the module docstring)."""
    if not name or name.startswith((".", "~$")):
        return True
    if name.endswith("~") or (name.startswith("#") and name.endswith("#")):
        return True
    return name.lower().endswith(TEMP_SUFFIXES)


def relative_parts(path: str, root: str) -> list[str] | None:
    """The components of ``path`` below ``root`` (lexically), or None when it is not below it."""
    root = root.rstrip(os.sep) or os.sep
    if path == root:
        return []
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not path.startswith(prefix):
        return None
    return [p for p in path[len(prefix):].split(os.sep) if p]


def root_of(path: str, roots: Iterable[str]) -> str | None:
    """The first of ``roots`` that ``path`` lies below (lexically, the root itself excluded), or None."""
    for root in roots:
        if relative_parts(path, root):
            return root
    return None


def in_hidden_folder(path: str, root: str) -> bool:
    """True when a folder between ``root`` and ``path`` is a dot-folder (``.git``, ``.cache``)."""
    parts = relative_parts(path, root)
    return bool(parts) and any(p.startswith(".") for p in (parts or [])[:-1])


def is_candidate(path: str, root: str, extensions: Collection[str]) -> bool:
    """True when the file at ``path`` (lexically below ``root``) should be extracted from:
    not hidden, temporary or in a dot-folder, and with one of ``extensions`` (``.md`` form)."""
    parts = relative_parts(path, root)
    if not parts:
        return False
    name = parts[-1]
    if ignored_name(name) or any(p.startswith(".") for p in parts[:-1]):
        return False
    return os.path.splitext(name)[1].lower() in extensions


def is_dir_candidate(path: str, root: str) -> bool:
    """True when the folder at ``path`` (below ``root``) may hold candidates (not a dot-folder)."""
    parts = relative_parts(path, root)
    return parts is not None and not any(p.startswith(".") for p in parts)
