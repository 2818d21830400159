"""The one place that imports LiteLLM (and settles AgentScope's global side effects).

LiteLLM does things at import time that an offline desktop service must not allow:

* it fetches its model price list from GitHub (stalls seconds without network) unless
  ``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set *before* the import;
* in its default ``DEV`` mode it loads a ``.env`` file into ``os.environ``
  (``LITELLM_MODE=PRODUCTION`` turns that off);
* its loggers carry a handler that writes records below WARNING to **stdout**, which the
  sidecar reserves for the one handshake line; and on errors it prints "Give Feedback / Get Help"
  banners to stdout unless ``litellm.suppress_debug_info`` is set;
* while streaming it triggers pydantic deprecation warnings (``PydanticDeprecatedSince211``),
  which Python prints as raw text on stderr, breaking the JSON log lines.

AgentScope installs its own stderr handler on the ``"as"`` logger (level INFO, no propagation).

Every module that needs LiteLLM calls :func:`import_litellm`; nothing imports ``litellm`` directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

from sidecar.background import loading_libraries

log = logging.getLogger(__name__)

#: Environment LiteLLM reads at import time, forced before the first import.
LITELLM_IMPORT_ENV: dict[str, str] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    # Its loggers get a plain-text handler at import; below WARNING nothing may pass before we
    # reroute them (at --log-level debug the root level would otherwise let text lines out).
    "LITELLM_LOG": "WARNING",
}

#: Loggers LiteLLM creates (with its own stdout/stderr handler).
_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "LiteLLM Proxy stdout")

_lock = threading.Lock()
_litellm: ModuleType | None = None
_agentscope_configured = False


def import_litellm() -> ModuleType:
    """Import and configure LiteLLM for offline use; returns the ``litellm`` module.

    Idempotent and thread-safe. Sets :data:`LITELLM_IMPORT_ENV`, imports LiteLLM, turns off its
    stdout banners, silences its deprecation warnings and reroutes its loggers to the root logger
    (level WARNING), so its records end up in the sidecar's JSON stderr log.

    Raises:
        RuntimeError: LiteLLM was already imported by someone else without the local price
            map (it may already have tried the network); the import order must be fixed.
    """
    global _litellm
    with _lock:
        if _litellm is not None:
            return _litellm
        already = "litellm" in sys.modules
        os.environ.update(LITELLM_IMPORT_ENV)
        for name in _LITELLM_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        import litellm

        if already and not _local_cost_map_in_use():
            raise RuntimeError(
                "litellm was imported before sidecar.agent.litellm_env.import_litellm(); "
                "import it only through import_litellm() so the price list is never fetched"
            )
        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        # Token counting for models whose server sends no usage must not try the Hugging Face
        # Hub (offline; and the frozen bundle has no such tokenizers): tiktoken approximates.
        litellm.disable_hf_tokenizer_download = True
        _reroute_loggers(_LITELLM_LOGGERS)
        _silence_litellm_warnings()
        _skip_unobserved_success_logging(litellm)
        _litellm = litellm
        return litellm


def _nobody_listens(litellm: ModuleType, logging_obj: Any) -> bool:
    """No success callback anywhere: LiteLLM's global lists, or the call's own (dynamic) ones."""
    return not any((litellm.success_callback, litellm._async_success_callback, litellm.callbacks,
                    getattr(logging_obj, "dynamic_success_callbacks", None),
                    getattr(logging_obj, "dynamic_async_success_callbacks", None)))


def _skip_unobserved_success_logging(litellm: ModuleType) -> None:
    """At the end of every streamed call LiteLLM starts a task that builds its success-logging
    payload (cost, a standard logging object: ~30 ms of CPU per model turn here) even when no
    callback is registered to receive it. The sidecar registers none (usage and cost come from
    the stream itself, :mod:`sidecar.agent.model`), and that task ran on the event loop while
    the turn's tool calls waited. With no callback, the dispatch now returns at once; a callback
    registered later gets everything as before.

    Wraps ``Logging.dispatch_success_handlers`` (``litellm/litellm_core_utils/litellm_logging.py``,
    LiteLLM 1.110); if LiteLLM no longer has it as a coroutine function, logs a warning and
    leaves LiteLLM as it is (correct, only slower)."""
    import inspect

    from litellm.litellm_core_utils import litellm_logging

    cls = litellm_logging.Logging
    original = getattr(cls, "dispatch_success_handlers", None)
    if getattr(original, "__sidecar_wrapped__", False):
        return
    if not inspect.iscoroutinefunction(original):
        log.warning("litellm: Logging.dispatch_success_handlers not found; success logging not skipped")
        return

    async def dispatch_success_handlers(self: Any, *args: Any, **kwargs: Any) -> None:
        if _nobody_listens(litellm, self):
            return None
        return await original(self, *args, **kwargs)  # type: ignore[misc]

    dispatch_success_handlers.__sidecar_wrapped__ = True  # type: ignore[attr-defined]
    cls.dispatch_success_handlers = dispatch_success_handlers  # type: ignore[method-assign]


async def load_litellm() -> ModuleType:
    """:func:`import_litellm` for code on the event loop: the first import (seconds) runs in a
    worker thread under :func:`sidecar.background.loading_libraries`, so the loop keeps serving."""
    if _litellm is not None:
        return _litellm

    def load() -> ModuleType:
        with loading_libraries():
            return import_litellm()

    return await asyncio.to_thread(load)


def configure_agentscope_logging(level: int = logging.WARNING) -> None:
    """Route AgentScope's ``"as"`` logger to the root logger instead of its own stderr handler.

    AgentScope (``agentscope/_logging.py``) calls ``setup_logger("INFO")`` at import: a plain-text
    ``StreamHandler`` on stderr with ``propagate=False``. This removes that handler, sets
    ``level`` and lets records propagate to the sidecar's JSON log. Idempotent.
    """
    global _agentscope_configured
    import agentscope  # noqa: F401  (its import installs the handler we remove)

    with _lock:
        _reroute_loggers(("as",), level)
        # agentscope/__init__.py puts a global "once" DeprecationWarning filter in front of ours.
        _silence_litellm_warnings()
        _agentscope_configured = True


def _silence_litellm_warnings() -> None:
    """Ignore DeprecationWarnings raised from LiteLLM's own modules (first in the filter list)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litellm(\.|$)")


def _reroute_loggers(names: tuple[str, ...], level: int = logging.WARNING) -> None:
    for name in names:
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = True


def _local_cost_map_in_use() -> bool:
    try:
        from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info

        return bool(get_model_cost_map_source_info().get("is_env_forced"))
    except Exception:  # an unknown LiteLLM layout: cannot tell, assume the worst
        return False
