"""The pipeline's pieces on a real SQLite file, without a server: exactly-once storage with
provenance, rollback, recovery after a crash, the give-up rule, path rules and scan planning."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sidecar.ingest import paths as path_rules
from sidecar.ingest.items import ExtractedItem, Span
from sidecar.ingest.options import IngestOptions
from sidecar.ingest.pipeline import Pipeline
from sidecar.ingest.provenance import Source, store_items
from sidecar.ingest.queue import DELETED, Known
from sidecar.ingest.runs import INTERRUPTED
from sidecar.ingest.scanner import Found, plan, walk
from sidecar.ingest.watches import Watch, WatchCreate
from sidecar.store.db import Store
from sidecar.store.repository import Repository


def task(title: str, start: int = 0) -> ExtractedItem:
    return ExtractedItem(type="task", title=title, span=Span(start=start, end=start + len(title), line_start=1,
                                                             line_end=1), confidence=0.9, signal="checkbox")


def milestone(title: str, date: int) -> ExtractedItem:
    return ExtractedItem.model_construct(type="timeline", title=title, date=date, due_date=None, description=None,
                                         priority=None, assignees=[], status="todo", span=Span(start=0, end=1),
                                         confidence=0.9, signal="vevent")


@pytest.fixture
async def watch(store: Store, tmp_path: Path) -> Watch:
    pipeline = Pipeline(store, Repository(store))
    return await pipeline.watches.create(WatchCreate(name="Inbox", paths=[str(tmp_path)]))


def source(watch: Watch, path: str, sha: str = "a" * 64) -> Source:
    return Source(path=path, sha256=sha, watch=watch, run_id="run-1", extractor="rules", extractor_version="1.0.0")


async def test_items_are_stored_once_with_provenance(store: Store, repo: Repository, watch: Watch) -> None:
    src = source(watch, "/x/plan.md")
    async with repo.transaction() as tx:
        r = await store_items(tx, src, [task("Book the venue", 10), task("Order cake", 40)])
    assert (r.created, r.known) == (2, 0)
    async with repo.transaction() as tx:  # same content again
        r = await store_items(tx, src, [task("Book the venue", 10), task("Order cake", 40)])
    assert (r.created, r.known) == (0, 2)
    async with repo.transaction() as tx:  # modified: one new item, one moved down
        r = await store_items(tx, source(watch, "/x/plan.md", "b" * 64),
                              [task("Book  the VENUE!", 99), task("Pay deposit", 120)])
    assert (r.created, r.known) == (1, 1)
    tasks, total = await repo.list("tasks")
    assert total == 3 and all(t.is_ai_suggested and not t.is_approved for t in tasks)
    rows = [dict(x) for x in await store.fetchall("SELECT * FROM ingest_provenance ORDER BY id")]
    assert [(x["entity"], x["state"]) for x in rows] == [("tasks", "active")] * 3
    first = rows[0]
    assert first["source_path"] == "/x/plan.md" and first["content_sha256"] == "a" * 64
    assert (first["span_start"], first["span_end"], first["line_start"]) == (10, 24, 1)
    assert (first["extractor"], first["extractor_version"]) == ("rules", "1.0.0")
    assert first["watch_id"] == watch.id and first["run_id"] == "run-1" and len(first["fingerprint"]) == 64
    assert {x["entity_id"] for x in rows} == {t.id for t in tasks}
    log = await store.changes_after(0)
    assert sum(1 for e in log if e.entity == "tasks" and e.op == "insert") == 3


async def test_item_and_provenance_roll_back_together(store: Store, repo: Repository, watch: Watch) -> None:
    with pytest.raises(RuntimeError):
        async with repo.transaction() as tx:
            await store_items(tx, source(watch, "/x/a.md"), [task("Doomed")])
            raise RuntimeError("crash before commit")
    assert (await repo.list("tasks"))[1] == 0
    assert await store.fetchall("SELECT * FROM ingest_provenance") == []
    assert await store.changes_after(0) == []


async def test_concurrent_commits_of_one_source_create_once(store: Store, repo: Repository, watch: Watch) -> None:
    async def commit() -> int:
        async with repo.transaction() as tx:
            return (await store_items(tx, source(watch, "/x/a.md"), [task("Once")])).created

    assert sorted(await asyncio.gather(commit(), commit(), commit())) == [0, 0, 1]


async def test_a_refused_item_is_named_and_the_rest_stored(store: Store, repo: Repository, watch: Watch) -> None:
    async with repo.transaction() as tx:
        r = await store_items(tx, source(watch, "/x/cal.ics"),
                              [milestone("Year minus one", -10**14), milestone("Fine", 1_800_000_000_000)])
    assert r.created == 1 and r.refused and "Year minus one" in r.refused[0]
    [project], _ = await repo.list("projects")
    assert project.name == "Inbox"
    timelines, _ = await repo.list("timelines")
    assert [t.title for t in timelines] == ["Fine"] and timelines[0].project_id == project.id


async def test_recovery_after_a_crash_and_giving_up_on_a_poison_file(store: Store, repo: Repository,
                                                                     watch: Watch, tmp_path: Path) -> None:
    p = Pipeline(store, repo, IngestOptions(max_attempts=2, settle_ms=0))
    poison = tmp_path / "poison.md"
    poison.write_text("- [ ] whatever\n")
    run = await p.runs.start(watch.id, "watch")
    await p.queue.enqueue(watch.id, [str(poison)], run_id=run.id)
    for _ in range(2):  # claimed, then the process "dies" twice
        [claimed] = await p.queue.claim(10)
        assert claimed.path == str(poison)
        assert await p.recover() == (1, 1 if _ == 0 else 0)
    row = await store.fetchone("SELECT status, attempts FROM ingest_files")
    assert tuple(row) == ("pending", 2)  # type: ignore[arg-type]
    assert (await p.runs.get(run.id)).status == "partial"
    assert INTERRUPTED in (await p.runs.get(run.id)).errors
    task_ = asyncio.create_task(p.serve_queue())
    try:
        for _ in range(100):
            row = await store.fetchone("SELECT status, reason FROM ingest_files")
            if row and row[0] == "error":
                break
            await asyncio.sleep(0.05)
    finally:
        task_.cancel()
        await asyncio.gather(task_, return_exceptions=True)
    assert row is not None and row[0] == "error" and "gave up after 2 attempts" in row[1]
    assert (await repo.list("tasks"))[1] == 0


def test_path_rules() -> None:
    root = "/w"
    good = ["/w/a.md", "/w/sub/b.TXT", "/w/x/y/z/notes.eml"]
    bad = ["/w/~$report.md", "/w/a.md.swp", "/w/a.tmp", "/w/a.part", "/w/d.crdownload", "/w/.DS_Store",
           "/w/.hidden.md", "/w/.git/x.md", "/w/sub/.cache/y.md", "/w/a.md~", "/w/#a.md#", "/w/a.docx", "/other/a.md",
           "/w"]
    exts = {".md", ".txt", ".eml"}
    assert [p for p in good if path_rules.is_candidate(p, root, exts)] == good
    assert [p for p in bad if path_rules.is_candidate(p, root, exts)] == []


def test_walk_and_plan(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "b.md").write_text("b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("c")
    (tmp_path / "sub" / "c.md.tmp").write_text("c")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    listing = walk(str(tmp_path), {".md"})
    paths = sorted(f.path for f in listing.files)
    assert paths == [str(tmp_path / "a.md"), str(tmp_path / "sub" / "c.md")] and not listing.missing_root
    assert walk(str(tmp_path / "nope"), {".md"}).missing_root

    found = [Found("/w/new.md", 1, 1), Found("/w/same.md", 5, 7), Found("/w/changed.md", 5, 8),
             Found("/w/back.md", 5, 7), Found("/w/broken.md", 3, 3)]
    known = {
        "/w/same.md": Known("done", None, 5, 7),
        "/w/changed.md": Known("done", None, 5, 7),
        "/w/back.md": Known("skipped", DELETED, 5, 7),
        "/w/broken.md": Known("error", "binary content", 3, 3),
        "/w/gone.md": Known("done", None, 1, 1),
    }
    p = plan(found, known)
    assert p.enqueue == ["/w/new.md", "/w/changed.md", "/w/back.md"] and p.gone == ["/w/gone.md"]
    assert plan(found, known, retry_errors=True).enqueue[-1] == "/w/broken.md"


# ---- the two race guards ----------------------------------------------------------------------


def _old_file(path: Path, text: str) -> str:
    """Write ``text`` and date it a minute back (past the settle time)."""
    path.write_text(text, encoding="utf-8")
    past = os.stat(path).st_mtime - 60
    os.utime(path, (past, past))
    return str(path)


def test_a_file_changed_while_being_read_is_read_again_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard 1 (``examine``): size/mtime differ after the read → ``later``, not a half-read
    document. The change is made by the reader itself, while it reads."""
    from sidecar.ingest import examine as pl
    from sidecar.ingest import readers

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = _old_file(inbox / "plan.md", "- [ ] first\n")
    real_read = readers.read_document

    def read_while_appending(p: Path, *, max_bytes: int, data: bytes | None = None) -> object:
        doc = real_read(p, max_bytes=max_bytes, data=data)
        with open(p, "a", encoding="utf-8") as f:  # the editor saves again mid-read
            f.write("- [ ] second\n")
        return doc

    monkeypatch.setattr(readers, "read_document", read_while_appending)
    from sidecar.ingest.opener import WatchRoot

    root = WatchRoot(os.path.realpath(inbox))
    ex = pl.examine(str(path), root, prev_sha=None, options=IngestOptions(),
                    extract=pl.rules_extractor(Watch.model_construct(data_types=["tasks"], skip_done=False)))
    assert ex.outcome == "later" and ex.items is None
    monkeypatch.setattr(readers, "read_document", real_read)
    again = pl.examine(str(path), root, prev_sha=None, options=IngestOptions(settle_ms=0),
                       extract=pl.rules_extractor(Watch.model_construct(data_types=["tasks"], skip_done=False)))
    assert again.outcome == "document" and [i.title for i in again.items or []] == ["first", "second"]


async def test_a_file_changed_before_the_commit_is_processed_again(
    store: Store, repo: Repository, tmp_path: Path
) -> None:
    """Guard 2 (``FileWorker.commit``): an event for the file while it was processed moves the row's
    ``gen``; the commit then leaves the row ``pending`` so the newer content is read too
    (without the guard the row ends ``done`` with the old content and "second" is lost)."""
    from sidecar.ingest import examine as pl

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    real_inbox = str(inbox.resolve())
    pipeline = Pipeline(store, repo, IngestOptions(settle_ms=0))
    watch = await pipeline.watches.create(WatchCreate(name="Inbox", paths=[str(inbox)]))
    path = _old_file(inbox / "plan.md", "- [ ] first\n")
    await pipeline.enqueue(watch, [path])
    [claimed] = await pipeline.queue.claim(1)
    from sidecar.ingest.opener import WatchRoot

    ex = await asyncio.to_thread(pl.examine, claimed.path, WatchRoot(real_inbox), prev_sha=None,
                                 options=pipeline.options, extract=pl.rules_extractor(watch))
    assert ex.outcome == "document"
    _old_file(inbox / "plan.md", "- [ ] first\n- [ ] second\n")  # saved again meanwhile …
    await pipeline.enqueue(watch, [path])  # … and its watchdog event arrives before the commit
    await pipeline.worker.commit(claimed, watch, ex, extractor=("rules", "test"))
    row = await store.fetchone("SELECT status FROM ingest_files WHERE id = ?", (claimed.id,))
    assert row is not None and row[0] == "pending"
    [again] = await pipeline.queue.claim(1)
    await pipeline.worker.process_file(again, watch)
    tasks, _ = await repo.list("tasks")
    assert sorted(t.title for t in tasks) == ["first", "second"]
    row = await store.fetchone("SELECT status FROM ingest_files WHERE id = ?", (claimed.id,))
    assert row is not None and row[0] == "done"
