"""The chat model: an AgentScope 2.x ``ChatModelBase`` that calls ``litellm.acompletion``.

Any LiteLLM provider works: local (``ollama/…``, ``ollama_chat/…``, an OpenAI-compatible server
such as llama.cpp or LM Studio as ``openai/<name>`` with ``api_base``) or hosted.

* Messages are formatted by AgentScope's own :class:`~agentscope.formatter.OpenAIChatFormatter`
  (LiteLLM takes the OpenAI format and converts for the provider).
* Streaming yields AgentScope :class:`~agentscope.model.ChatResponse` deltas (``is_last=False``);
  ``ChatModelBase.__call__`` accumulates them and adds the final ``is_last=True`` response.
  OpenAI streams send a tool call's ``id`` and ``name`` only on its first delta: the model keeps
  ``index → (id, name)`` and stamps every delta with the call's id.
* Usage comes from ``stream_options={"include_usage": True}``; cost from LiteLLM's bundled price
  map (0 for local or unknown models); latency is measured here. Per call, a
  :class:`ModelCallStats` goes to ``on_call_end`` and into ``ChatUsage.metadata``.
* Retries (tenacity) only for transient failures before the first chunk: connection reset,
  HTTP 429 (honouring ``Retry-After``) and 5xx; bounded by ``ModelSettings.max_retries``.
  LiteLLM's and the OpenAI SDK's own retries are switched off so they do not compound.
* ``request_timeout_s`` bounds connect → first chunk (the whole answer when not streaming);
  ``stall_timeout_s`` bounds every later gap between chunks.
* Every failure is raised as a :class:`ModelError` subclass with a stable ``code``.

Cancellation: a ``CancelledError`` inside the stream closes the HTTP response and propagates.
Note that AgentScope's ``ChatModelBase.__call__`` turns a cancellation into a final response with
``finished_reason=INTERRUPTED`` (keeping the partial text) — that is how ``Agent`` records an
interrupted reply; see ``docs/agentscope-notes.md``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import email.utils
import errno
import ipaddress
import logging
import random
import socket
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from agentscope.credential import CredentialBase
from agentscope.formatter import FormatterBase, OpenAIChatFormatter
from agentscope.message import Msg, TextBlock, ThinkingBlock, ToolCallBlock
from agentscope.model import ChatModelBase, ChatResponse, ChatUsage, OpenAIChatModel
from agentscope.tool import ToolChoice
from pydantic import BaseModel, Field, SecretStr
from pydantic.alias_generators import to_camel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from sidecar.agent.litellm_env import import_litellm
from sidecar.agent.settings import ModelSettings

log = logging.getLogger(__name__)

#: A ``Retry-After`` longer than this (seconds) is not waited for: the call fails as rate-limited.
MAX_RETRY_AFTER_S = 60.0
#: Context size assumed when neither the settings nor LiteLLM's price map know the model.
DEFAULT_CONTEXT_SIZE = 8192
_LOCAL_PROVIDERS = ("ollama", "ollama_chat", "lm_studio", "llamafile", "hosted_vllm", "vllm")
_MAX_PROVIDER_MESSAGE = 300


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def _setting(field: str) -> str:
    """The API name of a setting, e.g. ``api_base`` → ``model.apiBase``."""
    return f"model.{to_camel(field)}"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ModelError(Exception):
    """A model call failed. ``code`` is stable (the API and the shell key off it).

    Attributes:
        code: ``model_error`` here; subclasses override it.
        message: a human-readable sentence naming the setting or secret to fix.
        setting: the setting to fix (``model.apiBase``, …) or ``None``.
        status: the HTTP status from the model server, if any.
        attempts: how many attempts were made (1 = no retry).
        retry_after_s: the server's ``Retry-After`` in seconds, if it sent one.
        transient: whether another attempt could succeed (used by the retry policy).
    """

    code: ClassVar[str] = "model_error"

    def __init__(
        self,
        message: str,
        *,
        setting: str | None = None,
        status: int | None = None,
        attempts: int = 1,
        retry_after_s: float | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting
        self.status = status
        self.attempts = attempts
        self.retry_after_s = retry_after_s
        self.transient = transient

    def to_dict(self) -> dict[str, Any]:
        """The API error shape: ``{"code", "message", "detail": {setting, status, attempts, retryAfterS}}``."""
        detail: dict[str, Any] = {"attempts": self.attempts}
        if self.setting is not None:
            detail["setting"] = self.setting
        if self.status is not None:
            detail["status"] = self.status
        if self.retry_after_s is not None:
            detail["retryAfterS"] = self.retry_after_s
        return {"code": self.code, "message": self.message, "detail": detail}


class ModelUnavailableError(ModelError):
    """The model server cannot be reached: connection refused, unreachable, or dropped."""

    code: ClassVar[str] = "model_unavailable"


class ModelAuthError(ModelError):
    """The model server rejected the credentials (HTTP 401/403)."""

    code: ClassVar[str] = "model_auth"


class ModelRateLimitedError(ModelError):
    """The model server kept answering HTTP 429 after the retries."""

    code: ClassVar[str] = "model_rate_limited"


class ModelTimeoutError(ModelError):
    """No first chunk within ``request_timeout_s``, or a stall longer than ``stall_timeout_s``."""

    code: ClassVar[str] = "model_timeout"


class ModelRequestRejectedError(ModelError):
    """The server refused the request itself (HTTP 400/404/422). Code ``model_error``.

    Separate so AgentScope's structured-output fallback can try its next strategy on it.
    """


# ---------------------------------------------------------------------------------------------
# Per-call statistics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCallStats:
    """What one model call cost. Times in ms; cost in US dollars (0 for local/unknown models).

    ``outcome``: ``completed``, ``interrupted`` (cancelled or closed early) or ``failed``
    (``error_code`` says why). Tokens are 0 when the server reported no usage.
    """

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: int
    first_chunk_ms: int | None
    attempts: int
    outcome: Literal["completed", "interrupted", "failed"]
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As a plain dict (snake_case)."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class LiteLLMCredential(CredentialBase):
    """The key and endpoint for LiteLLM; the key is a ``SecretStr`` (never printed)."""

    type: Literal["litellm_credential"] = "litellm_credential"
    api_key: SecretStr | None = None
    api_base: str | None = None

    @classmethod
    def get_chat_model_class(cls) -> builtins.type[ChatModelBase]:
        """The chat model that consumes this credential."""
        return LiteLLMChatModel


class LiteLLMChatModel(ChatModelBase):
    """AgentScope chat model over ``litellm.acompletion``.

    Construct with :class:`ModelSettings` and the API key already resolved from the secret
    store (or ``None``). Used by ``agentscope.agent.Agent(model=...)`` or called directly:
    ``await model(messages=[...], tools=[...])`` returns an async generator of
    ``ChatResponse`` deltas (last one ``is_last=True``), or one ``ChatResponse`` when
    ``stream=False``. Raises :class:`ModelError` subclasses.
    """

    class Parameters(BaseModel):
        """Sampling parameters sent with every call."""

        temperature: float | None = Field(default=None, ge=0, le=2)

    type: Literal["litellm_chat"] = "litellm_chat"

    def __init__(
        self,
        settings: ModelSettings,
        api_key: str | None = None,
        *,
        stream: bool = True,
        on_call_end: Callable[[ModelCallStats], None] | None = None,
        formatter: FormatterBase | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
    ) -> None:
        """Create the model.

        Args:
            settings: model string, endpoint, timeouts (s), retries.
            api_key: the key (resolved from the secret ``settings.api_key_secret``), or ``None``.
                With an ``api_base`` and no key a placeholder is sent, so a key from the
                process environment is never sent to a local server.
            stream: stream deltas (default) or make one non-streaming request.
            on_call_end: called once per model call with its :class:`ModelCallStats`
                (completed, interrupted or failed). Exceptions from it are logged and ignored.
            formatter: AgentScope formatter for the messages (default ``OpenAIChatFormatter``).
            backoff_base_s, backoff_max_s: exponential backoff (s) between retries when the
                server gives no ``Retry-After``.
        """
        self.settings = settings
        context_size = settings.context_size or _known_context_size(settings.model) or DEFAULT_CONTEXT_SIZE
        self._credential = LiteLLMCredential(
            name=settings.api_key_secret or "",
            api_key=SecretStr(api_key) if api_key else None,
            api_base=settings.api_base,
        )
        super().__init__(
            credential=self._credential,
            model=settings.model,
            parameters=self.Parameters(temperature=settings.temperature),
            stream=stream,
            max_retries=settings.max_retries,
            retry_delay=backoff_base_s,
            context_size=context_size,
        )
        self.formatter = formatter or OpenAIChatFormatter()
        self.on_call_end = on_call_end
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._litellm = import_litellm()

    # -- AgentScope hooks ---------------------------------------------------------------------

    @classmethod
    def _get_retryable_exceptions(cls) -> tuple[builtins.type[Exception], ...]:
        # Retries happen inside _call_api (tenacity, Retry-After aware); the base class's fixed
        # delay loop must not add a second layer.
        return ()

    @classmethod
    def _get_structured_output_fallback_exceptions(cls) -> tuple[builtins.type[Exception], ...]:
        return (ModelRequestRejectedError,)

    async def _call_api(
        self,
        model_name: str,
        messages: list[Msg],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
        **kwargs: Any,
    ) -> ChatResponse | AsyncGenerator[ChatResponse, None]:
        """One model call (with retries). See the class docstring for the result shape.

        Raises:
            ModelError: a subclass per failure class (``.code``).
            ValueError: ``tool_choice`` names a tool that is not in ``tools``.
        """
        request = await self._build_request(model_name, messages, tools, tool_choice, kwargs)
        call = _Call(model=model_name, started=time.monotonic())
        try:
            opened = await self._open_with_retries(request, call)
        except ModelError as exc:
            self._report(call, "failed", exc.code)
            raise
        except asyncio.CancelledError:
            self._report(call, "interrupted")
            raise
        if isinstance(opened, tuple):
            stream, first = opened
            return self._stream_deltas(stream, first, call)
        response = self._parse_completion(opened, call)
        self._report(call, "completed")
        return response

    async def complete(
        self,
        messages: list[Msg],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
        **kwargs: Any,
    ) -> ChatResponse:
        """One call, accumulated into the final ``ChatResponse`` (for callers other than ``Agent``).

        Unlike ``__call__`` (AgentScope's wrapper, which turns a cancellation into an
        ``INTERRUPTED`` response so ``Agent`` can keep the partial answer), a cancellation here
        closes the stream and raises ``asyncio.CancelledError``.

        Raises:
            ModelError: a subclass per failure class (``.code``).
            asyncio.CancelledError: the calling task was cancelled.
        """
        res = await self._call_api(self.model, messages, tools=tools, tool_choice=tool_choice, **kwargs)
        if isinstance(res, ChatResponse):
            return res
        final = ChatResponse(content=[], is_last=True)
        async for delta in res:
            final.append_chat_response(delta)
            final.id = delta.id
        return final

    # -- request --------------------------------------------------------------------------------

    async def _build_request(
        self,
        model_name: str,
        messages: list[Msg],
        tools: list[dict[str, Any]] | None,
        tool_choice: ToolChoice | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        settings = self.settings
        request: dict[str, Any] = {
            "model": model_name,
            "messages": await self.formatter.format(messages),
            "stream": self.stream,
            "timeout": settings.request_timeout_s,
            # Retries are ours (tenacity); neither LiteLLM nor the OpenAI SDK may add their own.
            "max_retries": 0,
            "num_retries": 0,
            # Drop OpenAI parameters a provider does not support instead of failing.
            "drop_params": True,
        }
        if settings.api_base:
            request["api_base"] = settings.api_base
        api_key = self._credential.api_key.get_secret_value() if self._credential.api_key else None
        if api_key:
            request["api_key"] = api_key
        elif settings.api_base:
            # Local servers need no key, but the OpenAI client insists on one and would otherwise
            # read OPENAI_API_KEY from the environment and send it to this server.
            request["api_key"] = "sk-no-key"
        if settings.temperature is not None:
            request["temperature"] = settings.temperature
        if self.stream:
            request["stream_options"] = {"include_usage": True}
        if _provider(model_name) in ("ollama", "ollama_chat"):
            request["num_ctx"] = self.context_size
        fmt_tools, fmt_choice = self._format_tools(tools, tool_choice)
        if fmt_tools:
            request["tools"] = fmt_tools
        if fmt_choice is not None:
            request["tool_choice"] = fmt_choice
        request.update(extra)
        return request

    def _format_tools(
        self, tools: list[dict[str, Any]] | None, tool_choice: ToolChoice | None
    ) -> tuple[list[dict[str, Any]] | None, str | dict[str, Any] | None]:
        """Filter/flatten the tool schemas and map ``ToolChoice`` to the OpenAI form."""
        if tool_choice and tools:
            self._validate_tool_choice(tool_choice, tools)
            if tool_choice.tools:
                allowed = set(tool_choice.tools)
                tools = [t for t in tools if t["function"]["name"] in allowed]
        if tools:
            # Inline $ref/$defs: small local models and llama.cpp grammars handle them badly.
            tools = OpenAIChatModel._flatten_tool_schemas(tools)
        if not tool_choice:
            return tools, None
        if tool_choice.mode in ("auto", "none", "required"):
            return tools, tool_choice.mode
        return tools, {"type": "function", "function": {"name": tool_choice.mode}}

    # -- opening (retried) ------------------------------------------------------------------------

    async def _open_with_retries(self, request: dict[str, Any], call: _Call) -> tuple[Any, Any] | Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_should_retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                call.attempts = attempt.retry_state.attempt_number
                try:
                    return await self._open_once(request, call)
                except ModelError as exc:
                    exc.attempts = call.attempts
                    if exc.transient and (
                        call.attempts > self.settings.max_retries or not _should_retry(exc)
                    ):
                        raise _final(exc) from exc.__cause__
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else jittered backoff."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ModelError) and exc.retry_after_s is not None:
            return max(0.0, exc.retry_after_s)
        backoff = min(self.backoff_max_s, self.backoff_base_s * (2 ** (state.attempt_number - 1)))
        return backoff * (0.5 + 0.5 * _jitter())

    async def _open_once(self, request: dict[str, Any], call: _Call) -> tuple[Any, Any] | Any:
        """Send the request and (streaming) wait for the first chunk, within the request timeout."""
        litellm = self._litellm
        stream: Any = None
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                response = await litellm.acompletion(**request)
                if not request["stream"]:
                    return response
                stream = response
                first = await anext(aiter(stream), None)
                call.first_chunk = time.monotonic()
                return stream, first
        except BaseException as exc:
            if stream is not None:
                await _close(stream)
            if isinstance(exc, TimeoutError):
                raise ModelTimeoutError(
                    f"No answer from the model within {self.settings.request_timeout_s:g} s; "
                    f"the server may be overloaded or still loading the model. "
                    f"Raise {_setting('request_timeout_s')} if it is just slow.",
                    setting=_setting("request_timeout_s"),
                ) from exc
            if isinstance(exc, Exception) and not isinstance(exc, ModelError):
                raise _map_exception(exc, self.settings, mid_stream=False) from exc
            raise

    # -- streaming --------------------------------------------------------------------------------

    async def _stream_deltas(
        self, stream: Any, first: Any, call: _Call
    ) -> AsyncGenerator[ChatResponse, None]:
        """Convert LiteLLM chunks to ChatResponse deltas; close the stream however it ends."""
        state = _DeltaState()
        outcome: Literal["completed", "interrupted", "failed"] = "interrupted"
        error_code: str | None = None
        iterator: AsyncIterator[Any] = aiter(stream)
        try:
            chunk = first
            while chunk is not None:
                delta = self._convert_chunk(chunk, state, call)
                if delta is not None:
                    yield delta
                try:
                    async with asyncio.timeout(self.settings.stall_timeout_s):
                        chunk = await anext(iterator, None)
                except TimeoutError as exc:
                    raise ModelTimeoutError(
                        f"The model stopped sending for {self.settings.stall_timeout_s:g} s "
                        f"mid-answer. Raise {_setting('stall_timeout_s')} if the model is just slow.",
                        setting=_setting("stall_timeout_s"),
                        attempts=call.attempts,
                    ) from exc
                except Exception as exc:
                    mapped = _map_exception(exc, self.settings, mid_stream=True)
                    mapped.attempts = call.attempts
                    mapped.transient = False
                    raise mapped from exc
            outcome = "completed"
        except ModelError as exc:
            outcome, error_code = "failed", exc.code
            raise
        finally:
            await _close(stream)
            self._report(call, outcome, error_code)

    def _convert_chunk(self, chunk: Any, state: _DeltaState, call: _Call) -> ChatResponse | None:
        """One LiteLLM ``ModelResponseStream`` → a ChatResponse delta (``None`` if it carries nothing)."""
        state.response_id = getattr(chunk, "id", None) or state.response_id
        delta_res = ChatResponse(content=[], is_last=False, id=state.response_id)
        usage = getattr(chunk, "usage", None)
        if usage:
            call.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            call.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            call.cached_tokens = _cached_tokens(usage)
            delta_res.usage = self._usage(call)
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            thinking = getattr(delta, "reasoning_content", None)
            if isinstance(thinking, str) and thinking:
                delta_res.append_thinking(thinking, block_id=state.thinking_id)
            text = getattr(delta, "content", None)
            if isinstance(text, str) and text:
                delta_res.append_text(text, block_id=state.text_id)
            for tool_call in getattr(delta, "tool_calls", None) or []:
                index = getattr(tool_call, "index", 0) or 0
                fn = getattr(tool_call, "function", None)
                name = getattr(fn, "name", None) if fn is not None else None
                args = getattr(fn, "arguments", None) if fn is not None else None
                known = state.tool_calls.get(index)
                if known is None:
                    call_id = getattr(tool_call, "id", None) or f"call_{state.response_id}_{index}"
                    known = (call_id, name or "")
                    state.tool_calls[index] = known
                elif name and not known[1]:
                    known = (known[0], name)
                    state.tool_calls[index] = known
                delta_res.append_tool_call(block_id=known[0], name=known[1], input=args or "")
        if not delta_res.content and delta_res.usage is None:
            return None
        return delta_res

    # -- non-streaming ----------------------------------------------------------------------------

    def _parse_completion(self, response: Any, call: _Call) -> ChatResponse:
        content: list[TextBlock | ToolCallBlock | ThinkingBlock] = []
        choices = getattr(response, "choices", None) or []
        if choices:
            message = choices[0].message
            reasoning = getattr(message, "reasoning_content", None)
            if isinstance(reasoning, str) and reasoning:
                content.append(ThinkingBlock(thinking=reasoning))
            if message.content:
                content.append(TextBlock(text=message.content))
            for tool_call in getattr(message, "tool_calls", None) or []:
                content.append(
                    ToolCallBlock(
                        id=tool_call.id,
                        name=tool_call.function.name or "",
                        input=tool_call.function.arguments or "",
                    )
                )
        usage = getattr(response, "usage", None)
        if usage:
            call.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            call.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            call.cached_tokens = _cached_tokens(usage)
        result = ChatResponse(content=list(content), is_last=True, usage=self._usage(call))
        if getattr(response, "id", None):
            result.id = response.id
        return result

    # -- accounting -------------------------------------------------------------------------------

    def _usage(self, call: _Call) -> ChatUsage:
        stats = self._stats(call, "completed")
        return ChatUsage(
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            time=stats.latency_ms / 1000.0,
            cache_input_tokens=call.cached_tokens,
            metadata=stats.to_dict(),
        )

    def _stats(
        self,
        call: _Call,
        outcome: Literal["completed", "interrupted", "failed"],
        error_code: str | None = None,
    ) -> ModelCallStats:
        now = time.monotonic()
        return ModelCallStats(
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cost_usd=self.cost_usd(call.input_tokens, call.output_tokens),
            latency_ms=round((now - call.started) * 1000),
            first_chunk_ms=round((call.first_chunk - call.started) * 1000) if call.first_chunk else None,
            attempts=call.attempts,
            outcome=outcome,
            error_code=error_code,
        )

    def _report(
        self,
        call: _Call,
        outcome: Literal["completed", "interrupted", "failed"],
        error_code: str | None = None,
    ) -> None:
        if call.reported or self.on_call_end is None:
            call.reported = True
            return
        call.reported = True
        try:
            self.on_call_end(self._stats(call, outcome, error_code))
        except Exception:
            log.exception("on_call_end callback failed")

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """Price in US dollars of a call from LiteLLM's bundled price map.

        0.0 for local servers (a loopback ``api_base`` or a local provider) and for models the
        map does not know. Never raises.
        """
        if not (input_tokens or output_tokens) or _is_local(self.settings):
            return 0.0
        try:
            prompt, completion = self._litellm.cost_per_token(
                model=self.settings.model, prompt_tokens=input_tokens, completion_tokens=output_tokens
            )
            return float(prompt) + float(completion)
        except Exception:
            return 0.0


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@dataclass
class _Call:
    """Mutable bookkeeping for one model call (all attempts)."""

    model: str
    started: float
    first_chunk: float | None = None
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reported: bool = False


class _DeltaState:
    """Ids that stay fixed across the deltas of one streamed answer.

    ``tool_calls`` maps the OpenAI stream's call ``index`` to ``(id, name)``: both arrive only on
    the first delta of a call, its later argument deltas carry just the index.
    """

    def __init__(self) -> None:
        self.response_id = uuid.uuid4().hex
        self.text_id = uuid.uuid4().hex
        self.thinking_id = uuid.uuid4().hex
        self.tool_calls: dict[int, tuple[str, str]] = {}


def _jitter() -> float:
    return random.random()


def _should_retry(exc: BaseException) -> bool:
    if not isinstance(exc, ModelError) or not exc.transient:
        return False
    return exc.retry_after_s is None or exc.retry_after_s <= MAX_RETRY_AFTER_S


def _final(exc: ModelError) -> ModelError:
    """The error to raise once a transient failure is not retried any more."""
    exc.transient = False
    if isinstance(exc, ModelRateLimitedError):
        wait = f" (the server asks to wait {exc.retry_after_s:g} s)" if exc.retry_after_s is not None else ""
        exc.message = (
            f"The model server is rate-limiting requests (HTTP 429) after {exc.attempts} "
            f"attempt(s){wait}. Try again later or use another model ({_setting('model')})."
        )
        exc.args = (exc.message,)
    elif exc.attempts > 1:
        exc.message = f"{exc.message.rstrip('.')} (after {exc.attempts} attempts)."
        exc.args = (exc.message,)
    return exc


async def _close(stream: Any) -> None:
    """Close a LiteLLM stream (releases the HTTP connection); never raises."""
    closer = getattr(stream, "aclose", None)
    if closer is None:
        return
    with contextlib.suppress(Exception):
        await closer()


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def _is_local(settings: ModelSettings) -> bool:
    if _provider(settings.model) in _LOCAL_PROVIDERS:
        return True
    if not settings.api_base:
        return False
    host = urlsplit(settings.api_base).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _known_context_size(model: str) -> int | None:
    """Context window from LiteLLM's bundled map (a dict lookup: no network)."""
    litellm = import_litellm()
    for key in (model, model.split("/", 1)[-1]):
        info = litellm.model_cost.get(key)
        if isinstance(info, dict):
            size = info.get("max_input_tokens") or info.get("max_tokens")
            if isinstance(size, int) and size > 0:
                return size
    return None


def _cached_tokens(usage: Any) -> int:
    details = getattr(usage, "prompt_tokens_details", None)
    return int(getattr(details, "cached_tokens", 0) or 0) if details else 0


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
    return settings.api_base or f"the {_provider(settings.model) or 'provider'} default endpoint"


def _map_exception(exc: Exception, settings: ModelSettings, *, mid_stream: bool) -> ModelError:
    """Map a LiteLLM/OpenAI/network exception to our :class:`ModelError` family."""
    litellm = import_litellm()
    failure = _connection_failure(exc)
    if failure is not None:
        where = _endpoint(settings)
        if failure == "refused":
            return ModelUnavailableError(
                f"Cannot connect to the model server at {where}: connection refused. "
                f"Is it running? Check {_setting('api_base')}.",
                setting=_setting("api_base"),
            )
        if failure == "unreachable":
            return ModelUnavailableError(
                f"Cannot reach the model server at {where}. Check {_setting('api_base')} and the network.",
                setting=_setting("api_base"),
            )
        text = "lost the connection mid-answer" if mid_stream else "closed the connection"
        return ModelUnavailableError(
            f"The model server at {where} {text}. Check that it is still running ({_setting('api_base')}).",
            setting=_setting("api_base"),
            transient=not mid_stream,
        )

    if isinstance(exc, litellm.Timeout):
        return ModelTimeoutError(
            f"The model server did not answer in time. Raise {_setting('request_timeout_s')} "
            "if it is just slow.",
            setting=_setting("request_timeout_s"),
        )

    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = _provider_message(exc)
    if status in (401, 403) or isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        if settings.api_key_secret:
            fix = f"Set the API key secret named '{settings.api_key_secret}' to a valid key"
        else:
            fix = f"Store the API key as a secret and set {_setting('api_key_secret')} to its name"
        verb = "rejected the API key" if status != 403 else "refused access to this model"
        return ModelAuthError(
            f"The model server {verb} (HTTP {status or 401}): {detail}. {fix}.",
            setting=_setting("api_key_secret"),
            status=status or 401,
        )
    if status == 429 or isinstance(exc, litellm.RateLimitError):
        return ModelRateLimitedError(
            f"The model server is rate-limiting requests (HTTP 429): {detail}.",
            setting=_setting("model"),
            status=429,
            retry_after_s=_retry_after_s(exc),
            transient=not mid_stream,
        )
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ModelRequestRejectedError(
            f"The conversation is longer than the model's context window: {detail}. "
            f"Check {_setting('context_size')} or start a new thread.",
            setting=_setting("context_size"),
            status=status,
        )
    if status is not None and status >= 500:
        return ModelError(
            f"The model server failed (HTTP {status}): {detail}.",
            setting=_setting("api_base"),
            status=status,
            retry_after_s=_retry_after_s(exc),
            transient=not mid_stream,
        )
    if status == 404 or isinstance(exc, litellm.NotFoundError):
        return ModelRequestRejectedError(
            f"The model server does not know the model '{settings.model}' (HTTP 404): {detail}. "
            f"Check {_setting('model')} (for Ollama: is the model pulled?).",
            setting=_setting("model"),
            status=404,
        )
    if status is not None and 400 <= status < 500:
        return ModelRequestRejectedError(
            f"The model server rejected the request (HTTP {status}): {detail}. Check {_setting('model')}.",
            setting=_setting("model"),
            status=status,
        )
    return ModelError(
        f"The model call failed: {detail}. Check {_setting('model')} and {_setting('api_base')}.",
        setting=_setting("model"),
        status=status,
    )
