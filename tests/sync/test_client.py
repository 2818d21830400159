"""The cloud client against the reference server's faults: recovers by itself, never hot-loops."""

from __future__ import annotations

import time

import pytest

from sidecar.secrets import SecretStore
from sidecar.sync.client import AuthExpired, CloudClient, Rejected, RetryPolicy, Transient, checksum
from tests.fakes.memory_keyring import MemoryKeyring
from tests.sync.conftest import CLOUD_REFRESH, CLOUD_TOKEN, Cloud

FAST = RetryPolicy(attempts=4, min_s=0.01, max_s=0.05, timeout_s=2.0)


@pytest.fixture
async def client(cloud: Cloud, memory_keyring: MemoryKeyring):  # type: ignore[no-untyped-def]
    secrets = SecretStore({})
    await secrets.set("cloud_token", CLOUD_TOKEN)
    await secrets.set("cloud_refresh_token", CLOUD_REFRESH)
    c = CloudClient(cloud.base, secrets, policy=FAST)
    yield c
    await c.close()


async def test_contract_round_trip(client: CloudClient, cloud: Cloud) -> None:
    assert await client.health()
    rid = await client.post_record(b"opaque bytes")
    metas = await client.list_records(1)
    assert [m.id for m in metas] == [rid] and metas[0].checksum == checksum(b"opaque bytes")
    assert await client.get_record(rid) == (b"opaque bytes", checksum(b"opaque bytes"))
    assert await client.get_backup() is None
    bid = await client.put_backup(b"backup", version=1, timestamp_ms=123, chunks=1)
    got = await client.get_backup()
    assert got is not None and got[0] == b"backup" and got[1]["X-Backup-Id"] == bid


@pytest.mark.parametrize("kind", ["5xx", "reset", "429"])
async def test_transient_faults_are_retried_a_bounded_number_of_times(client: CloudClient, cloud: Cloud,
                                                                      kind: str) -> None:
    cloud.fault(kind, count=2, seconds=0)
    await client.post_record(b"x")
    assert cloud.stats()["requests"] == 3  # two faults, one success
    cloud.fault(kind, count=100, seconds=0)
    before = cloud.stats()["requests"]
    with pytest.raises(Transient):
        await client.post_record(b"y")
    assert cloud.stats()["requests"] - before == FAST.attempts  # gives up; no hot loop


async def test_retry_after_is_honoured(client: CloudClient, cloud: Cloud) -> None:
    cloud.fault("429", count=1, seconds=1)
    start = time.monotonic()
    await client.post_record(b"x")
    assert time.monotonic() - start >= 0.95


async def test_a_slow_answer_times_out_and_is_retried(cloud: Cloud, memory_keyring: MemoryKeyring) -> None:
    secrets = SecretStore({"SIDECAR_SECRET_CLOUD_TOKEN": CLOUD_TOKEN})  # the token from the shell's env
    c = CloudClient(cloud.base, secrets, policy=RetryPolicy(attempts=3, min_s=0.01, max_s=0.02, timeout_s=0.3))
    cloud.fault("slow", count=1, seconds=1.0)
    try:
        await c.post_record(b"x")
    finally:
        await c.close()
    assert cloud.stats()["records"] >= 1


async def test_an_expired_token_is_refreshed_once_and_the_new_tokens_are_kept(
        client: CloudClient, cloud: Cloud, memory_keyring: MemoryKeyring) -> None:
    cloud.fault("expire_token")
    await client.post_record(b"x")
    stored = memory_keyring.passwords
    assert stored[("sidecar", "cloud_token")] != CLOUD_TOKEN
    assert stored[("sidecar", "cloud_refresh_token")] != CLOUD_REFRESH
    assert cloud.stats()["by_route"].get("POST /api/v1/auth/refresh") == 1


async def test_auth_expired_when_refresh_fails(client: CloudClient, cloud: Cloud) -> None:
    assert cloud.state is not None
    cloud.state.refresh_tokens.clear()
    cloud.fault("expire_token")
    with pytest.raises(AuthExpired):
        await client.post_record(b"x")
    assert cloud.stats()["requests"] == 2  # the write, the refresh: no third try


async def test_a_lost_response_retries_and_the_server_then_holds_the_write_twice(client: CloudClient,
                                                                                 cloud: Cloud) -> None:
    cloud.fault("lost_response", path="/api/v1/storage/records")
    await client.post_record(b"once")
    assert cloud.stats()["records"] == 2  # receivers must be idempotent (tests/sync/test_sync.py)


async def test_quota_is_rejected_without_retry(cloud: Cloud, client: CloudClient) -> None:
    assert cloud.state is not None
    cloud.state.quota = 3
    with pytest.raises(Rejected) as exc:
        await client.post_record(b"too big")
    assert exc.value.status == 403 and cloud.stats()["requests"] == 1


async def test_listing_duplicates_are_served_when_asked(client: CloudClient, cloud: Cloud) -> None:
    await client.post_record(b"a")
    cloud.fault("duplicates")
    assert len(await client.list_records(1)) == 2


def test_reference_server_runs_as_its_own_process(cloud_process: Cloud) -> None:
    import urllib.request

    with urllib.request.urlopen(cloud_process.base + "/api/v1/health", timeout=5) as resp:
        assert resp.status == 200
    cloud_process.fault("5xx")
    assert cloud_process.stats()["requests"] == 1


async def test_every_contract_route_but_health_and_refresh_needs_the_token(cloud: Cloud) -> None:
    """The reference server's one auth check and JSON handling (``route``) cover every handler:
    no token → 401, a body that is not JSON → 400, each in the contract's ``{"detail"}`` shape."""
    import aiohttp

    from tests.fakes.cloud_server import API, ROUTES

    contract = [r for r in ROUTES if isinstance(r, aiohttp.web.RouteDef) and r.path.startswith(API)]
    assert len(contract) == 11
    async with aiohttp.ClientSession() as http:
        for r in contract:
            url = cloud.base + r.path.replace("{id}", "x")
            async with http.request(r.method, url) as resp:
                body = await resp.json()
                if r.path in (f"{API}/health", f"{API}/auth/refresh"):
                    assert resp.status != 401, r
                else:
                    assert (resp.status, set(body)) == (401, {"detail"}), r
        headers = {"Authorization": f"Bearer {CLOUD_TOKEN}", "Content-Type": "application/json"}
        for path in ("/storage/records", "/auth/refresh"):
            async with http.post(cloud.base + API + path, data=b"{not json", headers=headers) as resp:
                assert (resp.status, set(await resp.json())) == (400, {"detail"})
