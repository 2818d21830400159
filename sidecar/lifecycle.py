"""The process lifecycle of ``sidecar serve`` — the contract with the shell (DESIGN §1).

1. stdout is reserved for the handshake: fd 1 is duplicated for our own use and then pointed at
   stderr, so nothing a library prints can reach the shell's stdout pipe.
2. One instance per data dir: an OS file lock (``DIR/sidecar.lock``, never deleted).
3. Bind ``127.0.0.1`` on an OS-chosen port, then write exactly one JSON line and close our
   stdout: ``{"event":"ready","protocol","port","token","pid","instance","version"}`` (``token``
   omitted when the shell supplied ``SIDECAR_TOKEN``), or on a start-up failure
   ``{"event":"error","code","message"}`` and a non-zero exit.
4. Die with the parent: stdin EOF (when stdin is a pipe, socket or terminal), the parent process
   gone (polled every second; a sidecar already re-parented to init when it started, and given
   no ``--parent-pid``, takes its parent as gone), SIGTERM or SIGINT → graceful shutdown bounded
   to about 5 s.

Exit codes (:class:`ExitCode`): 0 clean shutdown; 1 start-up failed (error line on stdout);
2 usage error; 3 another instance holds the data dir (``already_running``); 4 shutdown did not
finish within its bound and was forced.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import os
import signal
import stat
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import psutil
from filelock import FileLock, Timeout
from pydantic import ConfigDict, Field

from sidecar import PROTOCOL, __version__
from sidecar.basemodel import Model
from sidecar.errors import SidecarError
from sidecar.settings import Settings

log = logging.getLogger("sidecar.lifecycle")


class ExitCode(enum.IntEnum):
    """Process exit codes of ``sidecar serve``."""

    OK = 0
    STARTUP_FAILED = 1
    USAGE = 2
    ALREADY_RUNNING = 3
    SHUTDOWN_FORCED = 4


class ReadyLine(Model):
    """The handshake: the one line on stdout once the API is listening (DESIGN §1.2)."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["ready"] = "ready"
    protocol: str = Field(description="the shell protocol, e.g. sidecar/1")
    port: int = Field(ge=1, le=65535, description="TCP port on 127.0.0.1")
    token: str | None = Field(default=None, description="API bearer token; absent when the shell supplied SIDECAR_TOKEN")
    pid: int
    instance: str = Field(description="UUID of this process instance")
    version: str


class ErrorLine(Model):
    """The start-up failure line on stdout, followed by a non-zero exit (DESIGN §1.2)."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["error"] = "error"
    code: str = Field(description="already_running | startup_failed | data_dir_unusable | database_replaced")
    message: str


class HandshakeChannel:
    """The reserved stdout: carries exactly one JSON line, then is closed."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def reserve(cls) -> HandshakeChannel:
        """Take fd 1 for the handshake and point fd 1 and ``sys.stdout`` at stderr."""
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return cls(fd)

    def send(self, message: ReadyLine | ErrorLine) -> None:
        """Write one JSON line, flush and close (later calls are ignored)."""
        if self._fd is None:
            return
        data = (message.model_dump_json(exclude_none=True) + "\n").encode()
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError:  # the shell closed its end; nothing more we can tell it
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def error(self, code: str, message: str) -> None:
        """The start-up error line."""
        self.send(ErrorLine(code=code, message=message))


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _parent_alive(pid: int, created: float | None) -> bool:
    """Alive, not a zombie, and the same process (a reused pid has another start time)."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # cannot tell (access denied): assume alive rather than exit wrongly


def _stdin_is_watchable() -> bool:
    """stdin EOF means "parent gone" only for pipes, sockets and terminals (not /dev/null)."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)


class _Stopper:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.reason = ""

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def stop_threadsafe(self, reason: str) -> None:
        self.loop.call_soon_threadsafe(self.stop, reason)


def _watch_stdin(stopper: _Stopper) -> None:
    def read_until_eof() -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        stopper.stop_threadsafe("stdin closed")

    threading.Thread(target=read_until_eof, name="stdin-watch", daemon=True).start()


async def _watch_parent(stopper: _Stopper, settings: Settings) -> None:
    original = settings.spawner_pid
    if settings.parent_pid is None and original == 1:
        # Already re-parented to init when we started: whoever spawned us is gone.
        stopper.stop("parent process exited before start-up finished")
        return
    pid = settings.parent_pid or (original if original > 1 else None)
    if pid is None:
        return
    created = _create_time(pid)
    while not stopper.event.is_set():
        await asyncio.sleep(settings.parent_poll_s)
        reparented = settings.parent_pid is None and os.getppid() != original
        if reparented or not _parent_alive(pid, created):
            stopper.stop(f"parent process {pid} is gone")
            return


_early_signals: list[str] = []


def install_early_signal_handlers() -> None:
    """Record SIGTERM/SIGINT from process start until the server installs its own handlers, so
    a signal that arrives during start-up still ends in a graceful shutdown (exit 0)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: _early_signals.append(signal.Signals(s).name))


def _install_signals(stopper: _Stopper) -> None:
    for name in _early_signals:
        stopper.stop(name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            stopper.loop.add_signal_handler(sig, stopper.stop, signal.Signals(sig).name)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda s, _f: stopper.stop_threadsafe(signal.Signals(s).name))


class NoWaitExecutor(ThreadPoolExecutor):
    """The loop's default executor (what ``asyncio.to_thread`` runs on) for ``serve``.

    When ``asyncio.run`` ends it shuts the default executor down and, on 3.11, waits for every
    worker with no bound: a background import of LanceDB or a long PDF parse still running
    would hold the process past the shell's exit bound (3 s). By then every cleanup context has
    run and the database is closed, so what is left in a worker is abandoned work: shutdown
    cancels what has not started and does not wait; the process then ends with ``os._exit``.
    """

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


#: Allocations between young-generation collections while serving (CPython's default is 700).
#: An agent run's objects (messages, rows, events) live for a few tool calls: at 700 each was
#: traversed by several collections and many survived into older generations, ~80 ms of
#: collection per 150 tool calls (~0.5 ms a call); at 10,000, ~13 ms (tests/bench/bench_agent).
GC_GEN0_THRESHOLD = 10_000


def collect_as_serving() -> None:
    """The collector as the sidecar serves with: the objects so far frozen out of its view
    (never scanned again), the young generation collected every :data:`GC_GEN0_THRESHOLD`
    allocations, collection on."""
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()


async def _serve(settings: Settings, channel: HandshakeChannel) -> ExitCode:
    from sidecar import tls

    with tls.deferred_ca_loading():  # aiohttp's client contexts get their CAs after the handshake
        from aiohttp import web

        from sidecar.app import create_app
        from sidecar.appstate import HANDSHAKE_DONE
        from sidecar.background import after_handshake
        from sidecar.server import make_runner

    asyncio.get_running_loop().set_default_executor(NoWaitExecutor(thread_name_prefix="sidecar-worker"))
    stopper = _Stopper(asyncio.get_running_loop())
    _install_signals(stopper)
    app = create_app(settings)
    runner = make_runner(app, access_log=None, handle_signals=False, shutdown_timeout=settings.shutdown_timeout_s)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
    except Exception as exc:
        log.exception("start-up failed")
        if isinstance(exc, SidecarError):  # a failure we can name (e.g. database_replaced)
            channel.error(exc.code, exc.message)
        else:
            channel.error("startup_failed", f"{type(exc).__name__}: {exc}")
        await runner.cleanup()
        return ExitCode.STARTUP_FAILED
    port = runner.addresses[0][1]
    channel.send(ReadyLine(
        protocol=PROTOCOL, port=port, token=None if settings.token_from_env else settings.token,
        pid=os.getpid(), instance=str(uuid.uuid4()), version=__version__,
    ))
    app[HANDSHAKE_DONE].set()
    collect_as_serving()  # start-up's objects: never scanned again (cli turned GC off until here)
    log.info("serving", extra={"port": port, "data_dir": str(settings.data_dir)})
    # the system CA store (~75 ms per context, holding the GIL) after the first stage of the
    # background work, so a request posted right after the handshake is not stalled by it
    after_handshake(app, "tls-ca-store", tls.ensure_loaded)

    if _stdin_is_watchable():
        _watch_stdin(stopper)
    parent_task = asyncio.create_task(_watch_parent(stopper, settings))
    await stopper.event.wait()
    parent_task.cancel()
    log.info("shutting down", extra={"reason": stopper.reason})
    try:
        await asyncio.wait_for(runner.cleanup(), timeout=settings.shutdown_timeout_s + 1)
    except TimeoutError:
        log.error("shutdown exceeded its bound; forcing exit")
        return ExitCode.SHUTDOWN_FORCED
    log.info("stopped")
    return ExitCode.OK


class DataDirBusy(Exception):
    """Another sidecar process holds the data dir's lock."""


@contextlib.contextmanager
def claim_data_dir(data_dir: Path) -> Iterator[Path]:
    """Create ``data_dir`` if needed and hold its single-instance lock (``DIR/sidecar.lock``, an
    OS file lock, never deleted) for the block. Every command that opens the database uses it.

    Raises:
        DataDirBusy: another sidecar (``serve``, ``chat`` or ``ingest``) holds it.
        OSError: the directory cannot be created or locked.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(data_dir / "sidecar.lock"), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise DataDirBusy(str(data_dir)) from None
    try:
        yield data_dir
    finally:
        lock.release()


def serve(settings: Settings, channel: HandshakeChannel) -> ExitCode:
    """Run the server until told to stop; returns the process exit code."""
    try:
        with claim_data_dir(settings.data_dir):
            return asyncio.run(_serve(settings, channel))
    except DataDirBusy:
        channel.error("already_running", f"another sidecar is serving data dir {settings.data_dir}")
        return ExitCode.ALREADY_RUNNING
    except OSError as exc:
        channel.error("data_dir_unusable", f"cannot use data dir {settings.data_dir}: {exc.strerror or exc}")
        return ExitCode.STARTUP_FAILED
