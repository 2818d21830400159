"""Loading the agent stack (LiteLLM, offline-safe, and AgentScope): slow the first time (about a
second), so the service does it after the handshake, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from sidecar.background import foreground, loading_libraries


def import_run_events() -> None:
    """Import the AG-UI side of a run: ag-ui's models and encoder, the translator and the output
    blocks' models. It is what a run needs before its first event (``RUN_STARTED``): ~55–80 ms
    of CPU alone here, more when it shares the CPU with the other start-up imports. Idempotent.

    ag-ui's 84 pydantic models are imported with their schemas deferred
    (:func:`_models_built_on_first_use`): building them all at import took another ~0.1 s, and
    a run uses a dozen, each built the first time it is used (~1–3 ms)."""
    with _models_built_on_first_use():
        import ag_ui.core
        import ag_ui.encoder  # noqa: F401

        import sidecar.agent.translate  # noqa: F401  (also the output blocks' models)


@contextlib.contextmanager
def _models_built_on_first_use() -> Iterator[None]:
    """Pydantic models defined meanwhile default to ``defer_build=True`` (pydantic's own config:
    the validator and serializer are built on first validation or dump, not at class
    definition). Pydantic has no public switch for the default, so this sets its table of config
    defaults; with another pydantic where the table is gone, models are built eagerly as
    before. A model another thread defines meanwhile is deferred too, which changes only when it
    is built (start-up's own imports wait during this one: :func:`load_run_events`)."""
    try:
        from pydantic._internal._config import config_defaults
    except ImportError:  # pragma: no cover - a pydantic without the table: eager, as before
        yield
        return
    before = config_defaults.get("defer_build", False)
    config_defaults["defer_build"] = True
    try:
        yield
    finally:
        config_defaults["defer_build"] = before


async def load_run_events() -> None:
    """:func:`import_run_events` in a worker thread, as foreground work (imports of other
    threads wait meanwhile, :func:`sidecar.background.foreground`): the first stage of
    start-up's background work (:func:`sidecar.background.after_handshake`)."""
    def load() -> None:
        with foreground(), loading_libraries():
            import_run_events()

    await asyncio.to_thread(load)


def import_agent_stack() -> None:
    """Import LiteLLM (offline-safe) and AgentScope and settle their global settings. Idempotent.

    The AG-UI side of a run (:func:`import_run_events`) comes first, so a run that arrives while
    LiteLLM is still loading does not wait for it.
    """
    import_run_events()
    from sidecar.agent.litellm_env import configure_agentscope_logging, import_litellm

    import_litellm()
    configure_agentscope_logging()
    import agentscope.agent  # noqa: F401

    from sidecar.agent.tool_args import install

    install()  # tool-call arguments checked with a validator compiled once per tool


_stack_loaded = threading.Event()
_load_lock = threading.Lock()


def stack_loaded() -> bool:
    """True once :func:`load_agent_stack` has finished."""
    return _stack_loaded.is_set()


def _load_in_thread() -> None:
    with _load_lock:  # concurrent loads: the second waits here, then finds it done
        if _stack_loaded.is_set():
            return
        with loading_libraries():
            import_agent_stack()
        _stack_loaded.set()


async def load_agent_stack() -> None:
    """:func:`import_agent_stack` off the event loop, in the loop's default executor.

    An import cannot be interrupted; a shutdown does not wait for one because the sidecar's
    default executor is ``lifecycle.NoWaitExecutor`` (its threads are not joined at exit)."""
    if not _stack_loaded.is_set():
        await asyncio.to_thread(_load_in_thread)
