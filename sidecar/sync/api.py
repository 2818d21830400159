"""Sync routes: settings, status, sync now, key export/import (DESIGN §2 "sync, backup")."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from sidecar.api.io import json_ok, read_body
from sidecar.appstate import SECRETS, SYNC
from sidecar.errors import NotFound
from sidecar.store.models import ApiModel
from sidecar.sync.client import TOKEN_SECRET
from sidecar.sync.settings import SyncSettings


class SyncSettingsView(ApiModel):
    """The settings and whether the secrets they need are set (never their values)."""

    enabled: bool
    api_base: str | None
    pull_interval_s: float
    backup_dir: str | None
    backup_cron: str | None
    key_set: bool
    token_set: bool


class RecoveryKey(ApiModel):
    """``POST /v1/sync/key/export`` answer: the words to write down, and the key's id."""

    recovery_key: str
    key_id: str


class KeyImport(ApiModel):
    """``POST /v1/sync/key/import`` body: 24 recovery words."""

    recovery_key: str = Field(min_length=1, max_length=1000)


class KeyImported(ApiModel):
    key_id: str


class RestoreBody(ApiModel):
    """``POST /v1/backup/restore``: the recovery key of the device that made the backup (if this
    device does not have it yet), and a local backup file (default: the newest in the cloud)."""

    recovery_key: str | None = Field(default=None, max_length=1000)
    path: str | None = Field(default=None, max_length=4096)


async def _view(request: web.Request) -> SyncSettingsView:
    service = request.app[SYNC]
    s = service.settings
    token = await request.app[SECRETS].get(TOKEN_SECRET)
    return SyncSettingsView(enabled=s.enabled, api_base=s.api_base, pull_interval_s=s.pull_interval_s,
                            backup_dir=s.backup_dir, backup_cron=s.backup_cron,
                            key_set=await service.keychain() is not None, token_set=bool(token))


async def get_settings(request: web.Request) -> web.Response:
    """→ :class:`SyncSettingsView`."""
    return json_ok(await _view(request))


async def put_settings(request: web.Request) -> web.Response:
    """Replace the settings → :class:`SyncSettingsView`; enabling generates a key if none (503
    ``secrets_unavailable`` without a secure keyring)."""
    body = await read_body(request, SyncSettings)
    await request.app[SYNC].configure(body)
    return json_ok(await _view(request))


async def get_status(request: web.Request) -> web.Response:
    """→ ``SyncStatus``."""
    return json_ok(await request.app[SYNC].status())


async def post_now(request: web.Request) -> web.Response:
    """One round now → ``SyncStatus``; 409 ``sync_disabled``."""
    return json_ok(await request.app[SYNC].sync_now())


async def export_key(request: web.Request) -> web.Response:
    """→ :class:`RecoveryKey`; 404 ``no_sync_key`` before sync was ever enabled."""
    chain = await request.app[SYNC].keychain()
    if chain is None:
        raise NotFound("no sync key yet: enable sync or import a recovery key", code="no_sync_key")
    key = chain.current_key
    return json_ok(RecoveryKey(recovery_key=key.recovery_words, key_id=key.key_id))


async def import_key(request: web.Request) -> web.Response:
    """→ :class:`KeyImported`; 422 ``invalid_recovery_key`` for mistyped words."""
    body = await read_body(request, KeyImport)
    key = await request.app[SYNC].import_key(body.recovery_key)
    return json_ok(KeyImported(key_id=key.key_id))


async def post_backup(request: web.Request) -> web.Response:
    """A backup now → ``BackupResult``; 409 ``no_backup_target``."""
    return json_ok(await request.app[SYNC].backup())


async def post_restore(request: web.Request) -> web.Response:
    """Restore on a fresh data dir → ``RestoreResult``; 409 ``not_fresh``, 422 ``backup_invalid``."""
    body = await read_body(request, RestoreBody)
    return json_ok(await request.app[SYNC].restore(body.recovery_key, body.path))


routes = [
    web.get("/v1/settings/sync", get_settings, allow_head=False),
    web.put("/v1/settings/sync", put_settings),
    web.get("/v1/sync", get_status, allow_head=False),
    web.post("/v1/sync/now", post_now),
    web.post("/v1/sync/key/export", export_key),
    web.post("/v1/sync/key/import", import_key),
    web.post("/v1/backup", post_backup),
    web.post("/v1/backup/restore", post_restore),
]
