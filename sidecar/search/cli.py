"""``sidecar search "…"`` and ``sidecar reindex``: the index from the terminal.

Both claim the data dir (like ``serve``; exit 3 while a sidecar serves it), open the index,
catch up with the change log, then ``search`` prints the results (``--json`` for the API's
JSON) and ``reindex`` rebuilds the index from scratch into a fresh table and swaps it in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from sidecar.lifecycle import ExitCode


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``search`` and ``reindex``."""
    s = sub.add_parser("search", help="search notes, tasks, milestones, projects, comments and watched files")
    s.add_argument("query")
    s.add_argument("--kind", choices=["note", "task", "timeline", "project", "comment", "file"])
    s.add_argument("--project-id")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--mode", choices=["hybrid", "keyword", "vector"])
    s.add_argument("--json", action="store_true", help="print the API's JSON answer")
    s.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
    s.set_defaults(func=_cmd_search)
    r = sub.add_parser("reindex", help="rebuild the search index from scratch")
    r.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
    r.set_defaults(func=_cmd_reindex)


def _cmd_search(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args, sys.stdout, sys.stderr))


def _cmd_reindex(args: argparse.Namespace) -> int:
    args.query = None
    return asyncio.run(_run(args, sys.stdout, sys.stderr))


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sidecar.lifecycle import DataDirBusy, claim_data_dir
    from sidecar.settings import default_data_dir

    data = (args.data_dir or default_data_dir()).expanduser().absolute()
    name = "search" if args.query is not None else "reindex"
    try:
        with claim_data_dir(data):
            return await _locked(args, data, out, err)
    except DataDirBusy:
        err.write(f"sidecar {name}: another sidecar is using {data}; use its GET /v1/search instead\n")
        return int(ExitCode.ALREADY_RUNNING)


async def _locked(args: argparse.Namespace, data: Path, out: TextIO, err: TextIO) -> int:
    from aiohttp import web

    from sidecar.appstate import NOTIFICATIONS, READINESS, SECRETS, SETTINGS, STORE
    from sidecar.notify import Notifications
    from sidecar.readiness import Readiness
    from sidecar.search.service import SearchService
    from sidecar.secrets import SecretStore
    from sidecar.settings import Settings
    from sidecar.store.db import Store

    settings = Settings(data_dir=data, token="cli", env=dict(os.environ))
    app = web.Application()
    app[SETTINGS] = settings
    app[READINESS] = Readiness()
    app[NOTIFICATIONS] = Notifications()
    app[SECRETS] = SecretStore(settings.env)
    store = await Store.open(settings.db_path)
    app[STORE] = store
    service = SearchService(app)
    try:
        await service.start()
        assert service.indexer is not None
        if args.query is None:
            await service.reindex()
            await service.indexer.idle(timeout=3600)
            t = service.indexer.active
            assert t is not None
            stats = t.table.stats()
            out.write(f"reindexed: {stats.rows} chunks in {t.name} ({service.app[READINESS].get('vectors').detail})\n")
            return 0
        await service.indexer.idle(timeout=3600)
        items, mode = await service.search(args.query, kind=args.kind, project_id=args.project_id,
                                           limit=args.limit, mode=args.mode)
        if args.json:
            out.write(json.dumps({"items": items, "mode": mode}, ensure_ascii=False) + "\n")
            return 0
        if not items:
            out.write(f"no results ({mode})\n")
        for h in items:
            where = f"  {h['source']['path']}:{h['source']['start']}-{h['source']['end']}" if h["source"] else ""
            out.write(f"{h['kind']:8s} {h['title'][:60]}  [{h['entityId']}]{where}\n")
            out.write(f"         {' '.join(h['snippet'].split())[:150]}\n")
        err.write(f"{len(items)} result(s), {mode} search\n")
        return 0
    finally:
        await service.stop()
        await store.close()
