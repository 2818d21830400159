"""``sidecar.background.loading_libraries``: heavy loads in worker threads do not trigger the
full garbage collections that stalled the event loop (issue 9: health ~1 s during a warm-up)."""

from __future__ import annotations

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
