"""Secrets: write-only API, OS keyring only, the shell's environment wins, never logged."""

from __future__ import annotations

import asyncio
import io
import logging

import keyring
import pytest
from keyring.backends import fail

from sidecar.appstate import READINESS, SECRETS
from sidecar.logs import redact, setup_logging
from sidecar.secrets import SecretStore, env_name
from tests.conftest import TOKEN, Api
from tests.fakes.memory_keyring import MemoryKeyring


async def _wait_secrets_checked(api: Api) -> str:
    for _ in range(100):
        state = api.app[READINESS].get("secrets").state
        if state != "starting":
            return state
        await asyncio.sleep(0.02)
    raise AssertionError("secrets check never finished")


async def test_put_stores_in_keyring_and_is_write_only(api: Api, memory_keyring: MemoryKeyring) -> None:
    assert await _wait_secrets_checked(api) == "ok"
    body = await api.ok("PUT", "/v1/secrets/openai", {"value": "sk-test-1234567890"})
    assert body == {"name": "openai", "stored": True}
    assert memory_keyring.passwords[("sidecar", "openai")] == "sk-test-1234567890"
    assert "sk-test" not in str(body)
    assert await api.app[SECRETS].get("openai") == "sk-test-1234567890"
    assert await api.ok("DELETE", "/v1/secrets/openai") == {"name": "openai", "deleted": True}
    assert await api.ok("DELETE", "/v1/secrets/openai") == {"name": "openai", "deleted": False}


async def test_bad_names_and_values_are_422(api: Api) -> None:
    for name, body in (("bad name", {"value": "x"}), ("ok", {"value": ""}), ("ok", {}), ("ok", {"value": 5})):
        status, _err = await api.call("PUT", f"/v1/secrets/{name}", body)
        assert status == 422, (name, body)
    status, _ = await api.call("PUT", "/v1/secrets/" + "a" * 65, {"value": "x"})
    assert status == 422


async def test_environment_wins_over_keyring(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password("sidecar", "openai.key", "from-keyring-123")
    assert env_name("openai.key") == "SIDECAR_SECRET_OPENAI_KEY"
    store = SecretStore({"SIDECAR_SECRET_OPENAI_KEY": "from-env-4567890"})
    assert await store.get("openai.key") == "from-env-4567890"
    assert await SecretStore({}).get("openai.key") == "from-keyring-123"
    assert await SecretStore({}).get("unset") is None


async def test_no_secure_backend_degrades_and_refuses_without_plaintext_fallback(api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keyring.set_keyring(fail.Keyring())
    usable, detail = api.app[SECRETS].status()
    assert not usable and "keyring" in detail
    status, err = await api.call("PUT", "/v1/secrets/openai", {"value": "sk-nowhere-123456"})
    assert status == 503 and err["error"]["code"] == "secrets_unavailable"
    assert not any("sk-nowhere" in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_plaintext_backends_are_refused() -> None:
    class PlaintextKeyring(MemoryKeyring):
        pass

    PlaintextKeyring.__module__ = "keyrings.alt.file"
    keyring.set_keyring(PlaintextKeyring())
    try:
        usable, detail = SecretStore({}).status()
        assert not usable and "not a secure store" in detail
    finally:
        keyring.set_keyring(MemoryKeyring())


async def test_ready_reports_degraded_secrets(settings, memory_keyring) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestClient, TestServer

    from sidecar.app import create_app
    from sidecar.appstate import HANDSHAKE_DONE

    keyring.set_keyring(fail.Keyring())
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        api = Api(client)
        assert await _wait_secrets_checked(api) == "degraded"
        ready = await api.ok("GET", "/v1/ready")
        assert ready["components"]["secrets"]["state"] == "degraded"
        assert "no secure keyring" in ready["components"]["secrets"]["detail"]


@pytest.mark.usefixtures("memory_keyring")
async def test_secret_values_never_reach_the_log(api: Api) -> None:
    buf = io.StringIO()
    setup_logging("debug", buf)
    try:
        await api.ok("PUT", "/v1/secrets/k", {"value": "super-secret-value-42"})
        logging.getLogger("test").info("echo %s", "super-secret-value-42")
        redact(TOKEN)  # what `sidecar serve` does with its token
        logging.getLogger("test").info("token %s", TOKEN)
    finally:
        logging.getLogger().handlers.clear()
    out = buf.getvalue()
    assert "super-secret-value-42" not in out and TOKEN not in out and out.count("[redacted]") == 2


async def test_keyring_work_never_runs_on_the_event_loop(memory_keyring: MemoryKeyring,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding the keyring backend (entry points, D-Bus) took ~0.2 s on the event loop at the
    first secret read after start-up, stalling every request meanwhile: it belongs in a thread."""
    import threading

    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []
    real = keyring.get_keyring

    def spying_get_keyring():  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread())
        return real()

    monkeypatch.setattr(keyring, "get_keyring", spying_get_keyring)
    secrets = SecretStore({})
    await secrets.set("openai.key", "sk-abc-123456")
    assert await secrets.get("openai.key") == "sk-abc-123456"
    assert await secrets.delete("openai.key") is True
    assert seen and loop_thread not in seen
