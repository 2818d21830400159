"""``sidecar sync status|now`` and ``sidecar backup verify`` on the command line.

``sync status`` reads the data dir read-only, so it works while a sidecar is serving it.
``sync now`` runs one round itself and therefore needs the data dir free (a running sidecar
does its own syncing: ``POST /v1/sync/now``). ``backup verify`` decrypts and integrity-checks
a backup file (or the newest in the cloud) without replacing anything; the key comes from
``SIDECAR_SECRET_SYNC_KEY``, the OS keyring, or ``--recovery-key-file``.
Exit codes: 0 ok, 1 failed (sync error, invalid backup), 3 data dir in use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``sync`` and ``backup``."""
    p = sub.add_parser("sync", help="cloud sync: status, or one round now")
    actions = p.add_subparsers(dest="action", required=True)
    for name, fn, text in (("status", _cmd_status, "what sync has done (works while serving)"),
                           ("now", _cmd_now, "push and pull once (the data dir must be free)")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
        a.add_argument("--json", action="store_true", help="print JSON")
        a.set_defaults(func=fn)
    b = sub.add_parser("backup", help="encrypted backups")
    bactions = b.add_subparsers(dest="action", required=True)
    v = bactions.add_parser("verify", help="decrypt and check a backup without replacing anything")
    v.add_argument("file", nargs="?", type=Path, help="a .scbk backup file (default: the newest in the cloud)")
    v.add_argument("--data-dir", type=Path, help="data directory (for the cloud settings)")
    v.add_argument("--recovery-key-file", type=Path, help="a file holding the 24 recovery words")
    v.set_defaults(func=_cmd_verify)


def _data_dir(args: argparse.Namespace) -> Path:
    from sidecar.settings import default_data_dir

    return Path(args.data_dir or default_data_dir()).expanduser().absolute()


def status_from_db(db_path: Path) -> dict[str, Any]:
    """The sync figures of a data dir, read-only."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT value FROM settings WHERE key = 'sync'").fetchone()
        settings = json.loads(row[0]) if row else {"enabled": False}
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'sync_%'").fetchall())
        pending = db.execute("SELECT count(*) FROM change_log WHERE origin = 'local' AND synced_at IS NULL").fetchone()[0]
        devices = db.execute("SELECT count(DISTINCT device_id) FROM sync_batches").fetchone()[0]
        bad = db.execute("SELECT status, reason, count(*) FROM sync_records WHERE status IN ('quarantined', 'held')"
                         " GROUP BY status, reason").fetchall()
    finally:
        db.close()
    return {"enabled": bool(settings.get("enabled")), "apiBase": settings.get("apiBase"), "pendingEvents": pending,
            "lastPushAt": int(meta["sync_last_push"]) if "sync_last_push" in meta else None,
            "lastPullAt": int(meta["sync_last_pull"]) if "sync_last_pull" in meta else None,
            "devicesSeen": devices, "quarantined": [{"state": s, "reason": r, "count": n} for s, r, n in bad]}


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        print(f"{key:>14}  {value}")


def _cmd_status(args: argparse.Namespace) -> int:
    db_path = _data_dir(args) / "sidecar.db"
    if not db_path.exists():
        print(f"sidecar sync: no database in {db_path.parent}", file=sys.stderr)
        return 1
    try:
        _print(status_from_db(db_path), args.json)
    except sqlite3.Error as exc:
        print(f"sidecar sync: cannot read {db_path}: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_now(args: argparse.Namespace) -> int:
    from sidecar.lifecycle import DataDirBusy, ExitCode, claim_data_dir

    data = _data_dir(args)
    try:
        with claim_data_dir(data):
            return asyncio.run(_now(data, args.json))
    except DataDirBusy:
        print(f"sidecar sync: a sidecar is serving {data}; it syncs by itself (POST /v1/sync/now)", file=sys.stderr)
        return int(ExitCode.ALREADY_RUNNING)


async def _now(data: Path, as_json: bool) -> int:
    from sidecar.errors import SidecarError
    from sidecar.notify import Notifications
    from sidecar.readiness import Readiness
    from sidecar.secrets import SecretStore
    from sidecar.store.db import Store
    from sidecar.sync.service import SyncService

    store = await Store.open(data / "sidecar.db")
    service = SyncService(store, SecretStore(dict(os.environ)), Notifications(), Readiness())
    try:
        await service.load()
        await service.start(loop=False)
        status = await service.sync_now()
    except SidecarError as exc:
        print(f"sidecar sync: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await service.stop()
        await store.close()
    _print(status.model_dump(mode="json", by_alias=True), as_json)
    return 0 if status.state == "online" else 1


def _cmd_verify(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args))


async def _verify(args: argparse.Namespace) -> int:
    from sidecar.errors import SidecarError
    from sidecar.secrets import SecretStore
    from sidecar.sync import backup
    from sidecar.sync.keys import Keychain, load_keychain

    secrets = SecretStore(dict(os.environ))
    try:
        if args.recovery_key_file:
            chain: Keychain | None = Keychain.parse(args.recovery_key_file.read_text())
        else:
            chain = await load_keychain(secrets)
        if chain is None:
            print("sidecar backup: no sync key (set SIDECAR_SECRET_SYNC_KEY or pass --recovery-key-file)", file=sys.stderr)
            return 1
        if args.file is not None:
            result = await asyncio.to_thread(backup.verify, chain, args.file)
        else:
            result = await _verify_cloud(args, secrets, chain)
    except SidecarError as exc:
        print(f"sidecar backup: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


async def _verify_cloud(args: argparse.Namespace, secrets: Any, chain: Any) -> dict[str, Any]:
    from sidecar.errors import NotFound
    from sidecar.sync import backup
    from sidecar.sync.client import CloudClient

    settings = status_from_db(_data_dir(args) / "sidecar.db")
    if not settings["apiBase"]:
        raise NotFound("no apiBase configured in this data dir: pass a backup file instead")
    client = CloudClient(str(settings["apiBase"]), secrets)
    try:
        got = await client.get_backup()
    finally:
        await client.close()
    if got is None:
        raise NotFound("the cloud holds no backup")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cloud{backup.SUFFIX}"
        path.write_bytes(got[0])
        return await asyncio.to_thread(backup.verify, chain, path)
