"""Folder-ingestion benchmark (issue: folder watching and extraction). Prints figures; not a test.

    python -m tests.bench.bench_ingest [--quick] [--only cold|latency|memory]

1. Cold ingest: 1,000 mixed files (about 70 % Markdown/text, 20 % email, 10 % calendar/PDF)
   through the pipeline in-process on a fresh database with the ``rules`` extractor — files/s
   and items/s (target ≥ 100 files/s) — and the same corpus through ``sidecar ingest`` as a
   process (wall time including start-up).
2. Watcher latency: against a spawned ``sidecar serve --watch DIR``, a file is saved and the
   time until its item arrives as a ``change`` event on ``/v1/events`` is measured; p50 and p99
   over 200 saves (target p50 ≤ 1 s). The default debounce (200 ms) and settle time (400 ms) are
   part of it by design.
3. Memory: RSS of the spawned ``serve`` process while a folder of 10,000 files is moved into the
   watched folder and ingested; growth = peak RSS − RSS after a warm-up ingest (target ≤ 50 MB).
   Meanwhile the latency of ``GET /v1/tasks?limit=50`` shows whether the API stays responsive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.ingest.conftest import pdf_with_text

REPO = Path(__file__).resolve().parents[2]
WORDS = ("budget review launch vendor contract design draft meeting invoice schedule report "
         "customer roadmap hiring office travel website release backlog sprint").split()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def phrase(rng: random.Random, n: int = 5) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def markdown(i: int, rng: random.Random) -> str:
    tasks = "".join(f"- [ ] {phrase(rng).capitalize()} item {i}-{k}\n" for k in range(rng.randint(1, 4)))
    prose = "\n".join(f"{phrase(rng, 12).capitalize()}." for _ in range(rng.randint(3, 15)))
    return f"# Notes {i}\n\n{prose}\n\n## Action items\n\n{tasks}\nTODO: follow up on {phrase(rng, 3)} {i}\n"


def text(i: int, rng: random.Random) -> str:
    body = "\n".join(f"{phrase(rng, 10)}." for _ in range(rng.randint(3, 10)))
    return f"Standup {i}\n\n{body}\nAction: {phrase(rng, 4)} number {i}\n"


def email(i: int, rng: random.Random) -> str:
    return (f"From: Person {i} <p{i}@example.com>\nTo: team@example.com\nSubject: {phrase(rng, 3)} {i}\n"
            f"Date: Mon, 02 Mar 2026 09:{i % 60:02d}:00 +0000\nMessage-ID: <m{i}@example.com>\n"
            "Content-Type: text/plain; charset=utf-8\n\n"
            f"Hi all,\n\n{phrase(rng, 15)}.\n\nAction items:\n- {phrase(rng, 4)} for mail {i}\n"
            f"- {phrase(rng, 4)} second for mail {i}\n\nThanks\n")


def calendar(i: int, rng: random.Random) -> str:
    return ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//bench//EN\n"
            f"BEGIN:VEVENT\nUID:ev-{i}@bench\nDTSTAMP:20260301T090000Z\nDTSTART:202604{1 + i % 28:02d}T100000Z\n"
            f"SUMMARY:{phrase(rng, 3).capitalize()} event {i}\nEND:VEVENT\n"
            f"BEGIN:VTODO\nUID:td-{i}@bench\nDTSTAMP:20260301T090000Z\nDUE:202605{1 + i % 28:02d}\n"
            f"SUMMARY:{phrase(rng, 3).capitalize()} todo {i}\nEND:VTODO\nEND:VCALENDAR\n")


def make_corpus(folder: Path, n: int, seed: int = 7) -> dict[str, int]:
    """``n`` files: 70 % Markdown/text, 20 % email, 5 % iCalendar, 5 % PDF, in nested folders."""
    rng = random.Random(seed)
    kinds: dict[str, int] = {}
    for i in range(n):
        sub = folder / f"d{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        r = i % 20
        if r < 10:
            path, data = sub / f"n{i}.md", markdown(i, rng).encode()
        elif r < 14:
            path, data = sub / f"t{i}.txt", text(i, rng).encode()
        elif r < 18:
            path, data = sub / f"m{i}.eml", email(i, rng).encode()
        elif r == 18:
            path, data = sub / f"c{i}.ics", calendar(i, rng).encode()
        else:
            path, data = sub / f"p{i}.pdf", pdf_with_text(f"Minutes {i}", f"Action: {phrase(rng, 4)} pdf {i}",
                                                          f"TODO: {phrase(rng, 3)} pdf {i}")
        path.write_bytes(data)
        kinds[path.suffix] = kinds.get(path.suffix, 0) + 1
    old = time.time() - 3600  # "cold": nothing is still being written
    for p in folder.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    return kinds


async def bench_cold(root: Path) -> None:
    from sidecar.ingest.pipeline import Pipeline
    from sidecar.ingest.readers import read_document  # noqa: F401  (import cost is not ingest time)
    from sidecar.ingest.rules import extract  # noqa: F401
    from sidecar.store.db import Store
    from sidecar.store.repository import Repository

    corpus = root / "corpus"
    kinds = make_corpus(corpus, 1000)
    print(f"corpus: {sum(kinds.values())} files {dict(sorted(kinds.items()))}")
    store = await Store.open(root / "cold" / "sidecar.db")
    pipeline = Pipeline(store, Repository(store))
    watch, _ = await pipeline.watches.ensure_for_path(corpus, enabled=False)
    dispatcher = asyncio.create_task(pipeline.serve_queue())
    t0, cpu0 = time.perf_counter(), time.process_time()
    run = await pipeline.run_watch(watch, "manual")
    run = await pipeline.wait_run(run.id)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    dispatcher.cancel()
    await asyncio.gather(dispatcher, return_exceptions=True)
    counts = await pipeline.queue.counts()
    await store.close()
    print(f"cold ingest (in-process, rules, {pipeline.options.workers} workers): {run.items_processed} files, "
          f"{run.items_created} items in {elapsed:.2f} s → {run.items_processed / elapsed:.0f} files/s, "
          f"{run.items_created / elapsed:.0f} items/s; files {counts}")
    # CPU time of the process (all threads) per file: less distorted than wall time by other load
    print(f"cold ingest CPU: {cpu:.2f} s process time → {cpu / max(1, run.items_processed) * 1000:.2f} ms/file; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "sidecar", "ingest", str(corpus), "--data-dir", str(root / "cli")],
        capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    summary = [line for line in proc.stdout.splitlines() if "items (" in line or line.startswith("files:")]
    print(f"cold ingest (sidecar ingest process, start-up included): {wall:.2f} s wall → "
          f"{1000 / wall:.0f} files/s; {' / '.join(summary)}")


class Serve:
    """A spawned ``sidecar serve --watch DIR`` (stdin kept open; closed to stop it)."""

    def __init__(self, data: Path, watch: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve", "--data-dir", str(data), "--watch", str(watch),
             "--log-level", "warning"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=REPO, env=env)
        assert self.proc.stdout is not None
        hs = json.loads(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{hs['port']}"
        self.headers = {"Authorization": f"Bearer {hs['token']}"}
        self.ps = psutil.Process(self.proc.pid)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / (1 << 20)

    async def get(self, s: aiohttp.ClientSession, path: str) -> Any:
        async with s.get(self.base + path, headers=self.headers) as r:
            return await r.json()

    async def idle(self, s: aiohttp.ClientSession) -> bool:
        counts = (await self.get(s, "/v1/ingest/files?limit=1"))["counts"]
        watches = (await self.get(s, "/v1/watches"))["items"]
        running = 0
        for w in watches:
            running += (await self.get(s, f"/v1/watches/{w['id']}/runs?status=running&limit=1"))["total"]
        return counts["pending"] + counts["processing"] + running == 0

    async def wait_idle(self, s: aiohttp.ClientSession, timeout: float, sample: list[float] | None = None,
                        api: list[float] | None = None) -> None:
        deadline = time.monotonic() + timeout
        calm = 0
        while calm < 3:
            if sample is not None:
                sample.append(self.rss_mb())
            if api is not None:  # how the shell's list view fares meanwhile
                t0 = time.perf_counter()
                await self.get(s, "/v1/tasks?limit=50&isAiSuggested=true")
                api.append(time.perf_counter() - t0)
            calm = calm + 1 if await self.idle(s) else 0
            if time.monotonic() > deadline:
                raise TimeoutError("not idle")
            await asyncio.sleep(0.2)

    async def wait_watcher(self, s: aiohttp.ClientSession) -> None:
        for _ in range(600):
            if (await self.get(s, "/v1/ready"))["components"]["watcher"]["state"] != "starting":
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("watcher did not start")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def bench_latency(root: Path, saves: int) -> None:
    folder = root / "latency"
    folder.mkdir()
    serve = Serve(root / "latency-data", folder)
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as s:
            await serve.wait_watcher(s)
            async with s.get(serve.base + "/v1/events", headers=serve.headers,
                             timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as resp:
                waiting: dict[str, asyncio.Future[float]] = {}

                async def read() -> None:
                    event = ""
                    async for raw in resp.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:") and event == "change":
                            data = json.loads(line[5:])
                            title = data["fields"].get("title")
                            fut = waiting.get(title) if data["entity"] == "tasks" else None
                            if fut is not None and not fut.done():
                                fut.set_result(time.perf_counter())

                reader = asyncio.create_task(read())
                for i in range(saves):
                    title = f"Latency probe {i}"
                    fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                    waiting[title] = fut
                    path = folder / f"probe-{i}.md"
                    t0 = time.perf_counter()
                    path.write_text(f"# Probe\n\n- [ ] {title}\n")
                    arrived = await asyncio.wait_for(fut, 10)
                    latencies.append(arrived - t0)
                reader.cancel()
    finally:
        serve.stop()
    print(f"watcher latency (file saved → item on /v1/events, {saves} saves): "
          f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms, mean {statistics.mean(latencies) * 1000:.0f} ms")


async def bench_memory(root: Path, n: int) -> None:
    watched = root / "mem-watched"
    make_corpus(watched / "warm-up", 50, seed=1)
    staging = root / "mem-staging"
    make_corpus(staging, n, seed=2)
    serve = Serve(root / "mem-data", watched)
    try:
        async with aiohttp.ClientSession() as s:
            await serve.wait_watcher(s)
            await serve.wait_idle(s, 120)
            await asyncio.sleep(1)
            baseline = serve.rss_mb()
            samples: list[float] = []
            api: list[float] = []
            t0 = time.perf_counter()
            os.rename(staging, watched / "batch")  # one folder move: the watcher scans it
            await serve.wait_idle(s, 900, samples, api)
            elapsed = time.perf_counter() - t0
            end = serve.rss_mb()
            counts = (await serve.get(s, "/v1/ingest/files?limit=1"))["counts"]
            tasks = (await serve.get(s, "/v1/tasks?limit=1"))["total"]
    finally:
        serve.stop()
    peak = max([*samples, end])
    print(f"memory ({n} files moved into a watched folder of a running serve): baseline {baseline:.0f} MB "
          f"(after a 50-file warm-up), peak {peak:.0f} MB, end {end:.0f} MB → growth {peak - baseline:.0f} MB "
          f"(peak), {end - baseline:.0f} MB (end); {elapsed:.1f} s, {n / elapsed:.0f} files/s; files {counts}; "
          f"{tasks} tasks")
    print(f"API meanwhile (GET /v1/tasks?limit=50, {len(api)} calls): p50 {pct(api, 50) * 1000:.0f} ms, "
          f"p99 {pct(api, 99) * 1000:.0f} ms, max {max(api) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller latency and memory runs")
    ap.add_argument("--only", choices=("cold", "latency", "memory"), help="run one part")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        if args.only in (None, "cold"):
            asyncio.run(bench_cold(root))
        if args.only in (None, "latency"):
            asyncio.run(bench_latency(root, 50 if args.quick else 200))
        if args.only in (None, "memory"):
            asyncio.run(bench_memory(root, 2000 if args.quick else 10_000))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
