"""``sidecar ingest PATH... [--data-dir DIR] [--llm]``: one-shot extraction in this terminal.

The main job without a desktop app: the same pipeline as ``sidecar serve`` (store, queue,
readers, extractors, provenance), run in-process with no HTTP server. Each ``PATH`` (a folder)
gets a watch — an existing watch on it is reused; a new one is created *disabled*, so a later
``sidecar serve`` lists it without starting to watch it — and one ``manual`` run. Files that
failed before are tried again; unchanged files are not read again and nothing is extracted
twice.

Output: a progress bar on stderr (rich); on stdout a table of the items extracted from the
folders (type, title, due/date, source file, ``new`` when created by this invocation), then the
files per status, and the reason of each file that failed. Exit codes: 0 done (even when some
files failed: they are listed), 2 usage error (a PATH is not a folder), 3 another sidecar holds
the data dir, 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from sidecar.lifecycle import ExitCode


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``ingest`` on the ``sidecar`` command line."""
    p = sub.add_parser("ingest", help="extract tasks, milestones and notes from folders, once, in this terminal")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a folder to extract from")
    p.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
    p.add_argument("--llm", action="store_true",
                   help="extract with the configured model (falls back to the offline rules when unavailable)")
    p.set_defaults(func=_cmd_ingest)


def _cmd_ingest(args: argparse.Namespace) -> int:
    folders: list[Path] = []
    for raw in args.paths:
        path = raw.expanduser().absolute()
        if not path.is_dir():
            print(f"sidecar ingest: {raw} is not a folder", file=sys.stderr)
            return int(ExitCode.USAGE)
        folders.append(path)
    from sidecar.logs import setup_logging

    setup_logging("warning")
    try:
        return asyncio.run(ingest(folders, data_dir=args.data_dir, use_llm=args.llm, out=sys.stdout, err=sys.stderr))
    except KeyboardInterrupt:
        return 130


async def ingest(folders: list[Path], *, data_dir: Path | None, use_llm: bool, out: TextIO, err: TextIO) -> int:
    """Run one manual ingest of ``folders`` into the store in ``data_dir`` and print the result.

    Returns the exit code (see the module docstring).
    """
    from sidecar.lifecycle import DataDirBusy, claim_data_dir
    from sidecar.settings import default_data_dir

    data = (data_dir or default_data_dir()).expanduser().absolute()
    try:
        with claim_data_dir(data):
            return await _ingest_locked(folders, data, use_llm, out, err)
    except DataDirBusy:
        err.write(f"sidecar ingest: another sidecar is using {data}; stop it, or add the folder as a watch over its API\n")
        return int(ExitCode.ALREADY_RUNNING)


async def _ingest_locked(folders: list[Path], data: Path, use_llm: bool, out: TextIO, err: TextIO) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sidecar.ingest.pipeline import Pipeline
    from sidecar.secrets import SecretStore
    from sidecar.store.db import Store
    from sidecar.store.repository import Repository

    store = await Store.open(data / "sidecar.db")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(file=err), transient=False)
    bars: dict[str, Any] = {}
    names: dict[str, str] = {}

    def publish(event: str, payload: dict[str, Any]) -> None:
        if event != "ingest.progress":
            return
        bar = bars.get(payload["runId"])
        if bar is None:
            bar = bars[payload["runId"]] = progress.add_task(names.get(payload["watchId"], "files"), total=None)
        progress.update(bar, total=max(payload["total"], 1), completed=payload["done"])

    secrets = SecretStore(dict(os.environ))

    async def load_model() -> tuple[Any | None, str | None]:
        from sidecar.ingest.llm import load_model as load

        return await load(store, secrets.get)

    try:
        pipeline = Pipeline(store, Repository(store), publish=publish, load_model=load_model)
        from sidecar.search.files import FileTextSink

        pipeline.document_sinks.append(FileTextSink())  # the next `serve` indexes the files' text
        await pipeline.recover()
        watches = []
        for folder in folders:
            watch, _ = await pipeline.watches.ensure_for_path(folder, enabled=False)
            if use_llm and not watch.use_llm:
                watch = pipeline.override_watch(watch.model_copy(update={"use_llm": True}))
            names[watch.id] = f"{watch.name}"
            watches.append(watch)
        dispatcher = asyncio.create_task(pipeline.serve_queue())
        try:
            with progress:
                opened = [await pipeline.begin_run(w, "manual") for w in watches]
                await asyncio.gather(*(pipeline.continue_run(ar, w, retry_errors=True) for ar, w in zip(opened, watches, strict=True)))
                runs = [await pipeline.wait_run(ar.run.id) for ar in opened]
        finally:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
            await pipeline.release()
        await _report(store, pipeline, folders, {r.id for r in runs}, runs, out)
        return 0
    finally:
        await store.close()


async def _report(store: Any, pipeline: Any, folders: list[Path], run_ids: set[str], runs: list[Any],
                  out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    from sidecar.ingest.queue import FileQuery, under

    conds, params = [], []
    for folder in folders:
        sql, ps = under("p.source_path", str(folder))
        conds.append(sql)
        params += ps
    where = "(" + " OR ".join(conds) + ")"
    queries = {
        "task": f"SELECT p.entity_id, t.title, t.due_date AS at, p.source_path, p.run_id FROM ingest_provenance p"
                f" JOIN tasks t ON t.id = p.entity_id WHERE p.entity = 'tasks' AND {where}",
        "milestone": f"SELECT p.entity_id, t.title, t.date AS at, p.source_path, p.run_id FROM ingest_provenance p"
                     f" JOIN timelines t ON t.id = p.entity_id WHERE p.entity = 'timelines' AND {where}",
        "note": f"SELECT p.entity_id, n.title, NULL AS at, p.source_path, p.run_id FROM ingest_provenance p"
                f" JOIN notes n ON n.id = p.entity_id WHERE p.entity = 'notes' AND {where}",
    }
    rows: list[tuple[str, str, int | None, str, bool]] = []
    seen: set[str] = set()
    for kind, sql in queries.items():
        for r in await store.fetchall(sql + " ORDER BY p.source_path, p.span_start", params):
            if r[0] in seen:
                continue
            seen.add(r[0])
            rows.append((kind, r[1], r[2], r[3], r[4] in run_ids))
    rows.sort(key=lambda x: (x[3], x[0]))
    console = Console(file=out, width=None if out.isatty() else 160)
    table = Table(title=f"Extracted from {', '.join(str(f) for f in folders)}", title_justify="left")
    table.add_column("type", no_wrap=True)
    table.add_column("title", overflow="fold", ratio=1)
    table.add_column("due / date", no_wrap=True)
    table.add_column("source file", overflow="fold")
    table.add_column("new", no_wrap=True)
    for kind, title, at, src, new in rows:
        table.add_row(kind, title, _when(at), _short(src, folders), "new" if new else "")
    console.print(table)
    counts = await pipeline.queue.counts(paths_under=[str(f) for f in folders])
    created = sum(r.items_created for r in runs)
    out.write(f"{len(rows)} items ({created} new) from {sum(counts.values())} files\n")
    out.write("files: " + ", ".join(f"{s} {n}" for s, n in counts.items() if n or s in ("done", "error")) + "\n")
    for status in ("error", "skipped"):
        failed, _ = await pipeline.queue.list(FileQuery(status=status, limit=10_000))
        for f in failed:
            if any(_inside(f.path, d) for d in folders):
                out.write(f"  {status}: {_short(f.path, folders)}: {f.reason}\n")
    out.flush()


def _when(ms: int | None) -> str:
    """``2026-03-06`` for a midnight (a date), else ``2026-03-06 15:00`` — in the user's zone."""
    from sidecar import clock

    if ms is None:
        return ""
    iso = clock.ms_to_iso(ms)[:16]
    return iso[:10] if iso.endswith("T00:00") else iso.replace("T", " ")


def _inside(path: str, folder: Path) -> bool:
    root = str(folder).rstrip(os.sep) + os.sep
    return path.startswith(root)


def _short(path: str, folders: list[Path]) -> str:
    for folder in folders:
        if _inside(path, folder):
            return os.path.relpath(path, folder.parent)
    return path
