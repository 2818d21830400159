"""Real sidecar processes with their own data dirs against the reference cloud process:
convergence of three devices, nothing readable on the server, kill -9 during push and apply,
and the socket audit (sync off, and sync on with the server down)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.store.entities import ENTITIES
from sidecar.sync.keys import SyncKey
from tests.e2e.conftest import Sidecar, SpawnFn
from tests.e2e.test_offline import SITECUSTOMIZE
from tests.sync.conftest import CLOUD_TOKEN, REPO, Cloud

pytestmark = pytest.mark.e2e


def _env(words: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"PYTHON_KEYRING_BACKEND": "tests.fakes.memory_keyring.MemoryKeyring", "PYTHONPATH": str(REPO),
            "SIDECAR_SECRET_CLOUD_TOKEN": CLOUD_TOKEN, "SIDECAR_SECRET_SYNC_KEY": words, **(extra or {})}


def _hash(data_dir: Path) -> str:
    db = sqlite3.connect(f"file:{data_dir / 'sidecar.db'}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        for spec in ENTITIES.values():
            h.update(json.dumps(db.execute(f"SELECT * FROM {spec.table} ORDER BY id").fetchall()).encode())
        return h.hexdigest()
    finally:
        db.close()


def _enable(sc: Sidecar, base: str, interval: float = 3600) -> None:
    sc.ok("PUT", "/v1/settings/sync", {"enabled": True, "apiBase": base, "pullIntervalS": interval})


def _sync_all(devices: list[Sidecar], rounds: int = 2) -> None:
    for _ in range(rounds):
        for d in devices:
            status = d.ok("POST", "/v1/sync/now", timeout=60)
            assert status["state"] == "online", status


def test_three_processes_converge_and_the_server_holds_no_plaintext(spawn_sidecar: SpawnFn,
                                                                   cloud_process: Cloud) -> None:
    words = SyncKey.generate().recovery_words
    devices = [spawn_sidecar(env=_env(words)) for _ in range(3)]
    for d in devices:
        _enable(d, cloud_process.base)
    a, b, c = devices
    texts = []
    project = a.ok("POST", "/v1/projects", {"name": "Atlas relaunch"}, status=201)
    texts.append("Atlas relaunch")
    for i, d in enumerate(devices):
        title, content = f"Board memo {i} zebra", f"Confidential figures {i} quokka"
        d.ok("POST", "/v1/notes", {"title": title, "content": content}, status=201)
        texts += [title, content]
    _sync_all(devices)
    task = b.ok("POST", "/v1/tasks", {"title": "Renegotiate lease walrus", "projectId": project["id"]}, status=201)
    texts.append("Renegotiate lease walrus")
    _sync_all(devices)
    a.ok("PATCH", f"/v1/tasks/{task['id']}", {"status": "done"})
    c.ok("PATCH", f"/v1/tasks/{task['id']}", {"priority": "high", "description": "Ask for two years narwhal"})
    texts.append("Ask for two years narwhal")
    note = c.ok("GET", "/v1/notes?q=memo%200")["items"][0]
    b.ok("DELETE", f"/v1/notes/{note['id']}")
    a.ok("PATCH", f"/v1/notes/{note['id']}", {"title": "Edited while deleted elsewhere"})
    _sync_all(devices)
    assert len({_hash(d.data_dir) for d in devices}) == 1
    got = a.ok("GET", f"/v1/tasks/{task['id']}")
    assert (got["status"], got["priority"]) == ("done", "high")
    assert a.ok("GET", "/v1/notes")["total"] == 2  # the delete won
    seen = {dev["deviceId"] for dev in a.ok("GET", "/v1/sync")["devices"]}
    assert seen == {b.device_id(), c.device_id()}
    stored = cloud_process.stored_bytes()
    assert stored, "the server stored nothing"
    for text in [*texts, "Edited while deleted elsewhere"]:
        assert text.encode() not in stored, text


def _spawn_until_killed(spawn_sidecar: SpawnFn, data_dir: Path, env: dict[str, str], delay: float) -> None:
    sc = spawn_sidecar(data_dir=data_dir, env=env)
    time.sleep(delay)
    sc.kill()
    sc.proc.wait(10)


def _scalar(data_dir: Path, sql: str) -> int:
    db = sqlite3.connect(data_dir / "sidecar.db")
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def _integrity(data_dir: Path) -> str:
    db = sqlite3.connect(data_dir / "sidecar.db")
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


@pytest.mark.slow
def test_kill_9_during_push_and_during_apply_loses_nothing_and_applies_nothing_twice(
        spawn_sidecar: SpawnFn, cloud_process: Cloud, tmp_path: Path) -> None:
    rng = random.Random(11)
    words = SyncKey.generate().recovery_words
    env = _env(words)
    a_dir, b_dir = tmp_path / "dev-a", tmp_path / "dev-b"
    a = spawn_sidecar(data_dir=a_dir, env=env)
    _enable(a, cloud_process.base, interval=1)
    titles: set[str] = set()
    a.stop()
    mid_push = 0
    for round_ in range(10):  # push: each run writes 60 notes, then dies while pushing
        sc = spawn_sidecar(data_dir=a_dir, env=env)
        cloud_process.clear_faults()
        cloud_process.fault("slow", count=20, seconds=0.8, path="/api/v1/storage/records")
        for i in range(60):
            title = f"note {round_}-{i}"
            sc.ok("POST", "/v1/notes", {"title": title}, status=201)
            titles.add(title)
        # kill while a sealed batch is in flight (the server answers slowly), at a random moment
        deadline = time.monotonic() + 20
        while not _scalar(a_dir, "SELECT count(*) FROM sync_outbox WHERE acked_at IS NULL"):
            assert time.monotonic() < deadline, "the sidecar never started pushing"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        sc.kill()
        sc.proc.wait(10)
        assert _integrity(a_dir) == "ok"
        mid_push += _scalar(a_dir, "SELECT count(*) FROM sync_outbox WHERE acked_at IS NULL")
    assert mid_push > 0, "no kill landed between sealing a batch and its acknowledgement"
    cloud_process.clear_faults()
    a = spawn_sidecar(data_dir=a_dir, env=env)
    final = a.ok("POST", "/v1/sync/now", timeout=60)
    assert final["pendingEvents"] == 0, final
    a.stop()

    b = spawn_sidecar(data_dir=b_dir, env=env)
    _enable(b, cloud_process.base, interval=1)
    b.stop()
    partial = 0
    for _ in range(10):  # apply: dies at random moments while pulling and applying
        cloud_process.clear_faults()
        cloud_process.fault("slow", count=20, seconds=0.2, path="/api/v1/storage/records/")
        _spawn_until_killed(spawn_sidecar, b_dir, env, rng.uniform(0.8, 2.5))
        assert _integrity(b_dir) == "ok"
        partial += 0 < _scalar(b_dir, "SELECT count(*) FROM notes") < len(titles)
    assert partial > 0, "no kill landed while the backlog was being applied"
    cloud_process.clear_faults()
    b = spawn_sidecar(data_dir=b_dir, env=env)
    b.ok("POST", "/v1/sync/now", timeout=60)
    got = [n["title"] for n in _all_notes(b)]
    assert sorted(got) == sorted(titles)  # none lost, none twice
    b.stop()
    db = sqlite3.connect(b_dir / "sidecar.db")
    dup = db.execute("SELECT count(*) - count(DISTINCT event_id) FROM change_log").fetchone()[0]
    remote = db.execute("SELECT count(*) FROM change_log WHERE origin = 'remote'").fetchone()[0]
    db.close()
    assert dup == 0 and remote == len(titles)


def _all_notes(sc: Sidecar) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = sc.ok("GET", f"/v1/notes?limit=200&offset={len(out)}")
        out += page["items"]
        if len(out) >= page["total"]:
            return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_socket_audit_sync_off_then_on_with_the_server_down(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    net_log = tmp_path / "net.jsonl"
    words = SyncKey.generate().recovery_words
    env = _env(words, {"PYTHONPATH": f"{site}:{REPO}", "SIDECAR_TEST_NET_LOG": str(net_log)})
    sc = spawn_sidecar(env=env)
    sc.wait_ready()
    sc.ok("POST", "/v1/notes", {"title": "offline note"}, status=201)
    time.sleep(1.5)
    records = [json.loads(line) for line in net_log.read_text().splitlines()] if net_log.exists() else []
    assert not [r for r in records if r["event"] == "connect" and isinstance(r["address"], list)], records
    port = _free_port()  # nothing listens there: the server is down
    _enable(sc, f"http://127.0.0.1:{port}")
    time.sleep(2.5)
    status = sc.ok("GET", "/v1/sync")
    assert status["state"] == "offline"
    assert sc.stop() == 0
    records = [json.loads(line) for line in net_log.read_text().splitlines()]
    network = [r for r in records if r["event"] == "connect" and isinstance(r["address"], list)]
    assert network, "the audit hook saw no connection attempt to the configured server"
    assert all(r["address"][:2] == ["127.0.0.1", port] for r in network), network
    assert len(network) <= 4  # backoff: a few probes in 2.5 s, not a hot loop
    lookups = {r["host"] for r in records if r["event"] == "getaddrinfo"}
    assert lookups <= {"127.0.0.1", "localhost", "None"}, lookups


def test_restore_from_the_cloud_on_a_fresh_process_then_pull_newer(spawn_sidecar: SpawnFn,
                                                                    cloud_process: Cloud) -> None:
    words = SyncKey.generate().recovery_words
    a = spawn_sidecar(env=_env(words))
    _enable(a, cloud_process.base)
    for i in range(20):
        a.ok("POST", "/v1/tasks", {"title": f"before backup {i}"}, status=201)
    a.ok("POST", "/v1/sync/now", timeout=60)
    made = a.ok("POST", "/v1/backup", timeout=60)
    assert made["cloudId"] and made["chunkCount"] >= 1
    a.ok("POST", "/v1/notes", {"title": "after the backup"}, status=201)
    a.ok("POST", "/v1/sync/now", timeout=60)
    # a new laptop: no key yet (memory keyring), only the cloud token
    b = spawn_sidecar(env={k: v for k, v in _env(words).items() if k != "SIDECAR_SECRET_SYNC_KEY"})
    _enable(b, cloud_process.base)
    bad = b.request("POST", "/v1/backup/restore", {"recoveryKey": " ".join(words.split()[::-1])})
    assert bad.status == 422 and bad.error_code() == "invalid_recovery_key"
    restored = b.ok("POST", "/v1/backup/restore", {"recoveryKey": words}, timeout=60)
    assert restored["source"] == "cloud" and restored["pulledEvents"] == 1
    assert _hash(a.data_dir) == _hash(b.data_dir)
    again = b.request("POST", "/v1/backup/restore", {"recoveryKey": words})
    assert again.status == 409 and again.error_code() == "not_fresh"
