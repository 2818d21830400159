"""Model failures: provider, LiteLLM and socket exceptions mapped to the :class:`ModelError`
family of ``sidecar.errors``, and the retry policy's view of them."""

from __future__ import annotations

import email.utils
import errno
import socket
import time
from typing import Literal

from pydantic.alias_generators import to_camel

from sidecar.agent.litellm_env import import_litellm
from sidecar.agent.model_stats import provider
from sidecar.agent.settings import ModelSettings
from sidecar.errors import (
    ModelAuthError,
    ModelError,
    ModelRateLimitedError,
    ModelRequestRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)

#: A ``Retry-After`` longer than this (seconds) is not waited for: the call fails as rate-limited.
MAX_RETRY_AFTER_S = 60.0
_MAX_PROVIDER_MESSAGE = 300


def setting_name(field: str) -> str:
    """The API name of a setting, e.g. ``api_base`` → ``model.apiBase``."""
    return f"model.{to_camel(field)}"


def should_retry(exc: BaseException) -> bool:
    if not isinstance(exc, ModelError) or not exc.transient:
        return False
    return exc.retry_after_s is None or exc.retry_after_s <= MAX_RETRY_AFTER_S


def final(exc: ModelError) -> ModelError:
    """The error to raise once a transient failure is not retried any more."""
    exc.transient = False
    if isinstance(exc, ModelRateLimitedError):
        wait = f" (the server asks to wait {exc.retry_after_s:g} s)" if exc.retry_after_s is not None else ""
        exc.with_message(
            f"The model server is rate-limiting requests (HTTP 429) after {exc.attempts} "
            f"attempt(s){wait}. Try again later or use another model ({setting_name('model')})."
        )
    elif exc.attempts > 1:
        exc.with_message(f"{exc.message.rstrip('.')} (after {exc.attempts} attempts).")
    return exc


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 16:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _connection_failure(exc: BaseException) -> Literal["refused", "unreachable", "reset"] | None:
    """What went wrong at the socket level, from the exception chain (LiteLLM wraps it deeply)."""
    import aiohttp
    import httpx

    chain = _chain(exc)
    # The OS-level cause is the most precise: look for it along the whole chain first.
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "refused"
        if isinstance(item, socket.gaierror):
            return "unreachable"
        if isinstance(item, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            return "reset"
        if isinstance(item, OSError) and item.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
    for item in chain:
        if isinstance(
            item,
            aiohttp.ServerDisconnectedError
            | aiohttp.ClientPayloadError
            | httpx.RemoteProtocolError
            | httpx.ReadError,
        ):
            return "reset"
        if isinstance(item, aiohttp.ClientConnectorError | httpx.ConnectError):
            return "unreachable"
    return None


def _retry_after_s(exc: BaseException) -> float | None:
    """The ``Retry-After`` header (seconds or an HTTP date) of a LiteLLM/OpenAI error, if any."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def _provider_message(exc: BaseException) -> str:
    """The provider's own message without LiteLLM's ``litellm.X: X: OpenAIException -`` prefixes."""
    text = str(getattr(exc, "message", None) or exc)
    for marker in ("Exception - ", "Error - "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text[:_MAX_PROVIDER_MESSAGE].rstrip(" .")


def _endpoint(settings: ModelSettings) -> str:
    return settings.api_base or f"the {provider(settings.model) or 'provider'} default endpoint"


def map_exception(exc: Exception, settings: ModelSettings, *, mid_stream: bool) -> ModelError:
    """Map a LiteLLM/OpenAI/network exception to our :class:`ModelError` family."""
    litellm = import_litellm()
    failure = _connection_failure(exc)
    if failure is not None:
        where = _endpoint(settings)
        if failure == "refused":
            return ModelUnavailableError(
                f"Cannot connect to the model server at {where}: connection refused. "
                f"Is it running? Check {setting_name('api_base')}.",
                setting=setting_name("api_base"),
            )
        if failure == "unreachable":
            return ModelUnavailableError(
                f"Cannot reach the model server at {where}. Check {setting_name('api_base')} and the network.",
                setting=setting_name("api_base"),
            )
        text = "lost the connection mid-answer" if mid_stream else "closed the connection"
        return ModelUnavailableError(
            f"The model server at {where} {text}. Check that it is still running ({setting_name('api_base')}).",
            setting=setting_name("api_base"),
            transient=not mid_stream,
        )

    if isinstance(exc, litellm.Timeout):
        return ModelTimeoutError(
            f"The model server did not answer in time. Raise {setting_name('request_timeout_s')} "
            "if it is just slow.",
            setting=setting_name("request_timeout_s"),
        )

    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = _provider_message(exc)
    if status in (401, 403) or isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        if settings.api_key_secret:
            fix = f"Set the API key secret named '{settings.api_key_secret}' to a valid key"
        else:
            fix = f"Store the API key as a secret and set {setting_name('api_key_secret')} to its name"
        verb = "rejected the API key" if status != 403 else "refused access to this model"
        return ModelAuthError(
            f"The model server {verb} (HTTP {status or 401}): {detail}. {fix}.",
            setting=setting_name("api_key_secret"),
            upstream_status=status or 401,
        )
    if status == 429 or isinstance(exc, litellm.RateLimitError):
        return ModelRateLimitedError(
            f"The model server is rate-limiting requests (HTTP 429): {detail}.",
            setting=setting_name("model"),
            upstream_status=429,
            retry_after_s=_retry_after_s(exc),
            transient=not mid_stream,
        )
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ModelRequestRejectedError(
            f"The conversation is longer than the model's context window: {detail}. "
            f"Check {setting_name('context_size')} or start a new thread.",
            setting=setting_name("context_size"),
            upstream_status=status,
        )
    if status is not None and status >= 500:
        return ModelError(
            f"The model server failed (HTTP {status}): {detail}.",
            setting=setting_name("api_base"),
            upstream_status=status,
            retry_after_s=_retry_after_s(exc),
            transient=not mid_stream,
        )
    if status == 404 or isinstance(exc, litellm.NotFoundError):
        return ModelRequestRejectedError(
            f"The model server does not know the model '{settings.model}' (HTTP 404): {detail}. "
            f"Check {setting_name('model')} (for Ollama: is the model pulled?).",
            setting=setting_name("model"),
            upstream_status=404,
        )
    if status is not None and 400 <= status < 500:
        return ModelRequestRejectedError(
            f"The model server rejected the request (HTTP {status}): {detail}. Check {setting_name('model')}.",
            setting=setting_name("model"),
            upstream_status=status,
        )
    return ModelError(
        f"The model call failed: {detail}. Check {setting_name('model')} and {setting_name('api_base')}.",
        setting=setting_name("model"),
        upstream_status=status,
    )
