"""The system CA store of aiohttp's default client TLS contexts, loaded after the handshake.

aiohttp builds its two default client contexts when it is imported (``aiohttp/connector.py``:
a verifying one from ``ssl.create_default_context()`` and a non-verifying one, both calling
``set_default_verify_paths()``). With OpenSSL 3.0 each load of the system bundle costs about
75 ms of CPU here (OpenSSL 3.0's slow certificate-store loading; measured with 146 CAs in
``/etc/ssl/certs/ca-certificates.crt``), about a sixth of ``sidecar serve``'s way to its
handshake, for clients that nothing uses before it.

``sidecar serve`` imports aiohttp inside :func:`deferred_ca_loading`: the contexts created
meanwhile are recorded instead of loaded, and :func:`load_deferred` loads them in a worker
thread right after the handshake. Until then they trust no CA, so a TLS connection fails
verification (never the reverse). Our only aiohttp client (sync's ``CloudClient``) awaits
:func:`ensure_loaded` before it connects, so it never sees the window. Other processes
(``sidecar chat``, the tests) import aiohttp normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pending: list[ssl.SSLContext] = []


@contextlib.contextmanager
def deferred_ca_loading() -> Iterator[None]:
    """Within the block, ``SSLContext.set_default_verify_paths()`` records the context instead
    of loading the CA store into it. Only for the start of ``sidecar serve``: single-threaded,
    before any connection is made."""
    assert "set_default_verify_paths" not in ssl.SSLContext.__dict__  # inherited from _ssl

    def record(context: ssl.SSLContext) -> None:
        with _lock:
            _pending.append(context)

    ssl.SSLContext.set_default_verify_paths = record  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del ssl.SSLContext.set_default_verify_paths  # the inherited method again


def load_deferred() -> int:
    """Load the system CA store into every context recorded by :func:`deferred_ca_loading`
    (blocking I/O, about 75 ms each: call it in a thread). Idempotent; returns how many
    contexts it loaded."""
    with _lock:
        contexts = list(_pending)
        for context in contexts:
            context.set_default_verify_paths()
        _pending.clear()
        return len(contexts)


def pending() -> int:
    """How many recorded contexts still have no CA store."""
    with _lock:
        return len(_pending)


async def ensure_loaded() -> None:
    """Return once no default context is waiting for its CA store (at once when none is)."""
    if pending():
        await asyncio.to_thread(load_deferred)
