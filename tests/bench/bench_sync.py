"""Sync and backup benchmark (issue 11). Prints figures; not a test.

    python -m tests.bench.bench_sync [--events N] [--backup-mb M]

Against the reference cloud server on loopback (in this process), with real stores on disk:

1. Push of N local events (sealing, compression, upload), pull + apply of them on a second
   device, and apply alone (decrypted batches applied through ``Store.write``): events/s
   (apply target ≥ 10,000 events/s).
2. Bytes the server stores per event vs the event's plaintext JSON; requests per N events.
3. Two devices × N events each: time until both hold the same data.
4. HTTP create throughput (``POST /v1/notes``) with 1 and 8 concurrent clients, before (one
   commit per change) and after group commit.
5. Backup of a database of about M MB: time, sealed size, restore time on a fresh data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from sidecar.logs import setup_logging
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from sidecar.sync import backup
from sidecar.sync.keys import Keychain, SyncKey
from sidecar.sync.pull import Downloaded, PullResult, RecordGroup, apply_records, open_records
from tests.fakes.cloud_server import STATE, make_app
from tests.sync.harness import domain_hash, open_device

TOKEN = "bench-token"
WORDS = ("budget review launch vendor contract design draft meeting invoice schedule report quarterly "
         "roadmap hiring feedback customer renewal pricing migration outage retro").split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def _write(repo: Repository, n: int, rng: random.Random, per_tx: int = 500) -> None:
    """``n`` local changes (creates and updates of notes and tasks), many per transaction."""
    ids: list[tuple[str, str]] = []
    done = 0
    while done < n:
        async with repo.transaction() as tx:
            for _ in range(min(per_tx, n - done)):
                if ids and rng.random() < 0.3:
                    entity, eid = rng.choice(ids)
                    await tx.update(entity, eid, {"title": _text(rng, 4)})
                elif rng.random() < 0.5:
                    row = await tx.create("notes", {"title": _text(rng, 4), "content": _text(rng, 40)})
                    ids.append(("notes", row.id))
                else:
                    row = await tx.create("tasks", {"title": _text(rng, 5), "priority": "high"})
                    ids.append(("tasks", row.id))
                done += 1


async def bench_push_pull(base: str, app_state, tmp: Path, n: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1)
    chain = Keychain.of(SyncKey.generate())
    a = await open_device(tmp / "a", base, chain, TOKEN)
    b = await open_device(tmp / "b", base, Keychain.parse(chain.dump()), TOKEN)
    await _write(a.repo, n, rng)
    plain = sum(len(json.dumps({k: r[k] for k in ("event_id", "device_id", "hlc", "entity", "entity_id", "op")}
                               | {"fields": json.loads(r["fields"])}))
                for r in await a.store.fetchall("SELECT * FROM change_log"))
    before = app_state.stats["requests"]
    t, cpu = time.perf_counter(), time.process_time()
    pushed = await a.push()
    push_s, push_cpu = time.perf_counter() - t, time.process_time() - cpu
    push_req = app_state.stats["requests"] - before
    stored = sum(r["size"] for r in app_state.records)
    before, commits_before = app_state.stats["requests"], b.store.commits
    t, cpu = time.perf_counter(), time.process_time()
    pulled = await b.pull()
    pull_s, pull_cpu = time.perf_counter() - t, time.process_time() - cpu
    pull_req = app_state.stats["requests"] - before
    # CPU: the whole process, the in-process reference server's work included
    print(f"push: {pushed.events} events in {push_s:.2f} s = {pushed.events / push_s:,.0f} events/s "
          f"({pushed.batches} batches, {push_req} requests); CPU {push_cpu:.2f} s = "
          f"{pushed.events / push_cpu:,.0f} events per CPU-second")
    print(f"pull+apply: {pulled.events} events in {pull_s:.2f} s = {pulled.events / pull_s:,.0f} events/s "
          f"({pull_req} requests, {b.store.commits - commits_before} commits); CPU {pull_cpu:.2f} s = "
          f"{pulled.events / pull_cpu:,.0f} events per CPU-second")
    print(f"stored: {stored / n:.1f} bytes/event on the server vs {plain / n:.1f} bytes/event plaintext JSON "
          f"(ratio {stored / plain:.2f}); requests per {n:,} events: push {push_req}, pull {pull_req}")
    # apply alone: the same records, verified and decrypted beforehand, applied into a fresh store
    # as a pull applies them (grouped into transactions, bookkeeping included)
    downloaded = [Downloaded(r["id"], (app_state.data / "records" / f"{r['id']}.bin").read_bytes(), r["checksum"])
                  for r in app_state.records]
    groups, group = [], RecordGroup()
    for rec in downloaded:
        if group.add(rec):
            groups.append(group.records)
            group = RecordGroup()
    opened = [open_records(chain.keys, g) for g in [*groups, group.records] if g]
    c = await Store.open(tmp / "c" / "sidecar.db")
    result, commits = PullResult(), c.commits
    t, cpu = time.perf_counter(), time.process_time()
    for records in opened:
        await apply_records(c, records, result)
    apply_s, apply_cpu = time.perf_counter() - t, time.process_time() - cpu
    applied = result.events
    print(f"apply only: {applied} events in {apply_s:.2f} s = {applied / apply_s:,.0f} events/s (target 10,000), "
          f"{len(downloaded)} batches in {c.commits - commits} transactions; CPU {apply_cpu:.2f} s (both threads) = "
          f"{applied / apply_cpu:,.0f} events per CPU-second")
    await c.close()
    await a.close()
    await b.close()


async def bench_converge(base: str, tmp: Path, n: int) -> None:
    chain = Keychain.of(SyncKey.generate())
    a = await open_device(tmp / "ca", base, chain, TOKEN)
    b = await open_device(tmp / "cb", base, Keychain.parse(chain.dump()), TOKEN)
    await _write(a.repo, n, random.Random(2))
    await _write(b.repo, n, random.Random(3))
    t = time.perf_counter()
    await a.sync()
    await b.sync()
    await a.pull()
    s = time.perf_counter() - t
    same = await domain_hash(a.store) == await domain_hash(b.store)
    print(f"two devices x {n:,} events: converged={same} in {s:.2f} s")
    await a.close()
    await b.close()


async def bench_http(tmp: Path, seconds: float = 4.0) -> None:
    """``POST /v1/notes`` throughput with 1 and 8 clients, group commit off (``max_group = 1``:
    one COMMIT and fsync per change, as before it was built) and on; commits per change."""
    import keyring

    from sidecar.app import create_app
    from sidecar.appstate import HANDSHAKE_DONE, STORE
    from sidecar.settings import Settings
    from tests.fakes.memory_keyring import MemoryKeyring

    keyring.set_keyring(MemoryKeyring())
    # The first app in the process pays one-off start-up work (search's imports and embedder load
    # in the background) for several seconds: a discarded round first, then the runs alternated.
    runs = [(1, True, False)] + [(c, g, True) for c in (1, 8) for g in (False, True)]
    for clients, grouped, counted in runs:
        app = create_app(Settings(data_dir=tmp / f"http{clients}{grouped}{counted}", token="t" * 40))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        app[HANDSHAKE_DONE].set()
        store = app[STORE]
        if not grouped:
            store.max_group = 1
        url = str(server.make_url("/v1/notes"))
        count = 0
        async with ClientSession(headers={"Authorization": "Bearer " + "t" * 40}) as http:
            async def worker(url: str, deadline: float) -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    async with http.post(url, json={"title": "bench"}) as resp:
                        assert resp.status == 201
                        count += 1
            # warm-up (not counted): the app's start-up work (search, background tasks) settles
            await asyncio.gather(*(worker(url, time.perf_counter() + 2.0) for _ in range(clients)))
            count, deadline = 0, time.perf_counter() + seconds
            commits = store.commits
            start = time.perf_counter()
            await asyncio.gather(*(worker(url, deadline) for _ in range(clients)))
            took = time.perf_counter() - start
            commits = store.commits - commits
        await server.close()
        if not counted:
            continue
        label = "group commit" if grouped else "one commit per change (before)"
        print(f"HTTP creates, {clients} client(s), {label}: {count / took:,.0f} ops/s "
              f"({count / max(commits, 1):.1f} changes per commit)")


async def bench_backup(tmp: Path, mb: int) -> None:
    rng = random.Random(4)
    store = await Store.open(tmp / "big" / "sidecar.db")
    repo = Repository(store)
    while (tmp / "big" / "sidecar.db").stat().st_size + (tmp / "big" / "sidecar.db-wal").stat().st_size < mb << 20:
        async with repo.transaction() as tx:
            for _ in range(500):
                await tx.create("notes", {"title": _text(rng, 5), "content": _text(rng, 600)})
    await store.fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (tmp / "big" / "sidecar.db").stat().st_size
    chain = Keychain.of(SyncKey.generate())
    t = time.perf_counter()
    made = await backup.create(store, chain, tmp / "backups")
    backup_s = time.perf_counter() - t
    fresh = await Store.open(tmp / "fresh" / "sidecar.db")
    t = time.perf_counter()
    await backup.restore(fresh, chain, made.path)
    restore_s = time.perf_counter() - t
    same = await domain_hash(fresh) == await domain_hash(store)
    print(f"backup of a {size / 1e6:.0f} MB database: {backup_s:.2f} s, sealed {made.size_bytes / 1e6:.1f} MB "
          f"({made.chunks} chunks); restore {restore_s:.2f} s, identical={same}")
    await fresh.close()
    await store.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--backup-mb", type=int, default=100)
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # logged as `sidecar serve` logs (JSON lines at info), into a file rather than among the
        # figures: the request lines' cost stays in the HTTP figures
        log_file = (tmp / "sidecar.log").open("w")
        setup_logging("info", log_file)
        for name in ("push_pull", "converge"):  # a fresh cloud account each
            app = make_app(tmp / f"cloud-{name}", token=TOKEN)
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            base = str(server.make_url("")).rstrip("/")
            try:
                if name == "push_pull":
                    await bench_push_pull(base, app[STATE], tmp, args.events)
                else:
                    await bench_converge(base, tmp, args.events)
            finally:
                await server.close()
        await bench_http(tmp)
        await bench_backup(tmp, args.backup_mb)


if __name__ == "__main__":
    asyncio.run(main())
