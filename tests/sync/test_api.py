"""The sync routes of a real app on loopback against the reference cloud: settings, key,
status, sync now, readiness, the sync.status event, auth expiry."""

from __future__ import annotations

import asyncio

from sidecar.appstate import SYNC
from tests.conftest import Api, auth
from tests.fakes.memory_keyring import MemoryKeyring
from tests.schema_check import check_document
from tests.sse import SseReader
from tests.sync.conftest import CLOUD_TOKEN, Cloud


async def _enable(api: Api, cloud: Cloud) -> dict:  # type: ignore[type-arg]
    await api.ok("PUT", "/v1/secrets/cloud_token", {"value": CLOUD_TOKEN})
    return await api.ok("PUT", "/v1/settings/sync", {"enabled": True, "apiBase": cloud.base, "pullIntervalS": 30})  # type: ignore[no-any-return]


async def test_disabled_by_default_and_sync_now_refuses(api: Api) -> None:
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["sync"]["state"] == "disabled"
    assert (await api.ok("GET", "/v1/settings/sync"))["enabled"] is False
    status, body = await api.call("POST", "/v1/sync/now")
    assert status == 409 and body["error"]["code"] == "sync_disabled"
    status, body = await api.call("POST", "/v1/sync/key/export")
    assert status == 404 and body["error"]["code"] == "no_sync_key"
    status, body = await api.call("PUT", "/v1/settings/sync", {"enabled": True})
    assert status == 422 and "apiBase" in body["error"]["message"] + str(body["error"]["detail"])
    assert api.app[SYNC].client is None  # nothing that could open a socket exists


async def test_enable_makes_a_key_in_the_keyring_then_pushes(api: Api, cloud: Cloud, memory_keyring: MemoryKeyring,
                                                             settings) -> None:  # type: ignore[no-untyped-def]
    view = await _enable(api, cloud)
    assert view["keySet"] and view["tokenSet"] and view["pullIntervalS"] == 30
    exported = await api.ok("POST", "/v1/sync/key/export")
    words = exported["recoveryKey"]
    assert len(words.split()) == 24 and ("sidecar", "sync_key") in memory_keyring.passwords
    on_disk = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    assert words.split()[0].encode() + b" " + words.split()[1].encode() not in on_disk  # never a plaintext file
    await api.ok("POST", "/v1/notes", {"title": "Pushed by the API"}, status=201)
    status = await api.ok("POST", "/v1/sync/now")
    assert status["state"] == "online" and status["pendingEvents"] == 0 and status["keyId"] == exported["keyId"]
    assert status["lastPushAt"] and status["lastPullAt"]
    assert cloud.stats()["records"] == 1
    ready = await api.ok("GET", "/v1/ready")
    assert ready["components"]["sync"]["state"] == "ok"


async def test_import_refuses_mistyped_words_and_rotates_to_a_good_key(api: Api, cloud: Cloud) -> None:
    await _enable(api, cloud)
    first = (await api.ok("POST", "/v1/sync/key/export"))["keyId"]
    status, body = await api.call("POST", "/v1/sync/key/import", {"recoveryKey": "abandon " * 23 + "zoo"})
    assert status == 422 and body["error"]["code"] == "invalid_recovery_key"
    from sidecar.sync.keys import SyncKey

    other = SyncKey.generate()
    got = await api.ok("POST", "/v1/sync/key/import", {"recoveryKey": other.recovery_words})
    assert got["keyId"] == other.key_id != first
    chain = await api.app[SYNC].keychain()
    assert chain is not None and set(chain.keys) == {first, other.key_id}


async def test_expired_auth_degrades_sync_and_tells_the_shell(api: Api, cloud: Cloud) -> None:
    await _enable(api, cloud)
    resp = await api.client.get("/v1/events", headers=auth())
    stream = SseReader(resp)
    assert cloud.state is not None
    cloud.state.tokens.clear()
    cloud.state.refresh_tokens.clear()
    await api.ok("POST", "/v1/notes", {"title": "x"}, status=201)
    status = await api.ok("POST", "/v1/sync/now")
    assert status["state"] == "degraded" and status["detail"].startswith("auth_expired")
    assert (await api.ok("GET", "/v1/ready"))["components"]["sync"]["state"] == "degraded"
    seen = []
    for _ in range(10):
        ev = await stream.next(timeout=5)
        if ev.event == "sync.status":
            check_document("events.sync-status", ev.json())
            seen.append(ev.json()["state"])
            if ev.json()["state"] == "degraded":
                break
    assert "degraded" in seen
    resp.close()


async def test_offline_server_is_reported_and_retried_with_backoff(api: Api, cloud: Cloud) -> None:
    await api.ok("PUT", "/v1/secrets/cloud_token", {"value": CLOUD_TOKEN})
    await api.ok("PUT", "/v1/settings/sync", {"enabled": True, "apiBase": "http://127.0.0.1:9"})  # nothing listens
    await asyncio.sleep(0.3)
    status = await api.ok("GET", "/v1/sync")
    assert status["state"] == "offline" and not status["online"]
    assert (await api.ok("GET", "/v1/ready"))["components"]["sync"]["state"] == "degraded"
    before = status["requests"]
    await asyncio.sleep(2.0)
    assert (await api.ok("GET", "/v1/sync"))["requests"] - before <= 3  # backoff: no hot loop


async def test_backup_to_a_local_folder_without_the_cloud(api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    status, body = await api.call("POST", "/v1/backup")
    assert status == 409 and body["error"]["code"] == "no_backup_target"
    folder = tmp_path / "my backups"
    await api.ok("PUT", "/v1/settings/sync", {"enabled": False, "backupDir": str(folder), "backupCron": "0 3 * * *"})
    await api.ok("POST", "/v1/notes", {"title": "kept locally"}, status=201)
    made = await api.ok("POST", "/v1/backup")
    assert made["cloudId"] is None and made["path"] and (folder / made["path"].rsplit("/", 1)[1]).exists()
    assert api.app[SYNC].client is None  # still no socket
    status, body = await api.call("POST", "/v1/backup/restore", {"path": made["path"]})
    assert status == 409 and body["error"]["code"] == "not_fresh"
    status, body = await api.call("PUT", "/v1/settings/sync", {"backupCron": "every day"})
    assert status == 422


async def test_a_backup_schedule_makes_backups_until_it_is_removed(api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "scheduled"
    await api.ok("POST", "/v1/notes", {"title": "backed up on a schedule"}, status=201)
    # croniter's sixth field is seconds: every 2 s, so the test need not wait for a minute
    await api.ok("PUT", "/v1/settings/sync", {"enabled": False, "backupDir": str(folder), "backupCron": "* * * * * */2"})
    for _ in range(80):
        if folder.is_dir() and any(folder.glob("*.scbk")):
            break
        await asyncio.sleep(0.1)
    made = sorted(folder.glob("*.scbk"))
    assert made, "no scheduled backup within 8 s"
    assert api.app[SYNC].client is None  # a local schedule opens no socket
    await api.ok("PUT", "/v1/settings/sync", {"enabled": False, "backupDir": str(folder), "backupCron": None})
    await asyncio.sleep(0.3)  # a backup already under way may still finish
    settled = sorted(folder.glob("*.scbk"))
    await asyncio.sleep(4.5)
    assert sorted(folder.glob("*.scbk")) == settled  # no schedule, no more backups
