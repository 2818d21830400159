"""Hostile and broken files in a watched folder: each ends in a status with a reason, nothing
stops the watcher, and the run says what went wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.ingest import readers
from sidecar.ingest.queue import DELETED
from tests.ingest.conftest import encrypted_pdf, pdf_with_text
from tests.ingest.harness import Harness

BAD_TZ_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:mars-1
DTSTAMP:20260301T090000Z
DTSTART;TZID=Mars/Olympus_Mons:20260410T090000
SUMMARY:Landing rehearsal
END:VEVENT
END:VCALENDAR
"""
HTML_ONLY_EMAIL = """From: Ana <ana@example.com>
To: team@example.com
Subject: Launch follow-up
Date: Mon, 02 Mar 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><p>Hi all,</p><ul><li>TODO: send the press kit to Lena</li></ul></body></html>
"""


async def test_hostile_files_end_with_a_reason_and_the_watcher_keeps_going(ing: Harness, inbox: Path,
                                                                          tmp_path: Path) -> None:
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])
    outside = tmp_path / "outside.md"
    outside.write_text("- [ ] Secret outside the root\n")

    (inbox / "junk.md").write_bytes(bytes(range(256)) * 64)
    (inbox / "latin1.md").write_bytes(b"- [ ] Caf\xe9 au lait\n- [ ] Valid task \xff\xfe\n")
    (inbox / "empty.md").write_bytes(b"")
    (inbox / "empty.pdf").write_bytes(b"")
    pdf = pdf_with_text("Action: review the contract")
    (inbox / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (inbox / "locked.pdf").write_bytes(encrypted_pdf("hunter2"))
    with (inbox / "huge.md").open("wb") as fh:  # 100 MB, sparse
        fh.truncate(100 << 20)
    os.symlink("loop-b.md", inbox / "loop-a.md")
    os.symlink("loop-a.md", inbox / "loop-b.md")
    os.symlink(outside, inbox / "escape.md")
    sub = inbox / "sub"
    sub.mkdir()
    os.symlink("..", sub / "up")  # a folder loop: never followed
    os.mkfifo(inbox / "pipe.md")
    (inbox / "mars.ics").write_text(BAD_TZ_ICS)
    (inbox / "html-only.eml").write_text(HTML_ONLY_EMAIL)

    expected = {
        "junk.md": ("error", "binary"),
        "empty.pdf": ("error", ""),
        "truncated.pdf": ("error", ""),
        "locked.pdf": ("error", "encrypted"),
        "huge.md": ("skipped", "too large: 104857600 bytes"),
        "loop-a.md": ("skipped", "symlinks are not followed"),
        "loop-b.md": ("skipped", "symlinks are not followed"),
        "escape.md": ("skipped", "symlinks are not followed"),
        "pipe.md": ("skipped", "not a regular file"),
        "latin1.md": ("done", None),
        "empty.md": ("done", None),
        "mars.ics": ("done", None),
        "html-only.eml": ("done", None),
    }
    for name in expected:
        await ing.wait_file(inbox / name)
    files = {Path(f["path"]).name: f for f in await ing.files(w["id"])}
    for name, (status, reason) in expected.items():
        f = files[name]
        assert f["status"] == status, (name, f)
        if status != "done":
            assert f["reason"], (name, f)
            assert reason is not None and reason in f["reason"], (name, f["reason"])
    assert files["empty.md"]["itemsCreated"] == 0

    titles = sorted(t["title"] for t in await ing.entities("tasks"))
    assert "Secret outside the root" not in titles
    assert "Valid task \ufffd\ufffd" in titles or any(t.startswith("Valid task") for t in titles)
    assert any("press kit" in t for t in titles), titles
    assert [t["title"] for t in await ing.entities("timelines")] == ["Landing rehearsal"]

    (inbox / "after.md").write_text("- [ ] Still watching\n")
    assert (await ing.wait_file(inbox / "after.md"))["status"] == "done"
    await ing.settle(w["id"])
    runs = await ing.runs(w["id"])
    bad = [r for r in runs if r["errors"]]
    assert bad and all(r["status"] == "partial" for r in bad)
    all_errors = " | ".join(e for r in runs for e in r["errors"])
    assert "junk.md: binary" in all_errors and "locked.pdf" in all_errors


async def test_a_file_deleted_while_being_read(ing: Harness, inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = readers.read_document

    def vanish_then_read(path: Path, *, max_bytes: int, data: bytes | None = None) -> readers.Document:
        if path.name == "vanishing.md":
            path.unlink()
        return real(path, max_bytes=max_bytes, data=data)

    monkeypatch.setattr(readers, "read_document", vanish_then_read)
    w = await ing.create_watch(inbox)
    (inbox / "vanishing.md").write_text("- [ ] Now you see me\n")
    f = await ing.wait_file(inbox / "vanishing.md", ("skipped", "error"))
    assert f["status"] == "skipped" and f["reason"] == DELETED
    (inbox / "next.md").write_text("- [ ] The next file is fine\n")
    assert (await ing.wait_file(inbox / "next.md"))["status"] == "done"
    await ing.settle(w["id"])
    assert [t["title"] for t in await ing.entities("tasks")] == ["The next file is fine"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod 000 does not deny root, so the case cannot be produced")
async def test_permission_denied(ing: Harness, inbox: Path) -> None:
    locked = inbox / "locked.md"
    locked.write_text("- [ ] Hidden\n")
    locked.chmod(0)
    try:
        w = await ing.create_watch(inbox)
        f = await ing.wait_file(locked)
        assert f["status"] == "error" and f["reason"] == "permission denied"
        await ing.settle(w["id"])
    finally:
        locked.chmod(0o644)


async def test_unreadable_file_error_stays_until_changed_and_manual_run_retries(ing: Harness, inbox: Path) -> None:
    bad = inbox / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    w = await ing.create_watch(inbox)
    f = await ing.wait_file(bad)
    assert f["status"] == "error" and f["attempts"] == 1
    await ing.settle(w["id"])
    await ing.service.pipeline.scan(await ing.service.pipeline.watches.get(w["id"]))
    assert (await ing.file(bad))["attempts"] == 1, "an unchanged broken file is not retried by scans"  # type: ignore[index]
    bad.write_bytes(pdf_with_text("TODO: fixed version"))
    f = await ing.wait_file(bad, ("done",))
    assert [t["title"] for t in await ing.entities("tasks")] == ["fixed version"]
