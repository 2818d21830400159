"""One claimed file, start to end (DESIGN §5): examine it, extract its items, and store the
outcome in one transaction. The dispatcher of :class:`sidecar.ingest.pipeline.Pipeline` runs
:meth:`FileWorker.process` for each row it claims.

* :func:`~sidecar.ingest.examine.examine` (in a thread) checks, hashes and reads the file and
  runs the ``rules`` extractor; it also makes sure the file did not change while being read;
* for a watch with ``useLlm``, the ``llm`` extractor runs instead (falling back to ``rules``
  when the model is unavailable: the run becomes ``partial``);
* :meth:`FileWorker.commit` stores the new items with provenance
  (:mod:`sidecar.ingest.provenance`), finishes the queue row and counts the file on its run in
  one transaction, so a crash leaves all of it or none of it. A row whose ``gen`` moved while
  the file was processed (an event for it arrived meanwhile) goes back to ``pending``.

Every outcome is a queue status with a reason; nothing a file contains can stop the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from sidecar import clock
from sidecar.errors import DiskFull, StoreFailed
from sidecar.ingest import paths as path_rules
from sidecar.ingest.active_runs import ActiveRun, ActiveRuns
from sidecar.ingest.atomic import atomic
from sidecar.ingest.examine import Examined, examine, rules_extractor
from sidecar.ingest.llm import ModelLoader
from sidecar.ingest.opener import WatchRoot
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.provenance import Source, mark_missing, mark_present, store_items
from sidecar.ingest.queue import DELETED, Claimed
from sidecar.ingest.runs import add_error, count_file
from sidecar.ingest.watches import Watch
from sidecar.store.db import Store
from sidecar.store.repository import Repository

log = logging.getLogger(__name__)


class FileWorker:
    """Processes claimed queue rows. See the module docstring.

    Args:
        store, repo: the open database and its repository (the one write path for items).
        options: tuning (sizes in bytes, times in ms/s as named).
        active: the active runs (files count on them; the ``llm`` model is cached per run).
        opener: ``opener(root)`` → the one :class:`~sidecar.ingest.opener.WatchRoot` of a watched folder.
        exists: ``exists(path)`` → whether a stored path is still there (for provenance).
        sinks: hooks given each parsed document and each gone file inside the outcome's
            transaction (``Pipeline.document_sinks``: the same list).
        load_model: how the ``llm`` extractor gets its model (None: ``useLlm`` watches use rules).
    """

    def __init__(self, store: Store, repo: Repository, options: IngestOptions, active: ActiveRuns, *,
                 opener: Callable[[str], WatchRoot], exists: Callable[[str], bool], sinks: list[Any],
                 load_model: ModelLoader | None = None) -> None:
        self.store = store
        self.repo = repo
        self.options = options
        self.active = active
        self._opener = opener
        self._exists = exists
        self._sinks = sinks
        self._load_model = load_model

    async def process(self, c: Claimed, watch: Watch) -> None:
        """Process one claimed row of ``watch`` and count it on its run. Never raises but for
        cancellation: a failure is the file's ``error``; a store that cannot be written returns
        the row to ``pending`` (not the file's fault)."""
        counted, run_id = False, c.run_id
        try:
            counted, run_id = await self.process_file(c, watch)
        except asyncio.CancelledError:
            raise
        except (DiskFull, StoreFailed) as exc:  # not the file's fault: it waits, it is not failed
            log.warning("ingest paused: the store cannot be written", extra={"code": exc.code})
            await self._back_to_pending(c)
            return
        except Exception as exc:
            log.exception("ingest of a file failed", extra={"path": c.path})
            with contextlib.suppress(Exception):
                counted, run_id = await self.commit(
                    c, watch, Examined("error", f"internal error ({type(exc).__name__})"))
        await self.active.after(run_id, counted=counted)

    async def _back_to_pending(self, c: Claimed, every_s: float = 2.0) -> None:
        """Return a claimed row to ``pending`` once the store takes writes again (disk full):
        the worker waits, retrying every ``every_s``; a replaced database never takes them."""
        while True:
            try:
                async with self.store.write() as w:
                    await w.execute("UPDATE ingest_files SET status = 'pending', updated_at = ? WHERE id = ?",
                                    (clock.now_ms(), c.id))
                return
            except DiskFull:
                await asyncio.sleep(every_s)
            except StoreFailed:
                return  # the next start refuses this database; the row is reset there or never

    async def process_file(self, c: Claimed, watch: Watch) -> tuple[bool, str | None]:
        """Examine, extract and :meth:`commit` one claimed row; returns what :meth:`commit` does."""
        if c.attempts > self.options.max_attempts:
            reason = f"gave up after {c.attempts - 1} attempts (the sidecar stopped while reading this file)"
            return await self.commit(c, watch, Examined("error", reason))
        root = path_rules.root_of(c.path, watch.paths)
        if root is None:
            return await self.commit(c, watch, Examined("skipped", "no longer inside the watch's folders"))
        use_llm = watch.use_llm and self._load_model is not None
        extract = None if use_llm else rules_extractor(watch)
        ex = await asyncio.to_thread(examine, c.path, self._opener(root), prev_sha=c.sha256,
                                     options=self.options, extract=extract)
        notes: list[str] = []
        extractor = ("rules", _rules_version())
        if ex.outcome == "document" and use_llm:
            assert ex.doc is not None and ex.mtime_ns is not None
            ex, extractor, notes = await self._extract_llm(c, watch, ex)
        return await self.commit(c, watch, ex, extractor=extractor, notes=notes)

    async def _model(self, ar: ActiveRun | None) -> tuple[Any | None, str | None]:
        assert self._load_model is not None
        if ar is not None and ar.llm_down:
            return None, ar.llm_down
        if ar is not None and ar.model_loaded:
            return ar.model, ar.llm_down
        model, why = await self._load_model()
        if ar is not None:
            ar.model, ar.model_loaded, ar.llm_down = model, True, why
        return model, why

    async def _extract_llm(self, c: Claimed, watch: Watch,
                           ex: Examined) -> tuple[Examined, tuple[str, str], list[str]]:
        from sidecar.ingest.llm import (
            EXTRACTOR_NAME,
            EXTRACTOR_VERSION,
            LlmExtractor,
            LlmOutputInvalid,
            LlmUnavailable,
            extraction_instructions,
        )

        assert ex.doc is not None and ex.mtime_ns is not None
        ar = self.active.of_run(c.run_id)
        model, why = await self._model(ar)
        if model is not None:
            extractor = LlmExtractor(model, chunk_chars=self.options.llm_chunk_chars,
                                     max_chunks=self.options.llm_max_chunks,
                                     user_instructions=await extraction_instructions(self.store))
            try:
                ex.items = await extractor.extract(ex.doc, prompt_template=watch.prompt_template,
                                                   want=watch.data_types, skip_done=watch.skip_done,
                                                   now_ms=ex.mtime_ns // 1_000_000)
                return ex, (EXTRACTOR_NAME, EXTRACTOR_VERSION), []
            except LlmOutputInvalid as exc:
                return Examined("error", exc.reason, sha256=ex.sha256, size=ex.size, mtime_ns=ex.mtime_ns), \
                    (EXTRACTOR_NAME, EXTRACTOR_VERSION), []
            except LlmUnavailable as exc:
                why = f"model unavailable ({exc.reason})"
                if ar is not None:
                    ar.llm_down = why
        ex.items = await asyncio.to_thread(rules_extractor(watch), ex.doc, ex.mtime_ns // 1_000_000)
        return ex, ("rules", _rules_version()), [f"{why}; extracted with rules instead"]

    @atomic
    async def commit(self, c: Claimed, watch: Watch, ex: Examined, *,
                     extractor: tuple[str, str] = ("rules", ""), notes: Sequence[str] = ()) -> tuple[bool, str | None]:
        """Store the outcome of one claimed row in one transaction. Returns whether the file
        counted as processed (everything but ``later``) and the run it counted on."""
        now = clock.now_ms()
        async with self.repo.transaction() as tx:
            w = tx.w
            row = await w.fetchone("SELECT gen, path, run_id FROM ingest_files WHERE id = ?", (c.id,))
            if row is None:  # the watch was deleted meanwhile
                return False, None
            path, run_id = row["path"], row["run_id"]
            changed_meanwhile = row["gen"] != c.gen
            if ex.outcome == "later":
                await w.execute(
                    "UPDATE ingest_files SET status = 'pending', attempts = max(attempts - 1, 0), due_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (now + ex.delay_ms, now, c.id),
                )
                return False, run_id
            status, reason, created = "done", None, 0
            messages = [f"{_rel(watch, path)}: {n}" for n in notes]
            if ex.outcome == "gone":
                status, reason = "skipped", DELETED
                await mark_missing(tx, [path])
                for sink in self._sinks:
                    await sink.gone(w, [path])
            elif ex.outcome in ("skipped", "error"):
                status, reason = ex.outcome, ex.reason
                if ex.outcome == "error":
                    messages.append(f"{_rel(watch, path)}: {ex.reason}")
            elif ex.outcome == "unchanged":
                await mark_present(tx, path)
            elif ex.outcome == "document":
                assert ex.sha256 is not None
                source = Source(path=path, sha256=ex.sha256, watch=watch, run_id=run_id,
                                extractor=extractor[0], extractor_version=extractor[1], exists=self._exists)
                stored = await store_items(tx, source, ex.items or [])
                for sink in self._sinks:
                    await sink.document(w, path, watch.id, ex.sha256, ex.doc)
                created = stored.created
                messages += [f"{_rel(watch, path)}: {r}" for r in stored.refused or []]
            final = "pending" if changed_meanwhile else status
            await w.execute(
                "UPDATE ingest_files SET status = ?, reason = ?, sha256 = coalesce(?, sha256),"
                " size = coalesce(?, size), mtime_ns = coalesce(?, mtime_ns), items_created = items_created + ?,"
                " extractor = coalesce(?, extractor), due_at = ?, updated_at = ? WHERE id = ?",
                (final, reason, ex.sha256, ex.size, ex.mtime_ns, created,
                 extractor[0] if ex.outcome == "document" else None, now, now, c.id),
            )
            if run_id:
                await count_file(w, run_id, created=created, failed=status == "error")
                for m in messages:
                    await add_error(w, run_id, m)
        return True, run_id


def _rel(watch: Watch, path: str) -> str:
    """``path`` relative to the watched folder it is in (as is when in none), for run errors."""
    root = path_rules.root_of(path, watch.paths)
    return os.path.relpath(path, root) if root else path


def _rules_version() -> str:
    from sidecar.ingest.rules import EXTRACTOR_VERSION

    return EXTRACTOR_VERSION
