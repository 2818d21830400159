"""The cloud API client (issue 11 contract, all under ``{apiBase}/api/v1``).

Transient failures — 5xx, 429 and connection errors (reset, refused, timed out) — are retried
a bounded number of times by tenacity with exponential backoff and full jitter, waiting what a
``Retry-After`` header asks when there is one. A 401 triggers one refresh with the refresh
token (secret ``cloud_refresh_token``), then :class:`AuthExpired`. Any other 4xx is
:class:`Rejected`: retrying would not help, the caller parks the work with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from sidecar import tls
from sidecar.secrets import SecretStore

log = logging.getLogger(__name__)

TOKEN_SECRET = "cloud_token"
REFRESH_SECRET = "cloud_refresh_token"
SYNC_TABLE = "sidecar_sync_v1"


class CloudError(Exception):
    """Base of the client's failures; ``reason`` is a stable code for status and parking."""

    reason = "cloud_error"


class Transient(CloudError):
    """Worth retrying later: 5xx, 429, connection trouble. ``retry_after`` in seconds if given."""

    reason = "unreachable"

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class AuthExpired(CloudError):
    """401 even after one refresh (or no token at all)."""

    reason = "auth_expired"


class Rejected(CloudError):
    """A 4xx other than 401/429: the request itself is refused (400 checksum, 403 quota…)."""

    reason = "rejected"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``attempts`` in all, waits between ``min_s`` and ``max_s`` (jittered)."""

    attempts: int = 4
    min_s: float = 0.25
    max_s: float = 8.0
    timeout_s: float = 30.0
    #: the longest ``Retry-After`` waited inside one call (a longer one still is waited this long)
    max_retry_after_s: float = 60.0


@dataclass(frozen=True)
class RecordMeta:
    """One entry of ``GET /storage/records``."""

    id: str
    table: str
    checksum: str
    created_at: int


def checksum(blob: bytes) -> str:
    """Hex SHA-256, as the contract's ``checksum`` and ``X-Checksum``."""
    return hashlib.sha256(blob).hexdigest()


class CloudClient:
    """One cloud account. ``on_request`` (optional) is told of every HTTP attempt (for tests
    and the request counter of the status)."""

    def __init__(self, api_base: str, secrets: SecretStore, *, policy: RetryPolicy | None = None,
                 on_request: Callable[[str, str], None] | None = None) -> None:
        self.base = api_base.rstrip("/") + "/api/v1"
        self._secrets = secrets
        self._policy = policy or RetryPolicy()
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._on_request = on_request
        self.requests = 0

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s),
                connector=aiohttp.TCPConnector(limit=8, ttl_dns_cache=300), trust_env=False)
        return self._session

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self._policy.max_retry_after_s)
        return float(wait_random_exponential(multiplier=self._policy.min_s, max=self._policy.max_s)(state))

    async def _once(self, method: str, path: str, *, auth: bool, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        await tls.ensure_loaded()  # aiohttp's default context has its CAs (sidecar/tls.py)
        headers = dict(kw.pop("headers", {}))
        if auth:
            if self._token is None:
                self._token = await self._secrets.get(TOKEN_SECRET)
            if not self._token:
                raise AuthExpired("no cloud token: set the secret cloud_token")
            headers["Authorization"] = f"Bearer {self._token}"
        self.requests += 1
        if self._on_request is not None:
            self._on_request(method, path)
        try:
            async with self._http().request(method, self.base + path, headers=headers, **kw) as resp:
                body = await resp.read()
                return resp.status, dict(resp.headers), body
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise Transient(f"{method} {path}: {type(exc).__name__}: {exc}") from None

    async def _call(self, method: str, path: str, *, auth: bool = True, ok: tuple[int, ...] = (200, 201),
                    **kw: Any) -> tuple[int, dict[str, str], bytes]:
        refreshed = False
        while True:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(self._policy.attempts), wait=self._wait,
                                               retry=retry_if_exception_type(Transient), reraise=True):
                with attempt:
                    status, headers, body = await self._once(method, path, auth=auth, **kw)
                    if status >= 500 or status == 429:
                        retry_after = headers.get("Retry-After")
                        raise Transient(f"{method} {path}: HTTP {status}", status=status,
                                        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
            if status == 401 and auth:
                if refreshed or not await self._refresh():
                    raise AuthExpired(f"{method} {path}: the cloud refused the token (401)")
                refreshed = True
                continue
            if status in ok or status == 304:
                return status, headers, body
            raise Rejected(f"{method} {path}: HTTP {status} {_detail(body)}", status)

    async def _refresh(self) -> bool:
        token = await self._secrets.get(REFRESH_SECRET)
        if not token:
            return False
        status, _, body = await self._once("POST", "/auth/refresh", auth=False, json={"refresh_token": token})
        if status != 200:
            log.warning("cloud token refresh refused", extra={"status": status})
            return False
        data = json.loads(body)
        self._token = data["access_token"]
        await self._secrets.set(TOKEN_SECRET, data["access_token"])
        await self._secrets.set(REFRESH_SECRET, data["refresh_token"])
        return True

    # --- the contract ---------------------------------------------------------------------

    async def health(self) -> bool:
        """One cheap probe of ``GET /health`` (no retries, no auth): True when it answers ok."""
        try:
            status, _, _ = await self._once("GET", "/health", auth=False, timeout=aiohttp.ClientTimeout(total=5))
        except Transient:
            return False
        return status == 200

    async def post_record(self, blob: bytes, table: str = SYNC_TABLE) -> str:
        """``POST /storage/records`` → the new record's id."""
        _, _, body = await self._call("POST", "/storage/records", json={
            "table": table, "blob": base64.b64encode(blob).decode(), "checksum": checksum(blob)})
        return str(json.loads(body)["id"])

    async def list_records(self, page: int, limit: int = 100, table: str = SYNC_TABLE) -> list[RecordMeta]:
        """One page (1-based) of record metadata, oldest first."""
        _, _, body = await self._call("GET", "/storage/records", params={"table": table, "page": page, "limit": limit})
        return [RecordMeta(r["id"], r["table"], r["checksum"], int(r["created_at"])) for r in json.loads(body)]

    async def get_record(self, record_id: str) -> tuple[bytes, str]:
        """The blob and its ``X-Checksum``."""
        _, headers, body = await self._call("GET", f"/storage/records/{record_id}")
        return body, headers.get("X-Checksum", "")

    async def put_backup(self, blob: bytes, *, version: int, timestamp_ms: int, chunks: int) -> str:
        """``PUT /backup`` → the backup's id."""
        _, _, body = await self._call("PUT", "/backup", data=blob, headers={
            "X-Checksum": checksum(blob), "X-Backup-Version": str(version),
            "X-Backup-Timestamp": str(timestamp_ms), "X-Chunk-Count": str(chunks),
            "Content-Type": "application/octet-stream"})
        return str(json.loads(body)["id"])

    async def get_backup(self) -> tuple[bytes, dict[str, str]] | None:
        """The newest backup and its headers; None when the account has none."""
        try:
            _, headers, body = await self._call("GET", "/backup")
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise
        return body, headers


def _detail(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail", ""))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")

