"""Tuning of folder ingestion: sizes in bytes, durations in milliseconds or seconds as named.

The defaults are what ``sidecar serve`` and ``sidecar ingest`` use; tests pass smaller ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IngestOptions:
    """How the watcher, the queue and the workers behave.

    Attributes:
        max_file_bytes: files larger than this are ``skipped`` with a reason (default 25 MiB).
        debounce_ms: quiet time after the last watchdog event on a path before it is queued.
        settle_ms: a file modified less than this long ago is not read yet (it may still be
            being written); it is retried when it has been quiet that long.
        workers: files processed concurrently (reading and parsing run in threads).
        max_attempts: a file claimed this many times without finishing (the process died while
            working on it) ends as ``error`` instead of being tried again.
        scan_interval_s: period of the reconciliation scan of every enabled watch (catches
            events the OS dropped); 0 disables the periodic scan.
        progress_interval_s: least time between two ``ingest.progress`` events of one run.
        poll_interval_s: period of the polling observer used when the OS refuses more watches.
        llm_chunk_chars: longest piece of a document sent to the model in one request.
        llm_max_chunks: most pieces of one document sent to the model (the rest is not read).
        max_files_per_watch: candidate files a scan of one watched folder takes at most; the
            run notes when a folder holds more (the user should pick a smaller folder).
    """

    max_file_bytes: int = 25 << 20
    debounce_ms: int = 200
    settle_ms: int = 400
    workers: int = 4
    max_attempts: int = 5
    scan_interval_s: float = 300.0
    progress_interval_s: float = 0.2
    poll_interval_s: float = 2.0
    llm_chunk_chars: int = 12_000
    llm_max_chunks: int = 20
    max_files_per_watch: int = 50_000
