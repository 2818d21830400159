"""The shapes sync shows the shell: ``GET /v1/sync`` (and the ``sync.status`` event), the
results of ``POST /v1/backup`` and ``POST /v1/backup/restore`` (camelCase on the wire)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sidecar.store.models import ApiModel

SyncState = Literal["disabled", "offline", "online", "degraded"]


class DeviceSeen(ApiModel):
    device_id: str
    last_batch: int
    batches: int
    last_seen_at: int | None


class QuarantinedRecord(ApiModel):
    record_id: str
    device_id: str | None
    batch_seq: int | None
    state: Literal["quarantined", "held"] = Field(description="held: waits for an earlier batch of its device")
    reason: str | None
    seen_at: int


class ParkedBatch(ApiModel):
    batch_seq: int
    reason: str


class SyncStatus(ApiModel):
    """``GET /v1/sync`` and the ``sync.status`` event."""

    enabled: bool
    state: SyncState
    online: bool
    detail: str
    key_id: str | None
    pending_events: int
    last_push_at: int | None
    last_pull_at: int | None
    devices: list[DeviceSeen]
    quarantined: list[QuarantinedRecord]
    parked: ParkedBatch | None
    last_error: str | None
    requests: int = Field(description="HTTP requests to the cloud since start-up")


class BackupResult(ApiModel):
    """``POST /v1/backup``: where the backup went and what it is."""

    timestamp: int
    size_bytes: int
    plain_bytes: int = Field(description="size of the database snapshot before compression and encryption")
    chunk_count: int
    checksum: str
    cloud_id: str | None
    path: str | None


class RestoreResult(ApiModel):
    """``POST /v1/backup/restore``."""

    source: Literal["cloud", "file"]
    rows: int
    events: int
    pulled_events: int
