"""The online/offline loop: probe, push shortly after local changes, pull on a timer.

Nothing opens a socket while sync is disabled: the cloud client exists only while it is on.
When on, a cheap ``GET /health`` decides online or offline; offline, the probe is retried with
exponential backoff and full jitter (1 s doubling to 60 s). Online, a round is push then pull;
the next round starts ``debounce_s`` after a local change (so a burst of edits is one batch),
every ``pullIntervalS``, on reconnect, and on ``POST /v1/sync/now``. Transient failures
(5xx, 429, resets: already retried a few times by the client) send the loop back to probing;
a 401 that one refresh cannot cure makes sync ``degraded`` (``auth_expired``) until the
settings or the token change or the user asks for a sync. Every change of state is published
as a ``sync.status`` event and mirrored in ``/v1/ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sidecar import clock
from sidecar.errors import Conflict
from sidecar.notify import Notifications
from sidecar.readiness import Readiness
from sidecar.secrets import SecretStore
from sidecar.store.db import ChangeEntry, Store
from sidecar.sync import settings as sync_settings
from sidecar.sync.models import BackupResult, RestoreResult, SyncState, SyncStatus
from sidecar.sync.settings import SyncSettings
from sidecar.sync.state import counts, get_meta

if TYPE_CHECKING:  # the crypto and HTTP modules load only once sync is on (a lean handshake)
    from sidecar.sync.client import CloudClient, CloudError, RetryPolicy
    from sidecar.sync.keys import Keychain, SyncKey

log = logging.getLogger(__name__)

class SyncService:
    """Owns the sync settings, the key and the background loop of one data dir."""

    def __init__(self, store: Store, secrets: SecretStore, notifications: Notifications, readiness: Readiness,
                 *, policy: RetryPolicy | None = None, debounce_s: float = 0.5,
                 backoff_s: tuple[float, float] = (1.0, 60.0)) -> None:
        self.store = store
        self.secrets = secrets
        self.notifications = notifications
        self.readiness = readiness
        self.policy = policy
        self.debounce_s = debounce_s
        self.backoff_s = backoff_s
        self.settings = SyncSettings()
        self.client: CloudClient | None = None
        self.chain: Keychain | None = None
        self.state: SyncState = "disabled"
        self.detail = "sync is off: PUT /v1/settings/sync {\"enabled\": true, \"apiBase\": …}"
        self.last_error: str | None = None
        self.requests = 0
        self._task: asyncio.Task[None] | None = None
        self._backup_task: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._round_lock = asyncio.Lock()
        store.on_commit(self._on_commit)

    # --- life ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the stored settings (cheap: before the handshake); :meth:`start` starts the loop."""
        self.settings = await sync_settings.load(self.store)
        if not self.settings.enabled:
            self._set("disabled", self.detail)
        else:
            self._set("offline", "starting")
            self.readiness.set("sync", "starting", f"connecting to {self.settings.api_base}")

    async def start(self, *, loop: bool = True) -> None:
        """Start the loop when sync is on (after the handshake). ``loop=False``: only make the
        client, for a caller that runs rounds itself (``sidecar sync now``)."""
        await self._restart(loop=loop)

    async def stop(self) -> None:
        """Stop the loops and close the client (bounded: the loops are cancelled)."""
        for task in (self._task, self._backup_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._backup_task = None
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def _restart(self, *, loop: bool = True) -> None:
        await self.stop()
        if loop and self.settings.backup_cron and (self.settings.enabled or self.settings.backup_dir):
            self._backup_task = asyncio.get_running_loop().create_task(self._backup_loop(), name="sync-backups")
        if not self.settings.enabled:
            self._set("disabled", "sync is off: PUT /v1/settings/sync {\"enabled\": true, \"apiBase\": …}")
            return
        assert self.settings.api_base is not None
        from sidecar.sync.client import CloudClient

        self.client = CloudClient(self.settings.api_base, self.secrets, policy=self.policy,
                                  on_request=self._count)
        self._set("offline", f"connecting to {self.settings.api_base}")
        if loop:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="sync-loop")

    def _count(self, method: str, path: str) -> None:
        self.requests += 1

    def _on_commit(self, entries: list[ChangeEntry]) -> None:
        if any(e.origin == "local" for e in entries):
            self._dirty.set()

    # --- settings and keys --------------------------------------------------------------------

    async def configure(self, new: SyncSettings) -> None:
        """Store new settings and restart the loop. Enabling without a key generates one and
        stores it in the OS keyring (Unavailable when there is no secure keyring)."""
        if new.enabled:
            await self._ensure_key()
        await sync_settings.save(self.store, new)
        self.settings = new
        await self._restart()

    async def _ensure_key(self) -> Keychain:
        from sidecar.sync.keys import Keychain, SyncKey, save_keychain

        chain = await self.keychain()
        if chain is None:
            chain = Keychain.of(SyncKey.generate())
            await save_keychain(self.secrets, chain)
            self.chain = chain
        return chain

    async def keychain(self) -> Keychain | None:
        """The keychain (cached after the first read)."""
        if self.chain is None:
            from sidecar.sync.keys import load_keychain

            self.chain = await load_keychain(self.secrets)
        return self.chain

    async def import_key(self, recovery: str) -> SyncKey:
        """Learn a key from its recovery words and seal with it from now on (old keys kept)."""
        from sidecar.sync.keys import Keychain, SyncKey, save_keychain

        key = SyncKey.from_recovery(recovery)
        chain = await self.keychain()
        if chain is None:
            chain = Keychain.of(key)
        else:
            chain.add(key, make_current=True)
        await save_keychain(self.secrets, chain)
        self.chain = chain
        async with self.store.write() as w:  # records no key could open before: look again
            await w.execute("DELETE FROM sync_records WHERE status = 'quarantined' AND reason = 'unknown_key'")
        self._wake.set()
        return key

    # --- status -------------------------------------------------------------------------------

    def _set(self, state: SyncState, detail: str) -> None:
        changed = (state, detail) != (self.state, self.detail)
        self.state, self.detail = state, detail
        readiness = {"disabled": "disabled", "online": "ok", "offline": "degraded", "degraded": "degraded"}[state]
        self.readiness.set("sync", readiness, detail)  # type: ignore[arg-type]
        if changed:
            self.notifications.publish("sync.status", {"state": state, "detail": detail})

    async def status(self) -> SyncStatus:
        """Everything ``GET /v1/sync`` shows."""
        figures: dict[str, Any] = await counts(self.store)
        push_at, pull_at = await get_meta(self.store, "sync_last_push"), await get_meta(self.store, "sync_last_pull")
        chain = await self.keychain() if self.settings.enabled else self.chain
        return SyncStatus.model_validate({
            **figures, "enabled": self.settings.enabled, "state": self.state, "online": self.state == "online",
            "detail": self.detail, "key_id": chain.current if chain else None,
            "last_push_at": int(push_at) if push_at else None, "last_pull_at": int(pull_at) if pull_at else None,
            "last_error": self.last_error, "requests": self.requests})

    # --- rounds -------------------------------------------------------------------------------

    async def sync_now(self) -> SyncStatus:
        """One round now (push, including parked batches, then pull).

        Raises:
            Conflict: ``sync_disabled``.
        """
        if not self.settings.enabled or self.client is None:
            raise Conflict("sync is disabled: enable it with PUT /v1/settings/sync", code="sync_disabled")
        from sidecar.sync.client import CloudError

        if not await self.client.health():  # answer at once when the cloud is not there
            self._set("offline", f"offline: {self.settings.api_base} does not answer")
            return await self.status()
        try:
            await self._round(retry_parked=True)
        except CloudError as exc:
            self._failed(exc)
        return await self.status()

    async def _round(self, *, retry_parked: bool = False) -> None:
        assert self.client is not None
        from sidecar.sync.pull import pull
        from sidecar.sync.push import push

        chain = await self.keychain()
        if chain is None:
            self._set("degraded", "no sync key: POST /v1/sync/key/import or re-enable sync")
            return
        async with self._round_lock:
            self._dirty.clear()
            await push(self.store, self.client, chain, retry_parked=retry_parked)
            await pull(self.store, self.client, chain)
        self.last_error = None
        self._set("online", f"online: {self.settings.api_base}")

    def _failed(self, exc: CloudError) -> None:
        from sidecar.sync.client import AuthExpired

        self.last_error = str(exc)
        if isinstance(exc, AuthExpired):
            self._set("degraded", "auth_expired: the cloud token expired and could not be refreshed; "
                                  "set the secret cloud_token again")
        else:
            self._set("offline", f"{exc.reason}: {exc}")

    async def _wait(self, seconds: float, *, dirty: bool) -> None:
        """Sleep up to ``seconds``; wake early on :meth:`sync_now`/key changes, and (``dirty``)
        ``debounce_s`` after a local change."""
        waits = [asyncio.ensure_future(self._wake.wait())]
        if dirty:
            waits.append(asyncio.ensure_future(self._dirty.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._wake.clear()
        if self._dirty.is_set() and dirty:
            await asyncio.sleep(self.debounce_s)

    async def _loop(self) -> None:
        from sidecar.sync.client import AuthExpired, CloudError, Transient

        assert self.client is not None
        backoff = self.backoff_s[0]
        while True:
            if not await self.client.health():
                self._set("offline", f"offline: {self.settings.api_base} does not answer; next try in {backoff:.0f} s")
                await self._wait(random.uniform(0, backoff), dirty=False)
                backoff = min(backoff * 2, self.backoff_s[1])
                continue
            backoff = self.backoff_s[0]
            try:
                await self._round()
            except Transient as exc:
                self._failed(exc)
                await self._wait(exc.retry_after or random.uniform(0, backoff), dirty=False)
                continue
            except AuthExpired as exc:
                self._failed(exc)
                await self._wait(24 * 3600, dirty=False)  # until the user acts
                continue
            except CloudError as exc:
                self._failed(exc)
            except Exception:  # a bug must not kill sync for the rest of the session
                log.exception("sync round failed")
                self.last_error = "internal error (see the log)"
            await self._wait(self.settings.pull_interval_s, dirty=True)

    # --- backup -------------------------------------------------------------------------------

    async def backup(self) -> BackupResult:
        """Snapshot, seal and send a backup to the cloud (sync on) and/or the local folder.

        Raises:
            Conflict: ``no_backup_target`` — sync is off and no ``backupDir`` is set.
        """
        from sidecar.sync import backup as backup_mod

        local = Path(self.settings.backup_dir) if self.settings.backup_dir else None
        if local is None and (not self.settings.enabled or self.client is None):
            raise Conflict("nowhere to back up to: enable sync or set backupDir in /v1/settings/sync",
                           code="no_backup_target")
        chain = await self._ensure_key()
        out = local or self.store.path.parent / ".backups"
        made = await backup_mod.create(self.store, chain, out)
        cloud_id = None
        try:
            if self.settings.enabled and self.client is not None:
                blob = await asyncio.to_thread(made.path.read_bytes)
                cloud_id = await self.client.put_backup(blob, version=backup_mod.FORMAT_VERSION,
                                                        timestamp_ms=made.timestamp, chunks=made.chunks)
        finally:
            if local is None:
                await asyncio.to_thread(made.path.unlink, True)
        return BackupResult(timestamp=made.timestamp, size_bytes=made.size_bytes, plain_bytes=made.plain_bytes,
                            chunk_count=made.chunks, checksum=made.checksum, cloud_id=cloud_id,
                            path=str(made.path) if local else None)

    async def restore(self, recovery: str | None, path: str | None) -> RestoreResult:
        """Restore the newest cloud backup (or the file at ``path``) into this fresh data dir,
        then pull what is newer (when sync is on).

        Raises:
            Conflict: ``not_fresh``; ``no_backup`` (the cloud has none); ``sync_disabled``.
            BackupInvalid: truncated, altered, or sealed with another key.
        """
        async with self._round_lock:  # no pull may run in between: the data dir must stay fresh
            return await self._restore(recovery, path)

    async def _restore(self, recovery: str | None, path: str | None) -> RestoreResult:
        from sidecar.errors import NotFound
        from sidecar.sync import backup as backup_mod

        if recovery:
            await self.import_key(recovery)
        chain = await self.keychain()
        if chain is None:
            raise Conflict("no sync key: give the recoveryKey of the device that made the backup", code="no_sync_key")
        if not await backup_mod.is_fresh(self.store):
            raise Conflict("restore needs a fresh data dir: this one already has data", code="not_fresh")
        if path is not None:
            source: Literal["cloud", "file"] = "file"
            sealed = Path(path)
            if not await asyncio.to_thread(sealed.is_file):
                raise NotFound(f"no backup file at {path}", code="no_backup")
            result = await backup_mod.restore(self.store, chain, sealed)
        else:
            source = "cloud"
            if not self.settings.enabled or self.client is None:
                raise Conflict("restoring from the cloud needs sync enabled (apiBase and token)", code="sync_disabled")
            got = await self.client.get_backup()
            if got is None:
                raise NotFound("the cloud holds no backup yet", code="no_backup")
            tmp = self.store.path.parent / f".restore-{clock.now_ms()}{backup_mod.SUFFIX}"
            await asyncio.to_thread(tmp.write_bytes, got[0])
            try:
                result = await backup_mod.restore(self.store, chain, tmp)
            finally:
                await asyncio.to_thread(tmp.unlink, True)
        pulled = 0
        if self.settings.enabled and self.client is not None:
            from sidecar.sync.pull import pull

            pulled = (await pull(self.store, self.client, chain)).events
        return RestoreResult(source=source, rows=result["rows"], events=result["events"], pulled_events=pulled)

    async def _backup_loop(self) -> None:
        from sidecar.ingest.scheduler import next_fire_ms

        assert self.settings.backup_cron is not None
        while True:
            due = next_fire_ms(self.settings.backup_cron, clock.now_ms())
            await asyncio.sleep(max(0.0, (due - clock.now_ms()) / 1000))
            try:
                await self.backup()
            except Exception as exc:  # a failed scheduled backup is reported, the schedule goes on
                log.warning("scheduled backup failed", extra={"error": str(exc)})
                self.last_error = f"scheduled backup failed: {exc}"
