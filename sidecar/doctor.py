"""``sidecar doctor``: one screen telling a user or a support engineer what works.

Read-only towards the user's data (the database is opened read-only, so it also works while
the app's sidecar is running). Each check prints ``ok``, ``warn`` or ``FAIL`` with a detail;
the exit code is 1 when an essential check (data dir, database) fails, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sidecar import PROTOCOL, __version__

Level = Literal["ok", "warn", "FAIL"]


@dataclass
class Check:
    name: str
    level: Level
    detail: str
    essential: bool = False


def _frozen() -> str:
    return "PyInstaller bundle" if getattr(sys, "frozen", False) else "Python package"


def check_runtime() -> Check:
    return Check("runtime", "ok", f"sidecar {__version__} ({PROTOCOL}), {_frozen()}, Python {platform.python_version()} "
                                  f"on {platform.system()} {platform.machine()}")


def check_data_dir(data_dir: Path) -> Check:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".doctor-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check("data dir", "FAIL", f"{data_dir} is not writable: {exc.strerror or exc}", essential=True)
    free_mb = shutil.disk_usage(data_dir).free / 1e6
    level: Level = "ok" if free_mb > 500 else "warn"
    return Check("data dir", level, f"{data_dir} (writable, {free_mb:,.0f} MB free)", essential=True)


def _ro(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)


def check_database(db_path: Path) -> Check:
    if not db_path.exists():
        return Check("database", "warn", f"{db_path.name} not created yet (first `sidecar serve` creates it); "
                                         f"SQLite {sqlite3.sqlite_version}", essential=True)
    try:
        with _ro(db_path) as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            integrity = db.execute("PRAGMA quick_check").fetchone()[0]
            migrations = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
            counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("tasks", "projects", "notes")}
            device = db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
    except sqlite3.Error as exc:
        return Check("database", "FAIL", f"{db_path}: {exc}", essential=True)
    level: Level = "ok" if integrity == "ok" and mode == "wal" else "FAIL"
    return Check("database", level, f"SQLite {sqlite3.sqlite_version}, journal {mode}, integrity {integrity}, "
                                    f"{len(migrations)} migrations, device {device[0] if device else '?'}, "
                                    + ", ".join(f"{n} {t}" for t, n in counts.items()), essential=True)


def check_vectors() -> Check:
    try:
        import lancedb
    except Exception as exc:  # a broken wheel must show here, not crash the doctor
        return Check("vectors", "warn", f"LanceDB not importable: {exc}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = lancedb.connect(tmp)
            db.create_table("probe", data=[{"id": 1, "vector": [0.0, 1.0]}])
            n = db.open_table("probe").count_rows()
        return Check("vectors", "ok", f"LanceDB {getattr(lancedb, '__version__', '?')} opens and writes a table "
                                      f"({n} row)")
    except Exception as exc:
        return Check("vectors", "warn", f"LanceDB {getattr(lancedb, '__version__', '?')} failed a probe table: {exc}")


def check_index(data_dir: Path) -> Check:
    """The search index: its table, rows, fragments, rows not yet in the full-text index, the
    embedder that made its vectors and how far it is behind the change log (read-only)."""
    db_path, lance_dir = data_dir / "sidecar.db", data_dir / "lancedb"
    if not db_path.exists() or not lance_dir.exists():
        return Check("index", "ok", "no search index yet (the first `sidecar serve` builds it)")
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT table_name FROM search_cursors WHERE name = 'active'").fetchone()
        if row is None or not row[0]:
            return Check("index", "ok", "no search index yet")
        name = row[0]
        cur = con.execute("SELECT seq FROM search_cursors WHERE name = ?", (name,)).fetchone()
        last = con.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0]
    except sqlite3.Error as exc:
        return Check("index", "warn", f"cannot read the index state: {exc}")
    finally:
        con.close()
    import lancedb

    table: Any = lancedb.connect(str(lance_dir)).open_table(name)
    stats = table.stats()
    idx = table.index_stats("text_idx") if any(i.index_type == "FTS" for i in table.list_indices()) else None
    unindexed = idx.num_unindexed_rows if idx is not None else stats["num_rows"]
    first = table.search().select(["embedder", "dim"]).limit(1).to_list()
    embedder = f"{first[0]['embedder']} ({first[0]['dim']}-d)" if first and first[0]["embedder"] else "none (keyword only)"
    behind = "building (not caught up yet)" if cur is None else f"{max(0, last - cur[0])} change(s) behind"
    fragments = stats["fragment_stats"]["num_fragments"]
    level: Level = "warn" if cur is None or fragments > 64 else "ok"
    return Check("index", level, f"{name}: {stats['num_rows']} chunks, {fragments} fragments, {unindexed} not in the "
                                 f"full-text index, embedder {embedder}, {behind}, "
                                 f"{sum(p.stat().st_size for p in lance_dir.rglob('*') if p.is_file()) / 1e6:.1f} MB")


def check_keyring() -> Check:
    from sidecar.secrets import SecretStore

    store = SecretStore({})
    usable, detail = store.status()
    if not usable:
        return Check("secrets", "warn", f"{detail}; API keys can still come from SIDECAR_SECRET_<NAME>")
    name = f"doctor-probe-{uuid.uuid4().hex[:8]}"

    async def round_trip() -> bool:
        await store.set(name, "probe-value-123")
        got = await store.get(name)
        await store.delete(name)
        return got == "probe-value-123"

    try:
        ok = asyncio.run(round_trip())
    except Exception as exc:
        return Check("secrets", "warn", f"{detail}, but a test secret did not round-trip: {exc}")
    return Check("secrets", "ok" if ok else "warn", f"{detail}; a test secret " + ("round-trips" if ok else "did not read back"))


def _settings(db_path: Path) -> dict[str, object] | None:
    if not db_path.exists():
        return None
    try:
        with _ro(db_path) as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'model'").fetchone()
    except sqlite3.Error:
        return None
    return json.loads(row[0]) if row else None


def check_model(db_path: Path, probe: bool) -> Check:
    raw = _settings(db_path)
    if not raw:
        return Check("model", "warn", "no model configured (PUT /v1/settings/model, or `sidecar chat --model … --api-base …`)")
    from sidecar.agent.settings import ModelSettings

    settings = ModelSettings.model_validate(raw)
    where = f" at {settings.api_base}" if settings.api_base else ""
    if not probe:
        return Check("model", "ok", f"{settings.model}{where} (not contacted: --no-model-probe)")

    async def ask() -> float:
        from agentscope.message import UserMsg

        from sidecar.agent.model import LiteLLMChatModel
        from sidecar.secrets import SecretStore

        key = await SecretStore(dict(os.environ)).get(settings.api_key_secret) if settings.api_key_secret else None
        quick = settings.model_copy(update={"request_timeout_s": 10.0, "stall_timeout_s": 10.0, "max_retries": 0})
        started = time.perf_counter()
        await LiteLLMChatModel(quick, key).complete([UserMsg("user", "Reply with: ok")])
        return time.perf_counter() - started

    try:
        seconds = asyncio.run(ask())
    except Exception as exc:
        code = getattr(exc, "code", type(exc).__name__)
        return Check("model", "warn", f"{settings.model}{where} does not answer: [{code}] {getattr(exc, 'message', exc)}")
    return Check("model", "ok", f"{settings.model}{where} answers ({seconds:.1f} s)")


def check_watches(db_path: Path) -> Check:
    if not db_path.exists():
        return Check("watches", "ok", "none yet")
    try:
        with _ro(db_path) as db:
            watches = db.execute("SELECT name, paths, enabled, last_run_at FROM ingest_watches").fetchall()
            statuses = dict(db.execute("SELECT status, count(*) FROM ingest_files GROUP BY status").fetchall())
    except sqlite3.Error as exc:
        return Check("watches", "warn", f"cannot read watches: {exc}")
    if not watches:
        return Check("watches", "ok", "none")
    missing = [p for _, paths, _, _ in watches for p in json.loads(paths) if not Path(p).is_dir()]
    parts = [f"{len(watches)} watch(es), {sum(1 for w in watches if w[2])} enabled",
             "files " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) if statuses else "no files yet"]
    if missing:
        parts.append("missing folders: " + ", ".join(missing))
    return Check("watches", "warn" if missing or statuses.get("error") else "ok", "; ".join(parts))


def check_sync(db_path: Path) -> Check:
    from sidecar.sync.cli import status_from_db

    if not db_path.exists():
        return Check("sync", "ok", "disabled (nothing leaves the device)")
    try:
        s = status_from_db(db_path)
    except sqlite3.Error as exc:
        return Check("sync", "warn", f"sync state unreadable: {exc}")
    if not s["enabled"]:
        return Check("sync", "ok", "disabled (nothing leaves the device)")
    bad = sum(q["count"] for q in s["quarantined"])
    return Check("sync", "warn" if bad else "ok",
                 f"enabled, {s['apiBase']}; {s['pendingEvents']} event(s) to push, {s['devicesSeen']} other device(s)"
                 + (f"; {bad} record(s) quarantined or held" if bad else ""))


def run_checks(data_dir: Path, *, probe_model: bool = True) -> list[Check]:
    """All checks, in display order."""
    db_path = data_dir / "sidecar.db"
    steps: list[Callable[[], Check]] = [
        check_runtime, lambda: check_data_dir(data_dir), lambda: check_database(db_path), check_vectors,
        lambda: check_index(data_dir), check_keyring, lambda: check_model(db_path, probe_model),
        lambda: check_watches(db_path), lambda: check_sync(db_path),
    ]
    out = []
    for step in steps:
        try:
            out.append(step())
        except Exception as exc:  # a check that crashes is itself a finding
            out.append(Check(getattr(step, "__name__", "check"), "FAIL", f"check crashed: {type(exc).__name__}: {exc}"))
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``doctor`` on the command line."""
    p = sub.add_parser("doctor", help="check what works: data dir, database, keyring, model, watches")
    p.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
    p.add_argument("--no-model-probe", action="store_true", help="do not send a test request to the model")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from sidecar.logs import setup_logging
    from sidecar.settings import default_data_dir

    setup_logging("error")
    data_dir = (args.data_dir or default_data_dir()).expanduser().absolute()
    checks = run_checks(data_dir, probe_model=not args.no_model_probe)
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        for c in checks:
            print(f"{c.level:>4}  {c.name:<9} {c.detail}")
    broken = [c for c in checks if c.essential and c.level == "FAIL"]
    if not args.json:
        print("\nessential checks failed: " + ", ".join(c.name for c in broken) if broken else "\nessential checks passed")
    return 1 if broken else 0
