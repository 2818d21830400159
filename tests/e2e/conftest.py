"""End-to-end helpers: spawn the real ``sidecar serve`` process and talk to it over loopback HTTP.

Everything here is synchronous (``subprocess`` + ``http.client``) so a test can drive the process
without an event loop, and the same helper serves lifecycle, agent-run (SSE) and ingest tests.

Typical use::

    def test_something(spawn_sidecar):
        sc = spawn_sidecar()                      # fresh data dir, waits for the handshake
        task = sc.ok("POST", "/v1/tasks", {"title": "x"}, status=201)
        with sc.stream("POST", "/v1/agent/runs", body) as events:
            for ev in events:                     # SseEvent: .event, .data, .id, .json
                ...
        assert sc.stop() == 0                     # closes stdin, waits for the exit code
        sc.assert_clean_logs()                    # stderr: JSON lines only, token never written

    def test_failure(spawn_sidecar, tmp_path):
        sc = spawn_sidecar(data_dir=some_file, expect="error")
        assert sc.first_message["code"] == "data_dir_unusable"

Every assertion failure raised by the helper carries :meth:`Sidecar.diagnostics` (exit code,
stdout line, the tail of stderr), so a broken start-up explains itself. Processes still alive at
the end of a test are stopped by the fixture (stdin closed, SIGKILL after 2 s): a test that
cares how its sidecar exits calls ``stop()`` / ``wait()`` itself. :class:`Api` is the HTTP client
alone, for a sidecar started some other way (port and token from its handshake).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Literal

import psutil
import pytest

from tests.schema_check import check_response, route_template

#: The command the shell runs (``sidecar serve``), as a module so the venv's interpreter is used.
SERVE_CMD: tuple[str, ...] = (sys.executable, "-m", "sidecar", "serve")
#: Keys of the ready handshake (DESIGN §1.2); ``token`` is absent when SIDECAR_TOKEN is supplied.
HANDSHAKE_KEYS = frozenset({"event", "protocol", "port", "token", "pid", "instance", "version"})
#: Environment variables of the developer's shell that must not leak into a spawned sidecar.
_SCRUBBED_ENV_PREFIXES = ("SIDECAR_",)

#: Bound on a graceful stop in helpers and teardown (the contract's own bound is tested apart).
STOP_TIMEOUT_S = 15.0

_DEFAULT = object()


# --- HTTP -------------------------------------------------------------------------------------


@dataclass
class Response:
    """A complete HTTP response."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def error_code(self) -> str | None:
        """``error.code`` of a JSON error body (DESIGN §2), else None."""
        try:
            data = self.json()
        except ValueError:
            return None
        err = data.get("error") if isinstance(data, dict) else None
        return err.get("code") if isinstance(err, dict) else None


@dataclass
class SseEvent:
    """One Server-Sent Event. ``data`` joins multi-line data with ``\\n``."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def iter_sse(lines: Iterator[bytes]) -> Iterator[SseEvent]:
    """Parse an SSE byte stream (one raw line per item) into events; comments are skipped.

    Framing must be LF-only (DESIGN §4): a CR in a line is reported as an assertion error.
    """
    ev = SseEvent()
    has_data = False
    data_lines: list[str] = []
    for raw in lines:
        assert b"\r" not in raw, f"SSE framing must be LF-only, got {raw!r}"
        line = raw.decode("utf-8").removesuffix("\n")
        if line == "":
            if has_data:
                ev.data = "\n".join(data_lines)
                yield ev
            ev, has_data, data_lines = SseEvent(), False, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            ev.event = value
        elif name == "data":
            has_data = True
            data_lines.append(value)
        elif name == "id":
            ev.id = value
        elif name == "retry" and value.isdigit():
            ev.retry = int(value)
    if has_data:  # stream ended without the final blank line
        ev.data = "\n".join(data_lines)
        yield ev


class Api:
    """A synchronous JSON/SSE client of one sidecar's local API (``127.0.0.1:port`` + bearer token).

    ``diagnostics`` (optional) is called to enrich assertion messages, e.g. with the process's
    stderr. Each request uses a fresh connection.
    """

    def __init__(self, port: int, token: str | None, diagnostics: Callable[[], str] | None = None) -> None:
        self.port = port
        self.token = token
        self._diagnostics = diagnostics

    def diagnostics(self) -> str:
        return self._diagnostics() if self._diagnostics else f"(sidecar on port {self.port})"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _headers(
        self,
        headers: Mapping[str, str] | None,
        token: Any,
        host: str | None,
        origin: str | None,
        has_body: bool,
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        tok = self.token if token is _DEFAULT else token
        if tok is not None:
            out["Authorization"] = f"Bearer {tok}"
        if host is not None:
            out["Host"] = host  # http.client then sends no Host of its own
        if origin is not None:
            out["Origin"] = origin
        if has_body:
            out["Content-Type"] = "application/json"
        out.update(headers or {})
        return out

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        headers: Mapping[str, str] | None,
        token: Any,
        host: str | None,
        origin: str | None,
        timeout: float,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        if body is None:
            payload = None
        elif isinstance(body, bytes | bytearray):
            payload = bytes(body)
        else:
            payload = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=payload,
                         headers=self._headers(headers, token, host, origin, payload is not None))
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        token: Any = _DEFAULT,
        host: str | None = None,
        origin: str | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """One request on a fresh connection. ``body``: JSON-able (sent as JSON) or bytes.

        ``token=None`` sends no Authorization header; ``host``/``origin`` set those headers.
        """
        conn, resp = self._send(method, path, body, headers=headers, token=token, host=host,
                                origin=origin, timeout=timeout)
        try:
            response = Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()
        if response.body and (response.headers.get("Content-Type") or "").startswith("application/json"):
            # Every JSON answer of the real process must match the generated schemas/.
            check_response(method, route_template(method, path), response.status, response.json())
        return response

    def ok(self, method: str, path: str, body: Any = None, *, status: int = 200, **kw: Any) -> Any:
        """The JSON body of a request that must answer ``status``."""
        resp = self.request(method, path, body, **kw)
        assert resp.status == status, (
            f"{method} {path} → {resp.status}, expected {status}: {resp.text[:2000]}\n{self.diagnostics()}"
        )
        return resp.json() if resp.body else None

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        token: Any = _DEFAULT,
        timeout: float = 30.0,
    ) -> Iterator[Iterator[SseEvent]]:
        """An SSE request: yields an iterator of :class:`SseEvent` (the connection closes on exit).

        ``timeout`` bounds each read, so a stalled stream fails the test instead of hanging it.
        """
        hdrs = {"Accept": "text/event-stream", **(headers or {})}
        conn, resp = self._send(method, path, body, headers=hdrs, token=token, host=None,
                                origin=None, timeout=timeout)
        try:
            if resp.status != status:
                raise AssertionError(
                    f"{method} {path} → {resp.status}, expected {status}: "
                    f"{resp.read()[:2000].decode(errors='replace')}\n{self.diagnostics()}"
                )

            def lines() -> Iterator[bytes]:
                while True:
                    line = resp.readline()
                    if not line:
                        return
                    yield line

            yield iter_sse(lines())
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 15.0, *, components: Sequence[str] = ()) -> dict[str, Any]:
        """Poll ``/v1/ready`` until ``ready`` (or, with ``components``, until each of those has
        left ``starting``). Returns the last body."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while True:
            body = self.ok("GET", "/v1/ready")
            comps = body.get("components", {})
            if components:
                done = all(comps.get(c, {}).get("state") not in (None, "starting") for c in components)
            else:
                done = bool(body.get("ready"))
            if done:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout}s: {body}\n{self.diagnostics()}")
            time.sleep(0.05)

    def device_id(self) -> str:
        """The device id, as named by the ``store`` component of ``/v1/ready``."""
        detail = self.ok("GET", "/v1/ready")["components"]["store"]["detail"]
        marker = "device "
        assert marker in detail, f"store detail names no device: {detail!r}"
        return str(detail.split(marker, 1)[1].split()[0].strip(",;"))


# --- the process ------------------------------------------------------------------------------


@dataclass
class Sidecar:
    """A ``sidecar serve`` process started by :func:`spawn`.

    ``first_line`` is the one line the process wrote to stdout (the handshake or the start-up
    error); ``handshake`` is set for a ready process, ``first_message`` always (when the line
    parses). ``token`` is the bearer token to use: the handshake's, or the one passed in the
    environment.
    """

    proc: subprocess.Popen[bytes]
    data_dir: Path
    stderr_path: Path
    argv: list[str]
    started_at: float
    first_line: bytes = b""
    first_line_at: float | None = None
    first_message: dict[str, Any] | None = None
    env_token: str | None = None
    _stdout_rest: bytes | None = None
    _api: Api | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- identity ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def handshake(self) -> dict[str, Any]:
        msg = self.first_message
        assert msg is not None and msg.get("event") == "ready", f"no ready handshake\n{self.diagnostics()}"
        return msg

    @property
    def port(self) -> int:
        return int(self.handshake["port"])

    @property
    def token(self) -> str:
        tok = self.env_token or self.handshake.get("token")
        assert isinstance(tok, str), f"no token known\n{self.diagnostics()}"
        return tok

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def handshake_seconds(self) -> float | None:
        """Seconds from spawn to the first stdout line."""
        return None if self.first_line_at is None else self.first_line_at - self.started_at

    # -- HTTP (see :class:`Api`) --------------------------------------------------------------

    @property
    def api(self) -> Api:
        """A client of this process's API with its token; assertion messages carry diagnostics."""
        if self._api is None:
            self._api = Api(self.port, self.token, self.diagnostics)
        return self._api

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Response:
        return self.api.request(method, path, body, **kw)

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.api.ok(method, path, body, **kw)

    def stream(self, method: str, path: str, body: Any = None, **kw: Any) -> contextlib.AbstractContextManager[Iterator[SseEvent]]:
        return self.api.stream(method, path, body, **kw)

    def wait_ready(self, timeout: float = 15.0, *, components: Sequence[str] = ()) -> dict[str, Any]:
        return self.api.wait_ready(timeout, components=components)

    def device_id(self) -> str:
        return self.api.device_id()

    # -- process control --------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """The exit code; fails the test (with diagnostics) if the process is still running."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sidecar still running after {timeout}s\n{self.diagnostics()}") from None
        return rc

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Graceful stop as the shell does it (close stdin; SIGTERM when stdin is not a pipe);
        returns the exit code. The bound is generous: tests of the exit *time* measure it."""
        if self.alive():
            if self.proc.stdin is not None:
                self.close_stdin()
            else:
                self.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.close_stdin()

    # -- output -----------------------------------------------------------------------------

    def stdout_rest(self, timeout: float = STOP_TIMEOUT_S) -> bytes:
        """Everything written to stdout after the first line, read to EOF (waits for exit)."""
        if self._stdout_rest is None:
            self.wait(timeout)
            assert self.proc.stdout is not None
            self._stdout_rest = self.proc.stdout.read()
            self.proc.stdout.close()
        return self._stdout_rest

    def stdout_all(self, timeout: float = STOP_TIMEOUT_S) -> bytes:
        """The whole of stdout (first line + rest), after exit."""
        return self.first_line + self.stdout_rest(timeout)

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """stderr parsed as JSON lines; a line that is not a JSON object fails the test."""
        records = []
        for n, line in enumerate(self.stderr_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise AssertionError(f"stderr line {n} is not JSON: {line!r}\n{self.diagnostics()}") from None
            assert isinstance(rec, dict), f"stderr line {n} is not a JSON object: {line!r}"
            records.append(rec)
        return records

    def log_messages(self) -> list[str]:
        return [str(r.get("message")) for r in self.log_records()]

    def find_log(self, message: str) -> dict[str, Any] | None:
        """The first log record with this exact ``message``."""
        return next((r for r in self.log_records() if r.get("message") == message), None)

    def wait_for_log(self, message: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            rec = self.find_log(message)
            if rec is not None:
                return rec
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line {message!r} after {timeout}s\n{self.diagnostics()}")
            time.sleep(0.05)

    def assert_clean_logs(self, secrets: Sequence[str] = ()) -> list[dict[str, Any]]:
        """stderr is JSON lines only and contains neither the token nor any of ``secrets``."""
        text = self.stderr_text()
        known = [s for s in (self.env_token, (self.first_message or {}).get("token"), *secrets) if s]
        for s in known:
            assert s not in text, f"a secret appears in stderr\n{self.diagnostics(redact=known)}"
        return self.log_records()

    def diagnostics(self, redact: Sequence[str] = ()) -> str:
        """Exit code, stdout line and the tail of stderr, for assertion messages."""
        rc = self.proc.poll()
        err = self.stderr_text()
        if len(err) > 6000:
            err = "…" + err[-6000:]
        for s in redact:
            err = err.replace(s, "[secret]")
        return (
            f"--- sidecar pid={self.pid} rc={rc} argv={self.argv[3:]}\n"
            f"--- stdout first line: {self.first_line!r}\n"
            f"--- stderr ({self.stderr_path}):\n{err}"
        )


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test process's environment without ``SIDECAR_*`` variables, plus ``extra``
    (a value of None removes the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _read_first_line(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, float | None]:
    box: list[bytes] = []

    def reader() -> None:
        assert proc.stdout is not None
        try:
            box.append(proc.stdout.readline())
        except (OSError, ValueError):
            box.append(b"")

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return b"", None
    return box[0], time.monotonic()


_counter = iter(range(1_000_000))


def spawn(
    data_dir: Path,
    *,
    log_dir: Path,
    args: Sequence[str] = (),
    parent_pid: int | None = None,
    allow_origins: Sequence[str] = (),
    watch: Sequence[Path] = (),
    token: str | None = None,
    env: Mapping[str, str | None] | None = None,
    stdin: int | None = subprocess.PIPE,
    expect: Literal["ready", "error", "any"] = "ready",
    timeout: float = 15.0,
    launcher: str | None = None,
    cwd: Path | None = None,
) -> Sidecar:
    """Start ``sidecar serve --data-dir DATA_DIR …`` and wait for its first stdout line.

    Args:
        log_dir: where the stderr file goes (``sidecar-N.stderr.log``).
        args: further command-line arguments.
        token: passed as ``SIDECAR_TOKEN`` (the handshake then carries none).
        env: extra environment (None values remove); ``SIDECAR_*`` of the caller is scrubbed.
        stdin: ``subprocess.PIPE`` (the shell's way: closing it stops the sidecar) or
            ``subprocess.DEVNULL`` (only signals or the parent's death stop it).
        expect: ``"ready"`` fails unless the handshake arrives; ``"error"`` unless an
            ``{"event":"error"}`` line does; ``"any"`` checks nothing.
        launcher: Python source run with ``-c`` instead of ``-m sidecar`` (it receives
            ``serve …`` in ``sys.argv[1:]``), to instrument the process.
    """
    argv = [*SERVE_CMD, "--data-dir", str(data_dir)]
    if launcher is not None:
        argv = [sys.executable, "-c", launcher, "serve", "--data-dir", str(data_dir)]
    if parent_pid is not None:
        argv += ["--parent-pid", str(parent_pid)]
    for origin in allow_origins:
        argv += ["--allow-origin", origin]
    for path in watch:
        argv += ["--watch", str(path)]
    argv += list(args)
    full_env = clean_env({**(env or {}), **({"SIDECAR_TOKEN": token} if token is not None else {})})
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir / f"sidecar-{next(_counter)}.stderr.log"
    with open(stderr_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err, env=full_env,
                                cwd=str(cwd or log_dir))
    sc = Sidecar(proc=proc, data_dir=data_dir, stderr_path=stderr_path, argv=argv, started_at=started,
                 env_token=token)
    line, at = _read_first_line(proc, timeout)
    sc.first_line, sc.first_line_at = line, at
    if at is None:
        sc.kill()
        raise AssertionError(f"no stdout line within {timeout}s\n{sc.diagnostics()}")
    with contextlib.suppress(ValueError):
        msg = json.loads(line)
        sc.first_message = msg if isinstance(msg, dict) else None
    event = (sc.first_message or {}).get("event")
    if expect == "ready" and event != "ready":
        sc.kill()
        raise AssertionError(f"expected the ready handshake\n{sc.diagnostics()}")
    if expect == "error" and event != "error":
        sc.kill()
        raise AssertionError(f"expected a start-up error line\n{sc.diagnostics()}")
    return sc


def wait_gone(pid: int, timeout: float, create_time: float | None = None) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited; a reused pid too, when
    ``create_time`` is given) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            p = psutil.Process(pid)
            if create_time is not None and abs(p.create_time() - create_time) > 0.01:
                return True
            if p.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def kill_pid(pid: int, create_time: float | None = None) -> None:
    """SIGKILL ``pid`` if it is still the same live process (best effort)."""
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        if create_time is None or abs(p.create_time() - create_time) <= 0.01:
            p.kill()


# --- fixtures ---------------------------------------------------------------------------------


SpawnFn = Callable[..., Sidecar]


def stop_all(processes: Sequence[Sidecar], grace: float = 2.0) -> None:
    """Stop every live process at once (stdin closed, or SIGTERM without a stdin pipe), give
    them ``grace`` seconds together, then SIGKILL the rest; close their pipes. For teardown: a
    test that cares how its sidecar exits calls :meth:`Sidecar.stop` itself."""
    for sc in processes:
        if sc.alive():
            if sc.proc.stdin is not None:
                sc.close_stdin()
            else:
                with contextlib.suppress(ProcessLookupError):
                    sc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for sc in processes:
        try:
            sc.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            sc.kill()
        for stream in (sc.proc.stdin, sc.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def spawn_sidecar(tmp_path: Path) -> Iterator[SpawnFn]:
    """A factory: ``spawn_sidecar(data_dir=None, **kw)`` → :class:`Sidecar` (see :func:`spawn`).

    Without ``data_dir`` each call gets a fresh ``tmp_path/data-N``. Every process still running
    at teardown is stopped by :func:`stop_all` (briefly graceful, then SIGKILL).
    """
    started: list[Sidecar] = []
    n = iter(range(1000))

    def factory(data_dir: Path | None = None, **kw: Any) -> Sidecar:
        kw.setdefault("log_dir", tmp_path / "logs")
        sc = spawn(data_dir if data_dir is not None else tmp_path / f"data-{next(n)}", **kw)
        started.append(sc)
        return sc

    yield factory
    stop_all(started)


@pytest.fixture
def sidecar(spawn_sidecar: SpawnFn) -> Sidecar:
    """One running sidecar on a fresh data dir (stdin a pipe, token from the handshake)."""
    return spawn_sidecar()
