"""Hardening benchmark (issue 9): health latency under abuse, memory under big lists, and how
fast a full disk shows. Prints figures; not a test.

    python -m tests.bench.bench_hardening [--idle 2000] [--tasks 20000] [--lists 20]

1. ``/v1/health`` p50/p99 (ms, a new connection per request, 200 requests) against a spawned
   ``sidecar serve`` (started with a desktop's file limit of 1024): quiet, while ``--idle`` idle
   connections are held open (none sends a byte), and while ``--lists`` concurrent
   ``GET /v1/tasks?limit=10000`` run over ``--tasks`` tasks.
2. The sidecar's RSS (psutil, MB): after start-up, once background indexing of the seeded tasks
   has settled, at the lists' peak, and 3 s after.
3. ``/v1/health`` p50/p99/max while the agent libraries load after a model is configured.
4. Disk full: a sidecar on a 16 MiB tmpfs (root only); the time from the disk filling (a filler
   file written until ENOSPC) to ``/v1/ready`` saying ``store: degraded``, and back to ``ok``
   once the filler is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from sidecar.store.db import Store
from sidecar.store.repository import Repository
from tests.bench.settle import settle_cpu
from tests.e2e.conftest import Sidecar, spawn, stop_all


def _get(sc: Sidecar, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", sc.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {sc.token}", "Host": f"127.0.0.1:{sc.port}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def health_latency(sc: Sidecar, n: int = 200) -> tuple[float, float, int]:
    """p50 and p99 of ``/v1/health`` in ms, and how many failed."""
    times, failed = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            status, _ = _get(sc, "/v1/health", timeout=10)
            failed += status != 200
        except OSError:
            failed += 1
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], failed


def fmt(p: tuple[float, float, int]) -> str:
    return f"p50 {p[0]:.1f} ms, p99 {p[1]:.1f} ms, failed {p[2]}"


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


async def seed_tasks(data: Path, n: int) -> None:
    store = await Store.open(data / "sidecar.db")
    repo = Repository(store)
    for start in range(0, n, 1000):
        async with repo.transaction() as tx:
            for i in range(start, min(n, start + 1000)):
                await tx.create("tasks", {"title": f"Task {i}", "description": "x" * 200})
    await store.close()


def bench_idle(work: Path, idle: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))  # the sidecar gets a desktop's limit
    try:
        sc = spawn(work / "idle", log_dir=work / "logs")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        print(f"health, quiet: {fmt(health_latency(sc))}")
        held = []
        for _ in range(idle):
            try:
                held.append(socket.create_connection(("127.0.0.1", sc.port)))
            except OSError as exc:
                print(f"  (opened {len(held)} idle connections, then {exc})")
                break
        conns = len(psutil.Process(sc.pid).net_connections(kind="tcp"))
        print(f"health, {len(held)} idle connections held: {fmt(health_latency(sc))} "
              f"(sidecar holds {conns} TCP sockets)")
        for s in held:
            s.close()
    finally:
        stop_all([sc])


def bench_lists(work: Path, tasks: int, lists: int) -> None:
    data = work / "lists"
    asyncio.run(seed_tasks(data, tasks))
    sc = spawn(data, log_dir=work / "logs")
    try:
        _get(sc, "/v1/tasks?limit=10")
        started = rss_mb(sc.pid)
        # The search index catches up with the seeded tasks after start-up; measure the lists'
        # memory from the settled figure, not from a moment before the indexer ran.
        settle_cpu(sc.pid)
        before = rss_mb(sc.pid)
        print(f"RSS: {started:.0f} MB after start-up, {before:.0f} MB once the search index settled")
        peak = [before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                with contextlib.suppress(psutil.Error):
                    peak.append(rss_mb(sc.pid))
                time.sleep(0.05)

        results: list[int] = []

        def one_list() -> None:
            status, body = _get(sc, "/v1/tasks?limit=10000", timeout=120)
            results.append(len(json.loads(body)["items"]) if status == 200 else -status)

        sampler = threading.Thread(target=sample)
        sampler.start()
        workers = [threading.Thread(target=one_list) for _ in range(lists)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        lat = health_latency(sc, 100)
        for w in workers:
            w.join()
        took = time.perf_counter() - t0
        time.sleep(3)
        stop.set()
        sampler.join()
        after = rss_mb(sc.pid)
        print(f"health, {lists} lists of 10,000 over {tasks} tasks running: {fmt(lat)}; lists done in {took:.1f} s "
              f"(pages: {sorted(set(results))})")
        print(f"RSS around the lists: before {before:.0f} MB, peak {max(peak):.0f} MB, 3 s after {after:.0f} MB "
              f"(+{after - before:.0f} MB kept)")
    finally:
        stop_all([sc])


def bench_warmup(work: Path) -> None:
    """Health while the agent libraries load in the background (right after a model is set):
    each request on a new connection, every 10 ms, for 8 s."""
    sc = spawn(work / "warmup", log_dir=work / "logs")
    try:
        sc.wait_ready(60)
        lat: list[float] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                _get(sc, "/v1/health")
                lat.append((time.perf_counter() - t0) * 1e3)
                time.sleep(0.01)

        th = threading.Thread(target=hammer)
        th.start()
        time.sleep(1)
        sc.request("PUT", "/v1/settings/model", {"model": "openai/bench", "apiBase": "http://127.0.0.1:9/v1"})
        time.sleep(8)
        stop.set()
        th.join()
        lat.sort()
        print(f"health while the agent stack loads: p50 {statistics.median(lat):.1f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)]:.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} requests)")
    finally:
        stop_all([sc])


def bench_disk_full(work: Path) -> None:
    mnt = work / "small-disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)]).returncode:
        print("disk full: skipped (cannot mount a tmpfs: needs root)")
        return
    sc = spawn(mnt / "data", log_dir=work / "logs")
    try:
        def store_state() -> str:
            return str(json.loads(_get(sc, "/v1/ready")[1])["components"]["store"]["state"])

        while store_state() != "ok":
            time.sleep(0.05)
        with open(mnt / "filler", "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        filled = time.perf_counter()
        while store_state() != "degraded":
            time.sleep(0.01)
        degraded = time.perf_counter() - filled
        (mnt / "filler").unlink()
        freed = time.perf_counter()
        while store_state() != "ok":
            time.sleep(0.01)
        print(f"disk full: store degraded {degraded * 1000:.0f} ms after the disk filled (no write needed);"
              f" ok again {(time.perf_counter() - freed) * 1000:.0f} ms after space returned")
    finally:
        stop_all([sc])
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--lists", type=int, default=20)
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # room for the idle connections here
    print(f"load: {os.getloadavg()}; file limit here {hard}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_idle(work, args.idle)
        bench_warmup(work)
        bench_lists(work, args.tasks, args.lists)
        bench_disk_full(work)


if __name__ == "__main__":
    main()
