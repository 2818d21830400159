"""Background work of the parts: what runs after the handshake, and its cancellation at shutdown.

A leaf module (it imports only :mod:`sidecar.appstate`), so every part can use it without
importing the application factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib._bootstrap
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from sidecar.appstate import BACKGROUND, BACKGROUND_FIRST, HANDSHAKE_DONE

log = logging.getLogger(__name__)

#: GIL switch interval (s) while a library loads in a worker thread (CPython's default: 5 ms).
LOADING_SWITCH_INTERVAL_S = 0.0005


class _Held:
    """A process-wide setting that stays changed while at least one holder needs it. The first
    holder saves its value (``read()``) and applies the change (``hold(saved)``); holders nest
    and may be in any thread; the last one out restores it (``restore(saved)``)."""

    def __init__(self, read: Callable[[], Any], hold: Callable[[Any], None], restore: Callable[[Any], None]) -> None:
        self._read, self._hold, self._restore = read, hold, restore
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: Any = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._saved = self._read()
                self._hold(self._saved)
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._restore(self._saved)


# the collector comes back only if it was running when the first pause began (start-up turns
# it off until the handshake, see ``sidecar.cli``)
_collector = _Held(gc.isenabled, lambda _: gc.disable(), lambda was_on: gc.enable() if was_on else None)
_switching = _Held(sys.getswitchinterval, lambda saved: sys.setswitchinterval(min(saved, LOADING_SWITCH_INTERVAL_S)),
                   sys.setswitchinterval)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs. Nested and concurrent uses (any
    thread) are counted: collection resumes when the last one ends, and only if it was running
    when the first began.

    For bursts of objects that are not cyclic but live a while, which the collector would
    otherwise traverse again and again for nothing (heavy imports; a sync group's rows)."""
    with _collector.held():
        yield


@contextlib.contextmanager
def loading_libraries() -> Iterator[None]:
    """Around a heavy import or model load in a worker thread: no cyclic garbage collection
    while it runs (:func:`collector_paused`), and what it loaded is frozen out of the
    collector's view afterwards.

    Why: an import of the agent stack or LanceDB allocates about a million long-lived objects,
    which trigger full collections; each holds the GIL for hundreds of ms and stalls the event
    loop (``/v1/health`` went to ~1 s during a warm-up). And the loading thread, pure Python,
    keeps the GIL until the switch interval forces it out: each time the event loop wakes (a
    socket read, a database answer; tens per request) it waited up to 5 ms for the GIL, which
    slowed the first run's ``RUN_STARTED``; the interval is :data:`LOADING_SWITCH_INTERVAL_S`
    meanwhile.
    Nested and concurrent uses are counted; the interval comes back when the last one ends.
    """
    with _switching.held(), collector_paused():
        try:
            yield
        finally:
            gc.freeze()  # long-lived by nature: never scanned again


#: Longest a worker thread's import is held by :func:`foreground` (s): bounds the wait should the
#: foreground itself need a module that held thread is in the middle of importing.
FOREGROUND_HOLD_MAX_S = 0.25


class _ImportGate:
    """While foreground work runs, another thread's next import waits (bounded) until it ends.

    It waits in an audit hook of the ``import`` event (:func:`sys.addaudithook`), which CPython
    raises before it looks for a module that is not loaded yet, with no import lock held: a
    finder on ``sys.meta_path`` would wait holding the global import lock, so every thread's
    imports, the foreground's included, would wait with it. Audit hooks cannot be removed; this
    one is installed by the first :func:`foreground` and costs a string comparison per event."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.holders: dict[int, int] = {}  # thread ident -> nested foreground() count
        self.clear = threading.Event()
        self.clear.set()
        self.episode = 0  # counts the times foreground work began with none running
        self._waits = threading.local()  # per thread: (episode, seconds held in it)

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "import" or self.clear.is_set():
            return
        me = threading.get_ident()
        if me in self.holders or asyncio._get_running_loop() is not None:
            return  # the foreground itself, or an event loop's thread
        # A held thread keeps the locks of the modules it is importing. Should the foreground
        # need one of them, it would wait for this thread: the hold ends as soon as another
        # thread waits for a lock of ours, and lasts FOREGROUND_HOLD_MAX_S at most per episode.
        episode, held = getattr(self._waits, "held", (-1, 0.0))
        if episode != self.episode:
            episode, held = self.episode, 0.0
        started = time.monotonic()
        while held + time.monotonic() - started < FOREGROUND_HOLD_MAX_S:
            if self.clear.wait(_HOLD_SLICE_S) or _awaited(me):
                break
        self._waits.held = (episode, held + time.monotonic() - started)


#: How often a held import checks whether another thread waits for it (s).
_HOLD_SLICE_S = 0.002


def _awaited(me: int) -> bool:
    """Whether a thread waits, directly or along a chain of threads, for a module lock held by
    thread ``me``. Reads the import system's own record of who waits for which module lock
    (CPython's ``importlib._bootstrap._blocking_on``, what its deadlock detection reads: a lock
    per thread up to 3.11, a list of locks from 3.12); without it, False (the time bound holds)."""
    blocking = getattr(importlib._bootstrap, "_blocking_on", None)  # type: ignore[attr-defined]
    if not blocking:
        return False
    waits_for: dict[int, set[int]] = {}
    for tid, entry in list(blocking.items()):
        locks = entry if isinstance(entry, list) else [entry]
        waits_for[tid] = {owner for lock in locks if (owner := getattr(lock, "owner", None)) is not None}
    for start in waits_for:
        seen: set[int] = set()
        todo = [start]
        while todo:
            tid = todo.pop()
            for owner in waits_for.get(tid, ()):
                if owner == me:
                    return True
                if owner not in seen:
                    seen.add(owner)
                    todo.append(owner)
    return False


_gate = _ImportGate()


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """Give the block the CPU over start-up's background loading: while it runs, imports in
    other threads (LiteLLM, AgentScope, LanceDB, keyring loading after the handshake) wait at
    their next module: each thread for at most :data:`FOREGROUND_HOLD_MAX_S` in all while the
    foreground lasts, and not at all once another thread waits for a module it is importing.
    Nested and concurrent uses are counted.

    Why: on 2 cores, three loading threads and the event loop share one GIL, so a request posted
    right after the handshake ran at a fraction of the speed (the first run's ``RUN_STARTED`` in
    ~250 ms instead of ~70 ms). For short work the user is waiting for (an agent run until its
    first event), never for a stream that lasts."""
    ident = threading.get_ident()
    with _gate.lock:
        if not _gate.installed:
            sys.addaudithook(_gate.audit)
            _gate.installed = True
        if not _gate.holders:
            _gate.episode += 1
            _gate.clear.clear()
        _gate.holders[ident] = _gate.holders.get(ident, 0) + 1
    try:
        yield
    finally:
        with _gate.lock:
            _gate.holders[ident] -= 1
            if not _gate.holders[ident]:
                del _gate.holders[ident]
            if not _gate.holders:
                _gate.clear.set()


class ForegroundWork:
    """Counts foreground work in progress (agent runs) for background work that can wait
    (search indexing): :meth:`settled` returns once none has been in progress for a while.
    Event-loop only."""

    def __init__(self) -> None:
        self._active = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._quiet_since = 0.0  # time.monotonic() when the last piece of work ended

    def begin(self) -> None:
        self._active += 1
        self._quiet.clear()

    def end(self) -> None:
        self._active = max(0, self._active - 1)
        if not self._active:
            self._quiet_since = time.monotonic()
            self._quiet.set()

    async def settled(self, settle_s: float, max_s: float) -> None:
        """Return once no work has been in progress for ``settle_s`` (at once if none was for
        that long), or after ``max_s`` at most (s)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_s):
                while True:  # until quiet for settle_s (a run that starts meanwhile restarts the wait)
                    await self._quiet.wait()
                    left = self._quiet_since + settle_s - time.monotonic()
                    if left <= 0:
                        return
                    await asyncio.sleep(left)


def after_handshake(app: web.Application, name: str, work: Callable[[], Awaitable[None]], *,
                    first: bool = False) -> None:
    """Run ``work`` in the background once the handshake is out (heavy imports, warm-ups,
    watchers, index catch-up). It is cancelled when the app shuts down; a failure is logged,
    not fatal.

    ``first=True`` puts it in the first stage: what a request arriving right after the
    handshake needs (the AG-UI models of a run, ~0.07 s), which gets the CPU to itself; every
    other work starts once the first stage has ended (however it ended). Work registered after
    the handshake starts at once."""

    async def runner() -> None:
        await app[HANDSHAKE_DONE].wait()
        if not first:
            pending = [t for t in app[BACKGROUND_FIRST] if not t.done()]
            if pending:
                await asyncio.wait(pending)
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background start-up work failed", extra={"work": name})

    task = asyncio.get_running_loop().create_task(runner(), name=name)
    app[BACKGROUND].add(task)
    if first:
        app[BACKGROUND_FIRST].add(task)


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (first in the list, so it ends last): cancels every task started by
    :func:`after_handshake` that is still running at shutdown."""
    yield
    tasks: list[asyncio.Task[None]] = [*app[BACKGROUND]]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
