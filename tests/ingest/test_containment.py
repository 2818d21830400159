"""Folder containment (issue 9): a hostile folder cannot make the watcher read outside it, system
folders cannot be watched, names that are not UTF-8 are handled, and a failed run says so."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.ingest import opener as opener_mod
from sidecar.ingest.examine import examine
from sidecar.ingest.opener import Refused, WatchRoot, escape_name, unescape_name
from sidecar.ingest.options import IngestOptions
from sidecar.settings import Settings
from tests.fakes.memory_keyring import MemoryKeyring
from tests.ingest.harness import FAST, Harness, running

SECRET = "- [ ] SECRET from outside the watched folder\n"


async def test_a_subfolder_swapped_for_a_symlink_never_leaks_outside_files(ing: Harness, inbox: Path,
                                                                            tmp_path: Path) -> None:
    sub = inbox / "sub"
    sub.mkdir()
    (sub / "plan.md").write_text("- [ ] Inside task\n")
    w = await ing.create_watch(inbox)
    await ing.wait_file(sub / "plan.md")
    await ing.settle(w["id"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "plan.md").write_text(SECRET)  # same name as the file seen before, new content
    # A write inside queues the path; before it is read, the folder becomes a symlink elsewhere.
    (sub / "plan.md").write_text("- [ ] Inside task, edited\n")
    os.rename(sub, tmp_path / "moved-away")
    os.symlink(outside, sub)
    await asyncio.sleep(1.0)  # the event's path is examined now
    status, _ = await ing.call("POST", f"/v1/watches/{w['id']}/run")
    assert status in (200, 201, 202)
    await ing.settle(w["id"])
    assert "SECRET from outside the watched folder" not in await ing.titles()
    f = await ing.file(sub / "plan.md")
    assert f is not None and f["status"] == "skipped", f  # its folder left the watch


def test_every_component_is_opened_without_following_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "ok.md").write_text("fine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ok.md").write_text(SECRET)
    wr = WatchRoot(str(root))
    assert wr.read(str(root / "a" / "b" / "ok.md"), 1000).data == b"fine"
    # an intermediate component replaced by a symlink to a folder elsewhere
    os.rename(root / "a" / "b", tmp_path / "b-away")
    os.symlink(outside, root / "a" / "b")
    with pytest.raises(Refused) as info:
        wr.read(str(root / "a" / "b" / "ok.md"), 1000)
    assert info.value.outcome == "skipped" and "symlink" in info.value.reason
    assert wr.lstat(str(root / "a" / "b" / "ok.md")) is None  # not reachable: gone from the watch
    # the root itself replaced by a symlink
    os.rename(root, tmp_path / "root-away")
    os.symlink(outside, root)
    with pytest.raises(Refused):
        wr.read(str(root / "ok.md"), 1000)
    listing = wr.walk({".md"})
    assert listing.files == []


def _renameat2() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = libc.renameat2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


@pytest.mark.skipif(not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "renameat2"),
                    reason="libc has no renameat2 (RENAME_EXCHANGE)")
def test_rename_exchange_race_never_reads_outside(tmp_path: Path) -> None:
    """A thread swaps a real subfolder and a symlink to an outside folder atomically
    (``renameat2(RENAME_EXCHANGE)``) as fast as it can while the file is examined again and
    again: the outside content is never read."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "plan.md").write_text("- [ ] Inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "plan.md").write_text(SECRET)
    os.symlink(outside, root / "decoy")
    past = time.time() - 60
    for p in (root / "sub" / "plan.md", outside / "plan.md"):
        os.utime(p, (past, past))
    rename = _renameat2()
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        a, b = str(root / "sub").encode(), str(root / "decoy").encode()
        while not stop.is_set():
            if rename(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
                swaps += 1

    t = threading.Thread(target=swapper)
    t.start()
    wr = WatchRoot(str(root))
    options = replace(FAST, settle_ms=0)
    outcomes: dict[str, int] = {}
    try:
        for _ in range(1500):
            ex = examine(str(root / "sub" / "plan.md"), wr, prev_sha=None, options=options)
            outcomes[ex.outcome] = outcomes.get(ex.outcome, 0) + 1
            assert ex.doc is None or "SECRET" not in ex.doc.text, "read a file outside the watched folder"
    finally:
        stop.set()
        t.join()
    assert swaps > 100 and outcomes.get("document", 0) > 0, (swaps, outcomes)


@pytest.mark.parametrize("path", ["/", "/proc", "/sys", "/dev", "/etc", "/usr", "/proc/self", "/sys/kernel",
                                  "/dev/shm", "/run"])
async def test_system_and_pseudo_fs_roots_are_refused(ing: Harness, path: str) -> None:
    if not Path(path).is_dir():  # noqa: ASYNC240 (a fixture-like check before the app runs)
        pytest.skip(f"{path} does not exist here")
    status, body = await ing.call("POST", "/v1/watches", {"name": "x", "paths": [path]})
    assert status == 422, body
    detail = str(body["error"]["detail"])
    assert body["error"]["code"] == "validation_failed" and ("pick a" in detail or "pseudo" in detail), body


async def test_home_folder_and_above_are_refused_inside_is_fine(ing: Harness, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "users" / "ana"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for path in (home, home.parent):
        status, body = await ing.call("POST", "/v1/watches", {"name": "x", "paths": [str(path)]})
        assert status == 422 and "home folder" in str(body["error"]["detail"]), body
    await ing.create_watch(home / "Documents")
    # a symlink to the home folder is the home folder
    os.symlink(home, tmp_path / "link-home")
    status, _ = await ing.call("POST", "/v1/watches", {"name": "x", "paths": [str(tmp_path / "link-home")]})
    assert status == 422


def test_pseudo_fs_detection_uses_the_mount_table() -> None:
    assert opener_mod._fs_type("/proc/self") == "proc"
    assert opener_mod.unwatchable("/proc/self") is not None


def _write_raw(path: bytes, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


async def test_names_that_are_not_utf8_are_ingested_and_shown_escaped(ing: Harness, inbox: Path) -> None:
    _write_raw(os.fsencode(str(inbox)) + b"/bad_\xff.md", b"- [ ] Task in a badly named file\n")
    (inbox / "good.md").write_text("- [ ] Task in a good file\n")
    w = await ing.create_watch(inbox)
    await ing.wait_file(inbox / "good.md")
    await ing.settle(w["id"])
    files = {f["path"]: f for f in await ing.files(w["id"])}
    shown = f"{inbox}/bad_\\xff.md"
    assert files[shown]["status"] == "done" and files[shown]["itemsCreated"] == 1, files
    assert files[str(inbox / "good.md")]["status"] == "done"
    assert await ing.titles() == ["Task in a badly named file", "Task in a good file"]
    runs = await ing.runs(w["id"])
    assert runs and all(r["status"] == "success" for r in runs), runs
    # a burst with a bad name: every file of the burst gets a status, none is dropped
    for i in range(5):
        (inbox / f"burst-{i}.md").write_text(f"- [ ] Burst {i}\n")
    _write_raw(os.fsencode(str(inbox)) + b"/burst_\xfe\xfd.md", b"- [ ] Burst bad\n")
    for i in range(5):
        assert (await ing.wait_file(inbox / f"burst-{i}.md"))["status"] == "done"
    assert (await ing.wait_file(f"{inbox}/burst_\\xfe\\xfd.md"))["status"] == "done"
    # deleting it is seen too (the stored name maps back to the file)
    os.unlink(os.fsencode(str(inbox)) + b"/bad_\xff.md")
    await ing.call("POST", f"/v1/watches/{w['id']}/run")
    await ing.settle(w["id"])
    assert (await ing.file(shown))["status"] == "skipped"  # type: ignore[index]


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b))
def test_escaped_names_round_trip_losslessly(name: bytes) -> None:
    text = os.fsdecode(name)
    shown = escape_name(text)
    shown.encode("utf-8")  # storable
    assert unescape_name(shown) == name


def test_escaping_is_one_to_one() -> None:
    assert escape_name(os.fsdecode(b"a\xff")) != escape_name("a\\xff")
    assert escape_name("plain name.md") == "plain name.md"


async def test_a_run_whose_scan_fails_says_so(ing: Harness, inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = await ing.create_watch(inbox)
    await ing.settle(w["id"])

    def broken(self: WatchRoot, *a: object, **kw: object) -> None:
        raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(WatchRoot, "walk", broken)
    status, _ = await ing.call("POST", f"/v1/watches/{w['id']}/run")
    assert status < 500
    await ing.settle(w["id"])
    last = (await ing.runs(w["id"]))[0]
    assert last["status"] == "error" and any("scan failed" in e for e in last["errors"]), last


async def test_files_per_watch_are_capped_with_a_clear_status(settings: Settings, memory_keyring: MemoryKeyring,
                                                             inbox: Path) -> None:
    for i in range(6):
        (inbox / f"f{i}.md").write_text(f"- [ ] Task {i}\n")
    async with running(settings, IngestOptions(**{**FAST.__dict__, "max_files_per_watch": 4})) as h:
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
        assert len(await h.files(w["id"])) == 4
        runs = await h.runs(w["id"])
        assert runs[0]["status"] == "partial" and any("more than 4" in e for e in runs[0]["errors"]), runs


class DeafObserver:
    """A native observer that delivers no events at all, like a kernel queue that overflowed."""

    def schedule(self, handler: object, path: str, recursive: bool = False) -> object:
        return object()

    def unschedule(self, watch: object) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


async def test_inotify_overflow_is_degraded_then_reconciled(settings: Settings, memory_keyring: MemoryKeyring,
                                                           inbox: Path) -> None:
    import logging

    from sidecar.appstate import READINESS

    async with running(settings, native_observer=DeafObserver) as h:
        readiness = h.app[READINESS]
        history: list[tuple[str, str]] = []
        real_set = readiness.set

        def recording(component: str, state: str, detail: str) -> None:
            if component == "watcher":
                history.append((state, detail))
            real_set(component, state, detail)  # type: ignore[arg-type]

        readiness.set = recording  # type: ignore[method-assign]
        w = await h.create_watch(inbox)
        await h.settle(w["id"])
        for i in range(3):  # events for these are lost
            (inbox / f"lost-{i}.md").write_text(f"- [ ] Lost {i}\n")
        await asyncio.sleep(0.5)
        assert await h.files(w["id"]) == []
        # watchdog's only signal of an overflow, from its observer thread:
        t = threading.Thread(target=logging.getLogger("watchdog.observers.inotify_c").warning,
                             args=("Inotify queue overflowed; filesystem events were lost",))
        t.start()
        t.join()
        for _ in range(200):
            state = readiness.get("watcher")
            files = await h.files(w["id"])
            if len(files) == 3 and all(f["status"] == "done" for f in files) and state.state == "ok":
                break
            await asyncio.sleep(0.05)
        assert any(s == "degraded" and "overflowed" in d for s, d in history), history
        assert sorted(f["status"] for f in await h.files(w["id"])) == ["done"] * 3
        assert h.app[READINESS].get("watcher").state == "ok"
