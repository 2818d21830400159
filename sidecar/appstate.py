"""Typed keys of the aiohttp application's state (aiohttp ``web.AppKey``).

Handlers read what they need with ``request.app[STORE]`` and so on; the application factory
(:mod:`sidecar.app`) fills them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from sidecar.notify import Notifications
from sidecar.readiness import Readiness
from sidecar.secrets import SecretStore
from sidecar.settings import Settings
from sidecar.store.db import Store
from sidecar.store.repository import Repository

if TYPE_CHECKING:
    from sidecar.sync.service import SyncService

SETTINGS = web.AppKey("settings", Settings)
READINESS = web.AppKey("readiness", Readiness)
NOTIFICATIONS = web.AppKey("notifications", Notifications)
SECRETS = web.AppKey("secrets", SecretStore)
STORE = web.AppKey("store", Store)
REPOSITORY = web.AppKey("repository", Repository)
#: set once the handshake line is out; heavy start-up work waits for it (DESIGN §1.3)
HANDSHAKE_DONE = web.AppKey("handshake_done", asyncio.Event)
#: set when shutdown begins; long-lived streams end when it is set
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
#: background tasks started by :func:`sidecar.app.after_handshake`; cancelled at shutdown
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("background")
#: cloud sync and backup (sidecar/sync)
SYNC: web.AppKey[SyncService] = web.AppKey("sync")
