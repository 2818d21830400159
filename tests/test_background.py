"""``sidecar.background.loading_libraries``: heavy loads in worker threads do not trigger the
full garbage collections that stalled the event loop (issue 9: health ~1 s during a warm-up)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading

from sidecar.background import loading_libraries


def test_no_collections_while_loading_and_what_was_loaded_is_frozen() -> None:
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with loading_libraries():
        assert not gc.isenabled()
        loaded = [[i] for i in range(50_000)]  # container objects, as an import leaves behind
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + 50_000
    del loaded
    gc.unfreeze()


def test_concurrent_loads_resume_collection_only_when_the_last_one_ends() -> None:
    first_in, release = threading.Event(), threading.Event()

    def other_load() -> None:
        with loading_libraries():
            first_in.set()
            release.wait(5)

    t = threading.Thread(target=other_load)
    t.start()
    assert first_in.wait(5)
    with loading_libraries():
        pass
    assert not gc.isenabled(), "collection resumed while another load was still running"
    release.set()
    t.join()
    assert gc.isenabled()
    gc.unfreeze()


def test_the_gil_switch_interval_is_short_while_loading_and_restored_after() -> None:
    """A loading thread (pure-Python imports) otherwise keeps the GIL for CPython's 5 ms each
    time the event loop wakes, which slowed the first run's RUN_STARTED."""
    import sys

    from sidecar.background import LOADING_SWITCH_INTERVAL_S

    before = sys.getswitchinterval()
    with loading_libraries():
        assert sys.getswitchinterval() == LOADING_SWITCH_INTERVAL_S
        with loading_libraries():  # nested: still short
            pass
        assert sys.getswitchinterval() == LOADING_SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == before
    gc.unfreeze()


def test_a_pause_shares_the_count_with_loads_and_resumes_only_what_was_running() -> None:
    from sidecar.background import collector_paused

    with collector_paused():  # e.g. a sync group's apply, while a heavy load begins and ends
        with loading_libraries():
            pass
        assert not gc.isenabled(), "the load resumed collection inside another pause"
    assert gc.isenabled()
    gc.unfreeze()
    gc.disable()  # as start-up does until the handshake
    try:
        with collector_paused():
            pass
        assert not gc.isenabled(), "a pause turned on a collector that was off"
    finally:
        gc.enable()


# -- foreground(): other threads' imports wait while the user waits --------------------------


def _module(tmp_path, name: str, body: str = "") -> None:  # type: ignore[no-untyped-def]
    (tmp_path / f"{name}.py").write_text(body + "\nLOADED = True\n", encoding="utf-8")


def _import_in_thread(name: str) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def load() -> None:
        __import__(name)
        done.set()

    t = threading.Thread(target=load, name=f"load-{name}")
    t.start()
    return t, done


def test_a_background_import_waits_until_the_foreground_ends(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Three loading threads and the event loop share one GIL on 2 cores: a run posted right
    after the handshake ran at a fraction of its speed (RUN_STARTED in ~250 ms, not ~70)."""
    from sidecar import background

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(background, "FOREGROUND_HOLD_MAX_S", 5.0)
    _module(tmp_path, "fg_probe_held")
    with background.foreground():
        t, done = _import_in_thread("fg_probe_held")
        assert not done.wait(0.3), "another thread's import went on while the foreground ran"
        import json  # noqa: F401  (the foreground's own imports are never held)
    assert done.wait(5)
    t.join()


def test_a_held_import_is_released_at_its_time_bound(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sidecar import background

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(background, "FOREGROUND_HOLD_MAX_S", 0.2)
    _module(tmp_path, "fg_probe_bounded")
    with background.foreground():
        t, done = _import_in_thread("fg_probe_bounded")
        assert done.wait(3), "a held import waited past its bound"
    t.join()


def test_the_foreground_never_waits_for_a_module_a_held_thread_is_importing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The held thread is inside ``fg_outer`` (its module lock taken) when it is held at
    ``fg_inner``; the foreground then imports ``fg_outer`` and would wait for it: the hold ends
    at once instead of at its (here 10 s) bound."""
    import time

    from sidecar import background

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(background, "FOREGROUND_HOLD_MAX_S", 10.0)
    _module(tmp_path, "fg_inner")
    _module(tmp_path, "fg_gate_ready")
    # fg_outer waits, inside its own import, until the foreground has begun, then imports fg_inner
    _module(tmp_path, "fg_outer", "import builtins\nbuiltins._fg_begun.wait(5)\nimport fg_inner")
    import builtins

    builtins._fg_begun = threading.Event()  # type: ignore[attr-defined]
    try:
        t, done = _import_in_thread("fg_outer")
        with background.foreground():
            builtins._fg_begun.set()  # type: ignore[attr-defined]
            time.sleep(0.2)  # the loading thread is now held at fg_inner, holding fg_outer's lock
            started = time.monotonic()
            import fg_outer  # type: ignore[import-not-found]
            waited = time.monotonic() - started
        assert fg_outer.LOADED and waited < 2.0, f"the foreground waited {waited:.1f} s for a held thread"
        assert done.wait(5)
        t.join()
    finally:
        del builtins._fg_begun  # type: ignore[attr-defined]


async def test_other_start_up_work_waits_for_the_first_stage() -> None:
    """What a request right after the handshake needs (a run's AG-UI models) loads alone first;
    the rest of start-up's work begins when it has ended, even if it failed."""
    import asyncio

    from aiohttp import web

    from sidecar.appstate import BACKGROUND, BACKGROUND_FIRST, HANDSHAKE_DONE
    from sidecar.background import after_handshake, background_ctx

    app = web.Application()
    app[HANDSHAKE_DONE], app[BACKGROUND], app[BACKGROUND_FIRST] = asyncio.Event(), set(), set()
    order: list[str] = []
    release_first = asyncio.Event()

    async def rest() -> None:
        order.append("rest")

    async def first() -> None:
        order.append("first begins")
        await release_first.wait()
        order.append("first ends")
        raise RuntimeError("a failed first stage does not hold the rest back")

    after_handshake(app, "rest", rest)  # registered before the first stage: still waits for it
    after_handshake(app, "first", first, first=True)
    app[HANDSHAKE_DONE].set()
    await asyncio.sleep(0.05)
    assert order == ["first begins"]
    release_first.set()
    await asyncio.wait(app[BACKGROUND], timeout=5)
    assert order == ["first begins", "first ends", "rest"]
    cleanup = background_ctx(app)
    await cleanup.__anext__()
    with contextlib.suppress(StopAsyncIteration):
        await cleanup.__anext__()


async def test_background_work_waits_until_the_foreground_has_settled() -> None:
    """Indexing waits for agent runs, and not only for the one in progress: a batch begun the
    moment a run ended slowed the start of the next run, posted right after it."""
    from sidecar.background import ForegroundWork

    fg = ForegroundWork()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await fg.settled(0.3, 5)  # nothing ran: at once
    assert loop.time() - t0 < 0.1
    fg.begin()
    fg.end()
    t0 = loop.time()
    await fg.settled(0.3, 5)  # a run just ended: its settle time first
    assert loop.time() - t0 >= 0.25

    fg.begin()

    async def runs() -> None:  # ends, and the next starts within the settle time, then ends
        await asyncio.sleep(0.2)
        fg.end()
        await asyncio.sleep(0.1)
        fg.begin()
        await asyncio.sleep(0.2)
        fg.end()

    other = asyncio.ensure_future(runs())
    t0 = loop.time()
    await fg.settled(0.3, 5)
    assert loop.time() - t0 >= 0.75, "began between two runs"
    await other
    fg.begin()
    t0 = loop.time()
    await fg.settled(0.3, 0.5)  # a run that goes on: at most the bound
    assert 0.45 <= loop.time() - t0 < 1.0
