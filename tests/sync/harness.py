"""In-process devices for sync tests: a real SQLite store each, the real client against a real server."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sidecar.secrets import SecretStore
from sidecar.store.db import Store
from sidecar.store.entities import ENTITIES
from sidecar.store.repository import Repository
from sidecar.sync.client import CloudClient, RetryPolicy
from sidecar.sync.keys import Keychain
from sidecar.sync.pull import PullResult, pull
from sidecar.sync.push import PushResult, push

FAST = RetryPolicy(attempts=4, min_s=0.01, max_s=0.05, timeout_s=5.0)


async def domain_hash(store: Store) -> str:
    """SHA-256 over every domain table's rows, in id order."""
    h = hashlib.sha256()
    for spec in ENTITIES.values():
        rows = await store.fetchall(f"SELECT * FROM {spec.table} ORDER BY id")
        h.update(json.dumps([list(r) for r in rows], sort_keys=True).encode())
    return h.hexdigest()


@dataclass
class Device:
    store: Store
    repo: Repository
    client: CloudClient
    chain: Keychain

    async def push(self) -> PushResult:
        return await push(self.store, self.client, self.chain)

    async def pull(self) -> PullResult:
        return await pull(self.store, self.client, self.chain)

    async def sync(self) -> None:
        await self.push()
        await self.pull()

    async def close(self) -> None:
        await self.client.close()
        await self.store.close()


async def open_device(path: Path, base: str, chain: Keychain, token: str) -> Device:
    store = await Store.open(path / "sidecar.db")
    client = CloudClient(base, SecretStore({"SIDECAR_SECRET_CLOUD_TOKEN": token}), policy=FAST)
    return Device(store, Repository(store), client, chain)
