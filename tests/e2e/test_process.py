"""The process contract with the shell (DESIGN §1–§2), proven against the real ``sidecar serve``.

Each test spawns ``python -m sidecar serve`` (see ``conftest.py``) and checks one acceptance
criterion: the handshake and a clean stdout, the request defences, the ways the process dies with
its parent, signals, the single-instance lock, durability across restarts, start-up failures and
the logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from sidecar import __version__ as SIDECAR_VERSION
from sidecar import lifecycle
from tests.e2e.conftest import (
    HANDSHAKE_KEYS,
    SERVE_CMD,
    Api,
    Sidecar,
    SpawnFn,
    clean_env,
    kill_pid,
    wait_gone,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

EXIT_BOUND_S = 3.0


def _assert_only_handshake_on_stdout(sc: Sidecar) -> None:
    out = sc.stdout_all()
    assert out.count(b"\n") == 1 and out.endswith(b"\n"), (
        f"stdout must be exactly the handshake line, got {out!r}\n{sc.diagnostics()}"
    )
    assert json.loads(out) == sc.handshake


# --- handshake and stdout ---------------------------------------------------------------------


def test_handshake_fields_and_types(sidecar: Sidecar) -> None:
    hs = sidecar.handshake
    assert set(hs) == HANDSHAKE_KEYS, hs
    assert hs["event"] == "ready"
    assert hs["protocol"] == "sidecar/1"
    assert type(hs["port"]) is int and 1024 <= hs["port"] <= 65535
    assert type(hs["pid"]) is int and hs["pid"] == sidecar.pid
    assert isinstance(hs["token"], str) and len(hs["token"]) >= 32
    assert re.fullmatch(r"[A-Za-z0-9_-]+", hs["token"]), "token must be header-safe"
    assert str(uuid.UUID(hs["instance"])) == hs["instance"]
    assert hs["version"] == SIDECAR_VERSION
    assert sidecar.first_line.endswith(b"\n") and sidecar.first_line.count(b"\n") == 1
    # the handshake comes first and /v1/health answers at once
    assert sidecar.ok("GET", "/v1/health")["status"] == "ok"


def test_instances_differ_and_tokens_are_random(spawn_sidecar: SpawnFn) -> None:
    a, b = spawn_sidecar(), spawn_sidecar()
    assert a.handshake["instance"] != b.handshake["instance"]
    assert a.token != b.token
    assert a.port != b.port
    # each accepts only its own token
    assert a.request("GET", "/v1/health", token=b.token).status == 401


def test_stdout_is_only_the_handshake_after_a_full_session(sidecar: Sidecar) -> None:
    project = sidecar.ok("POST", "/v1/projects", {"name": "Apollo"}, status=201)
    task = sidecar.ok("POST", "/v1/tasks", {"title": "launch", "projectId": project["id"]}, status=201)
    sidecar.ok("PATCH", f"/v1/tasks/{task['id']}", {"status": "done"})
    sidecar.ok("GET", "/v1/tasks?status=done")
    sidecar.ok("GET", "/v1/ready")
    assert sidecar.request("GET", "/v1/nope").status == 404
    assert sidecar.request("POST", "/v1/tasks", b"{not json").status == 400
    assert sidecar.request("GET", "/v1/health", token=None).status == 401
    sidecar.ok("DELETE", f"/v1/tasks/{task['id']}")
    assert sidecar.stop() == 0
    _assert_only_handshake_on_stdout(sidecar)


# Instrumented launcher: whatever a library might do to "stdout" once serving has begun —
# print(), sys.stdout / sys.__stdout__ writes, a raw write to fd 1, a child process inheriting
# fd 1, an atexit print — must land on stderr, never on the shell's stdout pipe.
NOISY_LAUNCHER = textwrap.dedent(
    """
    import atexit, os, subprocess, sys
    import sidecar.api.io as io

    _json_ok = io.json_ok

    def noisy_json_ok(*args, **kwargs):
        print("NOISE-print")
        sys.stdout.write("NOISE-sys.stdout\\n"); sys.stdout.flush()
        sys.__stdout__.write("NOISE-sys.__stdout__\\n"); sys.__stdout__.flush()
        os.write(1, b"NOISE-fd1\\n")
        subprocess.run([sys.executable, "-c", "print('NOISE-child')"], check=False)
        return _json_ok(*args, **kwargs)

    io.json_ok = noisy_json_ok  # before the handlers import it
    atexit.register(lambda: print("NOISE-atexit", flush=True))

    from sidecar.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_library_output_never_reaches_stdout(spawn_sidecar: SpawnFn) -> None:
    sc = spawn_sidecar(launcher=NOISY_LAUNCHER)
    sc.ok("GET", "/v1/health")
    sc.ok("POST", "/v1/tasks", {"title": "noise"}, status=201)
    assert sc.stop() == 0
    _assert_only_handshake_on_stdout(sc)
    err = sc.stderr_text()
    for marker in ("NOISE-print", "NOISE-sys.stdout", "NOISE-sys.__stdout__", "NOISE-fd1", "NOISE-child",
                   "NOISE-atexit"):
        assert marker in err, f"{marker} was not diverted to stderr\n{sc.diagnostics()}"


# Instrumented launcher: GC's state at the handshake line and once serving (at exit).
GC_LAUNCHER = textwrap.dedent(
    """
    import atexit, gc, sys
    import sidecar.lifecycle as lc

    _send = lc.HandshakeChannel.send

    def send(self, message):
        sys.stderr.write(f"GC-AT-HANDSHAKE enabled={gc.isenabled()}\\n")
        return _send(self, message)

    lc.HandshakeChannel.send = send
    atexit.register(lambda: sys.stderr.write(
        f"GC-SERVING enabled={gc.isenabled()} threshold={gc.get_threshold()[0]} frozen={gc.get_freeze_count()}\\n"))

    from sidecar.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_gc_is_off_until_the_handshake_and_on_while_serving(spawn_sidecar: SpawnFn) -> None:
    # start-up allocates only long-lived objects: no collections on the way to the handshake,
    # then they are frozen and collection resumes (a sidecar left without GC would leak cycles).
    # No data, so no library load (which pauses GC itself: sidecar.background) is under way.
    sc = spawn_sidecar(launcher=GC_LAUNCHER)
    sc.wait_ready()
    assert sc.stop() == 0
    err = sc.stderr_text()
    assert "GC-AT-HANDSHAKE enabled=False" in err, sc.diagnostics()
    serving = [line for line in err.splitlines() if line.startswith("GC-SERVING")]
    assert serving and "enabled=True" in serving[0], sc.diagnostics()
    assert int(serving[0].rsplit("frozen=", 1)[1]) > 10_000, serving
    # young collections every 10,000 allocations, not 700 (GC_GEN0_THRESHOLD)
    assert f"threshold={lifecycle.GC_GEN0_THRESHOLD} " in serving[0] and lifecycle.GC_GEN0_THRESHOLD >= 10_000, serving


# --- request defences -------------------------------------------------------------------------


def test_health_requires_the_token(sidecar: Sidecar) -> None:
    assert sidecar.request("GET", "/v1/health").status == 200
    for token, headers in [
        (None, {}),
        ("wrong-token", {}),
        (sidecar.token[:-1], {}),
        (None, {"Authorization": f"Basic {sidecar.token}"}),
        (None, {"Authorization": sidecar.token}),
    ]:
        resp = sidecar.request("GET", "/v1/health", token=token, headers=headers)
        assert resp.status == 401, (token, headers, resp.status, resp.text)
        assert resp.error_code() == "unauthorized", resp.text
        assert resp.headers["Content-Type"].startswith("application/json")


def test_host_header_must_be_loopback_with_port(sidecar: Sidecar) -> None:
    port = sidecar.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert sidecar.request("GET", "/v1/health", host=host).status == 200, host
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"localhost.evil.example:{port}",
                 f"127.0.0.2:{port}"):
        resp = sidecar.request("GET", "/v1/health", host=host)  # with a valid token
        assert resp.status == 403, (host, resp.status, resp.text)
        assert resp.error_code() == "forbidden_host", resp.text


def test_foreign_origin_refused_allowed_origin_echoed(spawn_sidecar: SpawnFn) -> None:
    allowed = ["app://-", "http://localhost:5173"]
    sc = spawn_sidecar(allow_origins=allowed)
    for origin in allowed:
        resp = sc.request("GET", "/v1/health", origin=origin)
        assert resp.status == 200, (origin, resp.text)
        assert resp.headers.get_all("Access-Control-Allow-Origin") == [origin]
        # a CORS preflight for an allowed origin is answered, echoing the origin
        pre = sc.request("OPTIONS", "/v1/tasks", token=None, origin=origin,
                         headers={"Access-Control-Request-Method": "POST",
                                  "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status in (200, 204), pre.text
        assert pre.headers.get_all("Access-Control-Allow-Origin") == [origin]
    for origin in ("https://evil.example", "null", "http://localhost:5174", "app://evil", "APP://-"):
        resp = sc.request("GET", "/v1/health", origin=origin)  # with a valid token
        assert resp.status == 403, (origin, resp.status)
        assert resp.error_code() == "forbidden_origin", resp.text
        assert "Access-Control-Allow-Origin" not in resp.headers
        pre = sc.request("OPTIONS", "/v1/tasks", token=None, origin=origin,
                         headers={"Access-Control-Request-Method": "POST"})
        assert pre.status == 403 and "Access-Control-Allow-Origin" not in pre.headers
    # and never a wildcard, whatever is asked
    for resp in (sc.request("GET", "/v1/health"), sc.request("GET", "/v1/health", token=None),
                 sc.request("GET", "/v1/tasks", origin="app://-")):
        assert resp.headers.get("Access-Control-Allow-Origin") != "*"


def test_no_origin_allowed_by_default(sidecar: Sidecar) -> None:
    resp = sidecar.request("GET", "/v1/health", origin="app://-")
    assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers


def test_token_from_environment(spawn_sidecar: SpawnFn) -> None:
    token = "env-supplied-" + uuid.uuid4().hex
    sc = spawn_sidecar(token=token)
    assert "token" not in sc.handshake, sc.handshake
    assert set(sc.handshake) == HANDSHAKE_KEYS - {"token"}
    assert token.encode() not in sc.first_line
    assert sc.request("GET", "/v1/health").status == 200  # uses the env token
    assert sc.request("GET", "/v1/health", token="something-else").status == 401
    assert sc.request("GET", f"/v1/{token}").status == 404  # the token in a logged path
    assert sc.stop() == 0
    sc.assert_clean_logs()
    _assert_only_handshake_on_stdout(sc)


# --- dying with the parent --------------------------------------------------------------------


def _log_wall_time(rec: dict[str, Any]) -> float:
    """A log record's ``time`` ("YYYY-mm-dd HH:MM:SS,mmm", local) as a Unix timestamp."""
    stamp, _, ms = str(rec["time"]).partition(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms or 0) / 1000


def _exit_breakdown(log_text: str, t0_wall: float) -> str:
    """Where the time went between the stop trigger and the exit, from the log's timestamps."""
    records = {}
    for line in log_text.splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            rec = json.loads(line)
            records.setdefault(rec.get("message"), rec)
    parts = []
    for message in ("shutting down", "stopped"):
        rec = records.get(message)
        if rec is not None:
            parts.append(f"{message!r} at +{_log_wall_time(rec) - t0_wall:.2f}s")
    return ", ".join(parts) or "no shutdown log lines"


def _timed_exit(sc: Sidecar, action: Any, bound: float = EXIT_BOUND_S) -> tuple[int, float]:
    """Do ``action()``; the exit code and the seconds until the process was gone. Fails (with
    the timing breakdown) past ``bound``."""
    t0, t0_wall = time.monotonic(), time.time()
    action()
    try:
        rc = sc.proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        rc = sc.wait()
        raise AssertionError(
            f"exit took {time.monotonic() - t0:.2f}s (bound {bound}s; {_exit_breakdown(sc.stderr_text(), t0_wall)}), "
            f"rc={rc}\n{sc.diagnostics()}"
        ) from None
    return rc, time.monotonic() - t0


def test_stdin_eof_exits_cleanly(sidecar: Sidecar) -> None:
    sidecar.wait_ready()
    sidecar.ok("GET", "/v1/health")
    rc, elapsed = _timed_exit(sidecar, sidecar.close_stdin)
    assert rc == 0, sidecar.diagnostics()
    assert elapsed < EXIT_BOUND_S
    rec = sidecar.find_log("shutting down")
    assert rec is not None and "stdin" in rec.get("reason", ""), sidecar.diagnostics()
    assert sidecar.find_log("stopped") is not None, sidecar.diagnostics()


@pytest.mark.parametrize("delay", [0.0, 1.5], ids=["at-handshake", "mid-warm-up"])
def test_stdin_eof_during_warm_up_exits_within_bound(spawn_sidecar: SpawnFn, delay: float) -> None:
    """The user opens and at once closes the app: the sidecar must not linger (holding the data
    dir's lock, so that a relaunch gets ``already_running``) while background start-up work —
    the agent stack's imports — finishes."""
    sc = spawn_sidecar()
    time.sleep(delay)
    rc, elapsed = _timed_exit(sc, sc.close_stdin)
    assert rc == 0, sc.diagnostics()
    assert elapsed < EXIT_BOUND_S
    assert sc.find_log("stopped") is not None, sc.diagnostics()
    # the relaunch gets the data dir
    again = spawn_sidecar(sc.data_dir)
    again.ok("GET", "/v1/health")


# An intermediate "shell": spawns the sidecar (stdin from /dev/null, so stdin EOF can play no part),
# publishes its pid and handshake line to a file, then sleeps until killed.
FAKE_SHELL = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    out, err_path, mode, *cmd = sys.argv[1:]
    if mode == "explicit":
        cmd += ["--parent-pid", str(os.getpid())]
    with open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    line = p.stdout.readline().decode()
    with open(out + ".tmp", "w") as f:
        json.dump({"pid": p.pid, "line": line}, f)
    os.replace(out + ".tmp", out)
    time.sleep(600)
    """
)


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"fake shell died early (rc={proc.returncode})"
        assert time.monotonic() < deadline, "fake shell did not report the sidecar's handshake"
        time.sleep(0.02)
    return dict(json.loads(path.read_text()))


@pytest.mark.parametrize("mode", ["implicit", "explicit"])
def test_exits_when_the_spawning_parent_is_killed(tmp_path: Path, mode: str) -> None:
    """The shell (the sidecar's real parent) is SIGKILLed: no signal, no stdin EOF reaches the
    sidecar, only its parent watch can notice. ``implicit``: no --parent-pid (the original parent
    is watched); ``explicit``: --parent-pid names the shell."""
    info_path, err_path = tmp_path / "sidecar.json", tmp_path / "sidecar.stderr.log"
    cmd = [*SERVE_CMD, "--data-dir", str(tmp_path / "data")]
    shell = subprocess.Popen([sys.executable, "-c", FAKE_SHELL, str(info_path), str(err_path), mode, *cmd],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=clean_env())
    sc_pid: int | None = None
    sc_created: float | None = None
    try:
        info = _wait_file(info_path, shell)
        sc_pid = int(info["pid"])
        hs = json.loads(info["line"])
        assert hs["event"] == "ready" and hs["pid"] == sc_pid, info
        proc = psutil.Process(sc_pid)
        sc_created = proc.create_time()
        assert proc.ppid() == shell.pid
        # alive and serving while its parent lives, through more than one poll
        t0 = time.monotonic()
        Api(hs["port"], hs["token"], err_path.read_text).wait_ready()
        time.sleep(max(0.0, 1.3 - (time.monotonic() - t0)))
        assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE, err_path.read_text()

        t0, t0_wall = time.monotonic(), time.time()
        shell.kill()  # left unreaped (a zombie) until the end: the sidecar must see through that
        gone = wait_gone(sc_pid, EXIT_BOUND_S, sc_created)
        elapsed = time.monotonic() - t0
        if not gone:
            wait_gone(sc_pid, 15, sc_created)
        log = err_path.read_text()
        assert gone, (f"sidecar still running {EXIT_BOUND_S}s after its parent was killed "
                      f"({_exit_breakdown(log, t0_wall)})\n{log}")
        assert elapsed < EXIT_BOUND_S
        assert '"parent process' in log and '"stopped"' in log, log
    finally:
        shell.kill()
        shell.wait(5)
        if sc_pid is not None:
            kill_pid(sc_pid, sc_created)


# A "shell" that starts the sidecar and dies at once, before the handshake: the sidecar's
# handshake goes to a file, its stdin is /dev/null.
SHORT_LIVED_SHELL = textwrap.dedent(
    """
    import json, os, subprocess, sys
    info, out_path, err_path, *cmd = sys.argv[1:]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    with open(info + ".tmp", "w") as f:
        json.dump({"pid": p.pid}, f)
    os.replace(info + ".tmp", info)
    os._exit(0)
    """
)


def test_exits_when_the_parent_dies_during_startup(tmp_path: Path) -> None:
    """The parent is gone before the sidecar finished starting: the sidecar must still notice
    (its original parent is not the process it is re-parented to) and exit soon after its
    handshake, not serve as an orphan forever."""
    info_path, out_path, err_path = tmp_path / "i.json", tmp_path / "out", tmp_path / "err.log"
    cmd = [*SERVE_CMD, "--data-dir", str(tmp_path / "data")]
    shell = subprocess.Popen([sys.executable, "-c", SHORT_LIVED_SHELL, str(info_path), str(out_path),
                              str(err_path), *cmd], stdin=subprocess.DEVNULL, env=clean_env())
    shell.wait(15)
    pid = int(json.loads(info_path.read_text())["pid"])
    created: float | None = None
    try:
        with contextlib.suppress(psutil.NoSuchProcess):
            created = psutil.Process(pid).create_time()
        deadline = time.monotonic() + 15
        while b"\n" not in out_path.read_bytes() and not wait_gone(pid, 0, created):
            assert time.monotonic() < deadline, "no handshake"
            time.sleep(0.02)
        gone = wait_gone(pid, EXIT_BOUND_S, created)
        assert gone, (f"orphaned sidecar still serving {EXIT_BOUND_S}s after its handshake\n"
                      f"stdout: {out_path.read_text()}\n{err_path.read_text()}")
    finally:
        kill_pid(pid, created)


def test_exits_when_the_parent_pid_process_dies(spawn_sidecar: SpawnFn) -> None:
    """--parent-pid naming a process that is not the sidecar's parent (so re-parenting cannot be
    what gives it away): when that process dies (and is reaped) the sidecar exits 0 within the
    bound. The sidecar's stdin is /dev/null, which must not count as "parent gone" either. (A
    parent left a zombie is covered by the fake-shell tests above.)"""
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                               stdin=subprocess.DEVNULL)
    try:
        sc = spawn_sidecar(parent_pid=watched.pid, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        sc.wait_ready()
        time.sleep(max(0.0, 1.3 - (time.monotonic() - t0)))  # more than one poll
        assert sc.alive(), sc.diagnostics()
        sc.ok("GET", "/v1/health")

        def kill_watched() -> None:
            watched.kill()
            watched.wait(5)

        rc, elapsed = _timed_exit(sc, kill_watched)
        assert rc == 0, sc.diagnostics()
        assert elapsed < EXIT_BOUND_S
        rec = sc.find_log("shutting down")
        assert rec is not None and str(watched.pid) in rec.get("reason", ""), sc.diagnostics()
    finally:
        watched.kill()
        watched.wait(5)


# --- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_cleanly(sidecar: Sidecar, sig: signal.Signals) -> None:
    sidecar.wait_ready()
    sidecar.ok("POST", "/v1/tasks", {"title": "before signal"}, status=201)
    rc, elapsed = _timed_exit(sidecar, lambda: sidecar.send_signal(sig))
    assert rc == 0, sidecar.diagnostics()
    assert elapsed < EXIT_BOUND_S
    rec = sidecar.find_log("shutting down")
    assert rec is not None and rec.get("reason") == sig.name, sidecar.diagnostics()
    assert sidecar.find_log("stopped") is not None, sidecar.diagnostics()
    assert "Traceback" not in sidecar.stderr_text(), sidecar.diagnostics()
    _assert_only_handshake_on_stdout(sidecar)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_right_after_handshake_is_graceful(spawn_sidecar: SpawnFn, sig: signal.Signals) -> None:
    """The shell may stop the sidecar the instant it reads the handshake: still a graceful
    shutdown (exit 0, "stopped" logged), never the default signal action. (The exit *time* is
    tested elsewhere.)"""
    procs = []
    for _ in range(2):
        sc = spawn_sidecar()
        sc.send_signal(sig)
        procs.append(sc)
    for sc in procs:
        rc = sc.wait()
        assert rc == 0, f"exit {rc} for {sig.name} sent right after the handshake\n{sc.diagnostics()}"
        assert sc.find_log("stopped") is not None, sc.diagnostics()


# --- single instance --------------------------------------------------------------------------


def test_second_instance_refused_first_keeps_serving(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    data = tmp_path / "shared"
    first = spawn_sidecar(data)
    task = first.ok("POST", "/v1/tasks", {"title": "mine"}, status=201)
    second = spawn_sidecar(data, expect="error")
    msg = second.first_message
    assert msg is not None and msg["event"] == "error" and msg["code"] == "already_running", second.diagnostics()
    assert isinstance(msg.get("message"), str) and msg["message"]
    assert second.wait(EXIT_BOUND_S) == 3, second.diagnostics()
    assert second.stdout_rest() == b"", "the error line must be the only stdout output"
    second.assert_clean_logs()
    # the first is untouched
    assert first.alive()
    assert first.ok("GET", f"/v1/tasks/{task['id']}")["title"] == "mine"
    first.ok("POST", "/v1/tasks", {"title": "still writable"}, status=201)
    assert first.stop() == 0
    assert (data / "sidecar.lock").exists(), "the lock file is never deleted"


# --- durability across restarts ---------------------------------------------------------------


def _seed(sc: Sidecar) -> dict[str, list[dict[str, Any]]]:
    client = sc.ok("POST", "/v1/clients", {"name": "Acme", "industry": "Rockets"}, status=201)
    project = sc.ok("POST", "/v1/projects", {"name": "Moonshot", "clientId": client["id"]}, status=201)
    archived = sc.ok("POST", "/v1/projects", {"name": "Old", "status": "archived"}, status=201)
    tasks = [
        sc.ok("POST", "/v1/tasks", {"title": "Design", "projectId": project["id"], "priority": "high",
                                    "assignee": ["ana", "bo"], "dueDate": 1_800_000_000_000,
                                    "description": "ünïcødé ✓"}, status=201),
        sc.ok("POST", "/v1/tasks", {"title": "Build", "status": "in_progress"}, status=201),
        sc.ok("POST", "/v1/tasks", {"title": "Suggested", "isAiSuggested": True, "isApproved": False},
              status=201),
    ]
    tasks[1] = sc.ok("PATCH", f"/v1/tasks/{tasks[1]['id']}", {"status": "done"})
    gone = sc.ok("POST", "/v1/tasks", {"title": "Deleted"}, status=201)
    sc.ok("DELETE", f"/v1/tasks/{gone['id']}")
    timeline = sc.ok("POST", "/v1/timelines", {"projectId": project["id"], "title": "Launch",
                                               "date": 1_800_000_000_000}, status=201)
    note = sc.ok("POST", "/v1/notes", {"title": "Notes", "content": "# hi\n- [ ] x"}, status=201)
    comment = sc.ok("POST", f"/v1/tasks/{tasks[0]['id']}/comments", {"author": "ana", "content": "ok"},
                    status=201)
    return {
        "clients": [client], "projects": [project, archived], "tasks": tasks, "timelines": [timeline],
        "notes": [note], f"tasks/{tasks[0]['id']}/comments": [comment], "_deleted_tasks": [gone],
    }


def _read_back(sc: Sidecar, seeded: dict[str, list[dict[str, Any]]]) -> None:
    for resource, rows in seeded.items():
        if resource.startswith("_"):
            continue
        for row in rows:
            got = sc.ok("GET", f"/v1/{resource}/{row['id']}")
            assert got == row, (resource, got, row)
        listed = sc.ok("GET", f"/v1/{resource}?limit=1000")
        assert listed["total"] == len(rows), (resource, listed)
        assert {r["id"] for r in listed["items"]} == {r["id"] for r in rows}
    for row in seeded["_deleted_tasks"]:
        assert sc.request("GET", f"/v1/tasks/{row['id']}").status == 404


def _db_device_id(data_dir: Path) -> str:
    con = sqlite3.connect(f"file:{data_dir / 'sidecar.db'}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])


def test_restart_keeps_data_and_device_id(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = spawn_sidecar(data)
    seeded = _seed(first)
    device = first.device_id()
    assert first.stop() == 0
    assert _db_device_id(data) == device
    assert (data / "sidecar.lock").exists()

    second = spawn_sidecar(data)
    assert second.handshake["instance"] != first.handshake["instance"]
    assert second.token != first.token
    _read_back(second, seeded)
    assert second.device_id() == device
    # the new instance writes after the old data
    second.ok("POST", "/v1/tasks", {"title": "after restart"}, status=201)
    assert second.ok("GET", "/v1/tasks")["total"] == len(seeded["tasks"]) + 1
    assert second.stop() == 0
    assert _db_device_id(data) == device


def test_restart_after_sigkill_keeps_committed_data(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    """A crash (SIGKILL) loses nothing that was acknowledged, and the lock does not outlive it."""
    data = tmp_path / "data"
    first = spawn_sidecar(data)
    seeded = _seed(first)
    device = first.device_id()
    first.kill()
    second = spawn_sidecar(data)
    _read_back(second, seeded)
    assert second.device_id() == device
    assert second.stop() == 0


# --- start-up failures ------------------------------------------------------------------------


def _assert_startup_error(sc: Sidecar) -> dict[str, Any]:
    msg = sc.first_message
    assert msg is not None and msg.get("event") == "error", sc.diagnostics()
    assert set(msg) >= {"event", "code", "message"}
    assert isinstance(msg["code"], str) and msg["code"]
    assert isinstance(msg["message"], str) and msg["message"]
    rc = sc.wait(EXIT_BOUND_S)
    assert rc != 0, sc.diagnostics()
    assert sc.stdout_rest() == b"", "the error line must be the only stdout output"
    sc.assert_clean_logs()
    return msg


def test_startup_failure_data_dir_is_a_file(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("I am a file")
    sc = spawn_sidecar(not_a_dir, expect="error")
    _assert_startup_error(sc)
    assert sc.proc.returncode == 1, sc.diagnostics()


def test_startup_failure_data_dir_under_a_file(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sc = spawn_sidecar(blocker / "data", expect="error")
    _assert_startup_error(sc)


def test_startup_failure_garbage_database(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sidecar.db").write_bytes(b"this is not SQLite " * 512)
    sc = spawn_sidecar(data, expect="error")
    msg = _assert_startup_error(sc)
    assert msg["code"] == "startup_failed", msg
    assert sc.proc.returncode == 1, sc.diagnostics()
    # the data is left alone for the user (or a repair tool) to deal with
    assert (data / "sidecar.db").read_bytes().startswith(b"this is not SQLite")


def test_usage_error_is_not_a_handshake(tmp_path: Path) -> None:
    proc = subprocess.run([*SERVE_CMD, "--data-dir", str(tmp_path), "--parent-pid", "not-a-pid"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=15, env=clean_env())
    assert proc.returncode == 2, proc
    assert b'"event":"ready"' not in proc.stdout


# --- logs -------------------------------------------------------------------------------------


def test_stderr_is_json_lines_without_the_token(sidecar: Sidecar) -> None:
    token = sidecar.token
    sidecar.wait_ready()  # the background imports (agent stack) have logged what they log
    sidecar.ok("GET", "/v1/health")
    sidecar.ok("POST", "/v1/tasks", {"title": f"title mentioning {token}"}, status=201)
    sidecar.request("GET", f"/v1/tasks/{token}")  # the token in a path that gets logged
    sidecar.request("GET", f"/v1/{token}")
    sidecar.request("GET", f"/v1/health?token={token}")
    sidecar.request("GET", "/v1/health", token=token + "x")
    sidecar.request("GET", "/v1/health", host=f"{token}:{sidecar.port}")
    sidecar.request("GET", "/v1/health", origin=f"https://{token}.example")
    sidecar.request("POST", "/v1/tasks", {"title": "x", "bogus": token})
    assert sidecar.stop() == 0
    records = sidecar.assert_clean_logs()
    messages = [r.get("message") for r in records]
    assert "serving" in messages and "shutting down" in messages and "stopped" in messages, messages
    for rec in records:
        assert {"time", "level", "logger", "message"} <= set(rec), rec
    requests = [r for r in records if r.get("message") == "request"]
    assert len(requests) >= 9, messages
    assert all(isinstance(r.get("status"), int) for r in requests)


def test_stderr_is_json_lines_at_debug_level(spawn_sidecar: SpawnFn) -> None:
    """At ``--log-level debug`` too, libraries (LiteLLM, AgentScope, aiosqlite…) log through the
    JSON formatter: no plain-text line, no token."""
    sc = spawn_sidecar(args=["--log-level", "debug"])
    sc.wait_ready()
    sc.ok("POST", "/v1/tasks", {"title": "debug"}, status=201)
    assert sc.stop() == 0
    bad = [line for line in sc.stderr_text().splitlines() if line.strip() and not line.startswith("{")]
    assert not bad, f"{len(bad)} non-JSON stderr lines, e.g. {bad[:3]}"
    sc.assert_clean_logs()
