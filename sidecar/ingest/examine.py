"""One queued file, start to extraction, in a worker thread (DESIGN §5; step 3 of
:mod:`sidecar.ingest.pipeline`): resolve and check the path through its watched folder's opener,
hash it, skip unchanged content, read it, check it did not change while being read (guard 1 of
the two race guards; :meth:`sidecar.ingest.worker.FileWorker.commit` holds the other), and run
the ``rules`` extractor.
"""

from __future__ import annotations

import hashlib
import logging
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sidecar.ingest.items import Document, ExtractedItem
from sidecar.ingest.opener import Refused, WatchRoot
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.watches import Watch

log = logging.getLogger(__name__)

Outcome = Literal["document", "unchanged", "later", "gone", "skipped", "error"]


@dataclass
class Examined:
    """What :func:`examine` found. ``size``/``mtime_ns`` are the path's ``lstat`` values (what
    the scan compares); ``delay_ms`` is set for ``later``; ``items`` holds the ``rules``
    extraction when it was asked for."""

    outcome: Outcome
    reason: str | None = None
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    delay_ms: int = 0
    doc: Document | None = None
    items: list[ExtractedItem] | None = None


#: ``extract(doc, now_ms)`` → items; run in the worker thread right after reading.
ThreadExtract = Callable[[Document, int], list[ExtractedItem]]


def examine(path: str, root: WatchRoot, *, prev_sha: str | None, options: IngestOptions,
            extract: ThreadExtract | None = None) -> Examined:
    """Check, hash, read and (with ``extract``) extract one queued file. Blocking: run it in a
    thread. Never raises for anything the file or the file system does; see the module
    docstring for the outcomes. ``root`` is the opener of the watched folder holding ``path``:
    the file is opened and read once, through it (no symlink in any component).
    """
    from sidecar.ingest import readers

    try:
        lst = root.lstat(path)
    except Refused as exc:
        return Examined("error", exc.reason)
    except OSError as exc:
        return Examined("error", f"cannot stat file: {exc.strerror or type(exc).__name__}")
    if lst is None:
        return Examined("gone")
    size, mtime_ns = lst.st_size, lst.st_mtime_ns
    if stat.S_ISLNK(lst.st_mode):
        return Examined("skipped", "symlink (symlinks are not followed)", size=size, mtime_ns=mtime_ns)
    if not stat.S_ISREG(lst.st_mode):
        return Examined("skipped", "not a regular file", size=size, mtime_ns=mtime_ns)
    age_ms = (time.time_ns() - lst.st_mtime_ns) // 1_000_000  # OS time against an OS timestamp
    if 0 <= age_ms < options.settle_ms:
        return Examined("later", delay_ms=int(options.settle_ms - age_ms) + 20)
    if lst.st_size > options.max_file_bytes:
        return Examined("skipped", f"too large: {lst.st_size} bytes (limit {options.max_file_bytes})",
                        size=size, mtime_ns=mtime_ns)
    try:
        got = root.read(path, options.max_file_bytes)
    except Refused as exc:
        if exc.outcome == "later":
            return Examined("later", delay_ms=options.settle_ms)
        if exc.outcome == "gone":
            return Examined("gone")
        return Examined("skipped" if exc.outcome == "skipped" else "error", exc.reason, size=size,
                        mtime_ns=mtime_ns)
    size, mtime_ns = got.st.st_size, got.st.st_mtime_ns
    sha = hashlib.sha256(got.data).hexdigest()
    if sha == prev_sha:
        return Examined("unchanged", sha256=sha, size=size, mtime_ns=mtime_ns)
    try:
        doc = readers.read_document(Path(path), max_bytes=options.max_file_bytes, data=got.data)
    except readers.ReadError as exc:
        return Examined("error", exc.reason, sha256=sha, size=size, mtime_ns=mtime_ns)
    # Still the same file under that name once parsed? (deleted or replaced meanwhile: not taken)
    try:
        now = root.lstat(path)
    except (Refused, OSError):
        now = None
    if now is None:
        return Examined("gone")
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (got.st.st_dev, got.st.st_ino, size, mtime_ns):
        return Examined("later", delay_ms=options.settle_ms)
    del got
    items = None
    if extract is not None:
        try:
            items = extract(doc, mtime_ns // 1_000_000)
        except Exception as exc:  # the extractor must not take the worker down
            log.exception("extractor failed", extra={"path": path})
            return Examined("error", f"extractor failed ({type(exc).__name__})", sha256=sha, size=size,
                            mtime_ns=mtime_ns)
    return Examined("document", sha256=sha, size=size, mtime_ns=mtime_ns, doc=doc, items=items)


def rules_extractor(watch: Watch) -> ThreadExtract:
    """The ``rules`` extraction for a watch: its data types and ``skipDone``; relative dates are
    read against the file's mtime when the document has no date of its own."""
    from sidecar.ingest import rules

    want = tuple(watch.data_types)
    skip_done = watch.skip_done

    def run(doc: Document, mtime_ms: int) -> list[ExtractedItem]:
        return rules.extract(doc, want=want, skip_done=skip_done, now_ms=mtime_ms)

    return run
