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
* Every failure is raised as a :class:`~sidecar.errors.ModelError` subclass with a stable ``code``
  (mapped in :mod:`sidecar.agent.model_failures`).

Cancellation: a ``CancelledError`` inside the stream closes the HTTP response and propagates.
Note that AgentScope's ``ChatModelBase.__call__`` turns a cancellation into a final response with
``finished_reason=INTERRUPTED`` (keeping the partial text) — that is how ``Agent`` records an
interrupted reply; see ``docs/agentscope-notes.md``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Literal

from agentscope.credential import CredentialBase
from agentscope.formatter import FormatterBase, OpenAIChatFormatter
from agentscope.message import Msg
from agentscope.model import ChatModelBase, ChatResponse, ChatUsage, OpenAIChatModel
from agentscope.tool import ToolChoice
from pydantic import Field, SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from sidecar.agent.litellm_env import import_litellm
from sidecar.agent.model_failures import final, map_exception, setting_name, should_retry
from sidecar.agent.model_stats import (
    DEFAULT_CONTEXT_SIZE,
    CallRecord,
    ModelCallStats,
    is_local,
    known_context_size,
    provider,
)
from sidecar.agent.model_stream import ChunkReader, DeltaState, convert_chunks, parse_completion
from sidecar.agent.settings import ModelSettings
from sidecar.basemodel import Model
from sidecar.errors import (
    ModelAuthError,
    ModelError,
    ModelRateLimitedError,
    ModelRequestRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)

__all__ = [
    "LiteLLMChatModel", "LiteLLMCredential", "ModelAuthError", "ModelCallStats", "ModelError",
    "ModelRateLimitedError", "ModelRequestRejectedError", "ModelSettings", "ModelTimeoutError",
    "ModelUnavailableError",
]

log = logging.getLogger(__name__)


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

    class Parameters(Model):
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
        context_size = settings.context_size or known_context_size(settings.model) or DEFAULT_CONTEXT_SIZE
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
        call = CallRecord(model=model_name, started=time.monotonic())
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
        response = parse_completion(opened, call, self._usage)
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
        if provider(model_name) in ("ollama", "ollama_chat"):
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

    async def _open_with_retries(self, request: dict[str, Any], call: CallRecord) -> tuple[Any, Any] | Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(should_retry),
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
                        call.attempts > self.settings.max_retries or not should_retry(exc)
                    ):
                        raise final(exc) from exc.__cause__
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else jittered backoff."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ModelError) and exc.retry_after_s is not None:
            return max(0.0, exc.retry_after_s)
        backoff = min(self.backoff_max_s, self.backoff_base_s * (2 ** (state.attempt_number - 1)))
        return backoff * (0.5 + 0.5 * _jitter())

    async def _open_once(self, request: dict[str, Any], call: CallRecord) -> tuple[Any, Any] | Any:
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
                    f"Raise {setting_name('request_timeout_s')} if it is just slow.",
                    setting=setting_name("request_timeout_s"),
                ) from exc
            if isinstance(exc, Exception) and not isinstance(exc, ModelError):
                raise map_exception(exc, self.settings, mid_stream=False) from exc
            raise

    # -- streaming --------------------------------------------------------------------------------

    async def _stream_deltas(
        self, stream: Any, first: Any, call: CallRecord
    ) -> AsyncGenerator[ChatResponse, None]:
        """Convert LiteLLM chunks to ChatResponse deltas, one per batch of chunks that arrived
        together (:class:`~sidecar.agent.model_stream.ChunkReader`); close the stream however it
        ends."""
        state = DeltaState()
        outcome: Literal["completed", "interrupted", "failed"] = "interrupted"
        error_code: str | None = None
        reader = ChunkReader(stream, first)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.stall_timeout_s):
                        chunks = await reader.next_batch()
                except TimeoutError as exc:
                    raise ModelTimeoutError(
                        f"The model stopped sending for {self.settings.stall_timeout_s:g} s "
                        f"mid-answer. Raise {setting_name('stall_timeout_s')} if the model is just slow.",
                        setting=setting_name("stall_timeout_s"),
                        attempts=call.attempts,
                    ) from exc
                except Exception as exc:
                    mapped = map_exception(exc, self.settings, mid_stream=True)
                    mapped.attempts = call.attempts
                    mapped.transient = False
                    raise mapped from exc
                if not chunks:
                    break
                delta = convert_chunks(chunks, state, call, self._usage)
                if delta is not None:
                    yield delta
            outcome = "completed"
        except ModelError as exc:
            outcome, error_code = "failed", exc.code
            raise
        finally:
            try:
                await reader.aclose()
            finally:  # a second cancellation during the first step still closes the connection
                await _close(stream)
                self._report(call, outcome, error_code)

    # -- accounting -------------------------------------------------------------------------------

    def _usage(self, call: CallRecord) -> ChatUsage:
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
        call: CallRecord,
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
        call: CallRecord,
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
        if not (input_tokens or output_tokens) or is_local(self.settings):
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


def _jitter() -> float:
    return random.random()




async def _close(stream: Any) -> None:
    """Close a LiteLLM stream (releases the HTTP connection); never raises."""
    closer = getattr(stream, "aclose", None)
    if closer is None:
        return
    with contextlib.suppress(Exception):
        await closer()
