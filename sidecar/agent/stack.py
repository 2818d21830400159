"""Loading the agent stack (LiteLLM, offline-safe, and AgentScope): slow the first time (about a
second), so the service does it after the handshake, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sidecar.background import loading_libraries


def import_agent_stack() -> None:
    """Import LiteLLM (offline-safe) and AgentScope and settle their global settings. Idempotent.

    The AG-UI side of a run (ag-ui's models and encoder, the translator, the output blocks) comes
    first: it is what a run needs before its first event, and it is quick (~0.2 s), so a run that
    arrives while LiteLLM is still loading does not wait for it.
    """
    import ag_ui.core
    import ag_ui.encoder  # noqa: F401

    import sidecar.agent.translate  # noqa: F401  (also the output blocks' models)
    from sidecar.agent.litellm_env import configure_agentscope_logging, import_litellm

    import_litellm()
    configure_agentscope_logging()
    import agentscope.agent  # noqa: F401

    from sidecar.agent.tool_args import install

    install()  # tool-call arguments checked with a validator compiled once per tool


_stack_loaded = threading.Event()


def stack_loaded() -> bool:
    """True once :func:`load_agent_stack` has finished."""
    return _stack_loaded.is_set()


async def load_agent_stack() -> None:
    """:func:`import_agent_stack` off the event loop, in a daemon thread: an import cannot be
    interrupted, and a shutdown must not wait seconds for one to finish (the default executor's
    threads are joined at exit; a daemon thread is not)."""
    if _stack_loaded.is_set():
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def target() -> None:
        error: BaseException | None = None
        try:
            with loading_libraries():
                import_agent_stack()
            _stack_loaded.set()
        except BaseException as exc:
            error = exc

        def settle() -> None:
            if not done.done():
                done.set_exception(error) if error is not None else done.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=target, name="agent-stack-import", daemon=True).start()
    await done
