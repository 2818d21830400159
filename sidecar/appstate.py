"""Typed keys of the aiohttp application's state (aiohttp ``web.AppKey``) — every key of every
part is declared here, once.

Handlers read what they need with ``request.app[STORE]`` and so on; the application factory
(:mod:`sidecar.app`) and each part's ``setup(app)`` fill them. The parts' service types are
imported for type checking only, so this module stays a leaf every part can import.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sidecar.notify import Notifications
from sidecar.readiness import Readiness
from sidecar.secrets import SecretStore
from sidecar.settings import Settings
from sidecar.store.db import Store
from sidecar.store.repository import Repository

if TYPE_CHECKING:
    from sidecar.agent.history import History
    from sidecar.agent.runs import AgentService
    from sidecar.ingest.options import IngestOptions
    from sidecar.ingest.service import IngestService
    from sidecar.search.service import SearchService
    from sidecar.sync.service import SyncService

# -- the foundation (sidecar.app) ------------------------------------------------------------
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
#: background tasks started by :func:`sidecar.background.after_handshake`; cancelled at shutdown
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("background")
#: the first stage of that work (``after_handshake(..., first=True)``); the rest waits for it
BACKGROUND_FIRST: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("background_first")

# -- agent (sidecar.agent.service) -----------------------------------------------------------
AGENT: web.AppKey[AgentService] = web.AppKey("agent")
HISTORY: web.AppKey[History] = web.AppKey("history")

# -- ingest (sidecar.ingest.service) ---------------------------------------------------------
INGEST: web.AppKey[IngestService] = web.AppKey("ingest")
#: optional override of the ingest tuning (tests); default ``IngestOptions()``
INGEST_OPTIONS: web.AppKey[IngestOptions] = web.AppKey("ingest_options")
#: test hook: a factory of the native observer (e.g. one that refuses like a full inotify)
NATIVE_OBSERVER: web.AppKey[Callable[[], Any]] = web.AppKey("ingest_native_observer")

# -- search and memory (sidecar.search.service) ----------------------------------------------
SEARCH: web.AppKey[SearchService] = web.AppKey("search")

# -- cloud sync and backup (sidecar.sync.setup) ----------------------------------------------
SYNC: web.AppKey[SyncService] = web.AppKey("sync")
