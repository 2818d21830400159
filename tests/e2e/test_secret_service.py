"""Secrets against a real Secret Service on Linux (issue 9): GNOME Keyring in a private D-Bus
session, started here; the spawned ``sidecar serve`` stores, uses and deletes a secret in it.

Needs the Debian packages ``gnome-keyring`` and ``dbus-daemon`` (``.ci/run`` installs them);
skipped with the reason when they are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import SpawnFn

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Secret Service is the Linux keyring")


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A D-Bus session bus with an unlocked GNOME Keyring on it; yields the environment to use."""
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        pytest.skip("gnome-keyring and dbus-daemon are not installed (apt-get install gnome-keyring dbus-daemon)")
    home = tmp_path / "home"
    (home / ".local" / "share" / "keyrings").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"),
           "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    bus = subprocess.run(["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
                         capture_output=True, text=True, env=env, timeout=10, check=True)
    address, pid = bus.stdout.split()[:2]
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    keyring_proc = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert keyring_proc.stdin is not None
    keyring_proc.stdin.write(b"test-login-password")  # creates and unlocks the login keyring
    keyring_proc.stdin.close()
    try:
        _wait_for_secret_service(env)
        yield {k: env[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR")}
    finally:
        keyring_proc.terminate()
        keyring_proc.wait(timeout=5)
        os.kill(int(pid), signal.SIGTERM)


def _probe(env: dict[str, str], code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _wait_for_secret_service(env: dict[str, str]) -> None:
    import time

    code = ("import secretstorage; c = secretstorage.dbus_init(); "
            "col = secretstorage.get_default_collection(c); print(col.is_locked())")
    deadline = time.monotonic() + 15
    while True:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip() == "False":
            return
        if time.monotonic() > deadline:
            pytest.fail(f"GNOME Keyring did not come up unlocked: {proc.stdout} {proc.stderr}")
        time.sleep(0.2)


def _stored(env: dict[str, str], name: str) -> str:
    """What the Secret Service itself holds for ``name`` (read with ``secretstorage``, not keyring)."""
    return _probe(env, (
        "import secretstorage; c = secretstorage.dbus_init(); col = secretstorage.get_default_collection(c); "
        f"items = list(col.search_items({{'service': 'sidecar', 'username': {name!r}}})); "
        "print(items[0].get_secret().decode() if items else '<none>')"))


def test_secrets_live_in_a_real_secret_service(secret_service: dict[str, str], spawn_sidecar: SpawnFn) -> None:
    sc = spawn_sidecar(env={**secret_service, "PYTHON_KEYRING_BACKEND": None})
    value = "sk-ss-" + uuid.uuid4().hex
    sc.ok("PUT", "/v1/secrets/openai", {"value": value})
    ready = sc.ok("GET", "/v1/ready")
    secrets = ready["components"]["secrets"]
    assert secrets["state"] == "ok", secrets
    assert _stored(secret_service, "openai") == value  # in GNOME Keyring itself, not a fallback
    assert value not in sc.stderr_text()  # the value itself is never logged
    sc.ok("DELETE", "/v1/secrets/openai")
    assert _stored(secret_service, "openai") == "<none>"
    assert sc.stop() == 0
