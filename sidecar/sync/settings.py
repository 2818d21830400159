"""Sync settings (``GET/PUT /v1/settings/sync``), stored in the ``settings`` table under ``sync``."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from sidecar import clock
from sidecar.store.db import Store
from sidecar.store.models import ApiModel

KEY = "sync"


class SyncSettings(ApiModel):
    """``{"enabled", "apiBase", "pullIntervalS"?}``.

    Attributes:
        enabled: sync and cloud backup on; nothing opens a socket while it is off.
        api_base: the cloud's base URL (``https://api.example.com``); the API is under
            ``{apiBase}/api/v1``. Required when enabled.
        pull_interval_s: seconds between pulls while online (1 s – 1 day).
        backup_dir: a local folder that receives every backup too (for people without the
            cloud, or a second copy); ``None`` = cloud only.
        backup_cron: cron schedule of automatic backups (``0 3 * * *``), in the user's time
            zone; ``None`` = only on ``POST /v1/backup``.
    """

    enabled: bool = False
    api_base: str | None = Field(default=None, max_length=2000)
    pull_interval_s: float = Field(default=60.0, ge=1.0, le=86_400.0)
    backup_dir: str | None = Field(default=None, max_length=4096)
    backup_cron: str | None = Field(default=None, max_length=200)

    @field_validator("backup_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        from pathlib import Path

        if value is not None and not Path(value).is_absolute():
            raise ValueError("an absolute folder path")
        return value

    @field_validator("backup_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r} (e.g. '0 3 * * *')")
        return value

    @field_validator("api_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http(s) URL such as https://api.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _enabled_needs_base(self) -> SyncSettings:
        if self.enabled and not self.api_base:
            raise ValueError("apiBase is required to enable sync")
        return self


async def load(store: Store) -> SyncSettings:
    """The stored settings (defaults: disabled)."""
    row = await store.fetchone("SELECT value FROM settings WHERE key = ?", (KEY,))
    if row is None:
        return SyncSettings()
    try:
        return SyncSettings.model_validate(json.loads(row[0]))
    except ValueError:
        return SyncSettings()


async def save(store: Store, settings: SyncSettings) -> None:
    """Store the settings."""
    async with store.write() as w:
        await w.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (KEY, settings.model_dump_json(by_alias=True), clock.now_ms()))
