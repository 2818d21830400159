"""Model settings (``GET/PUT /v1/settings/model``): light to import — no agent stack here."""

from __future__ import annotations

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from sidecar.basemodel import Model


class ModelSettings(Model):
    """Which model to call and how patiently. camelCase on the API (``apiBase``), snake_case here.

    Attributes:
        model: LiteLLM model string, e.g. ``ollama_chat/qwen2.5:7b``, ``openai/gpt-4o-mini``,
            ``openai/local`` (any OpenAI-compatible server, with ``api_base``).
        api_base: base URL of the model server (``http://127.0.0.1:11434``,
            ``http://127.0.0.1:8080/v1``); ``None`` = the provider's default (hosted).
        api_key_secret: *name* of the secret holding the API key (the caller resolves it and
            passes the key itself to :class:`LiteLLMChatModel`); ``None`` = no key.
        temperature: sampling temperature 0–2; ``None`` = the provider's default.
        context_size: the model's context window in tokens (used for context compression and
            sent to Ollama as ``num_ctx``); ``None`` = LiteLLM's price map, else 8192.
        request_timeout_s: seconds from sending the request to the first streamed chunk (to the
            whole answer when not streaming).
        stall_timeout_s: seconds without a chunk, once streaming has started, before giving up.
        max_retries: retries after the first attempt for transient failures (0 = none).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_secret: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    context_size: int | None = Field(default=None, gt=0)
    request_timeout_s: float = Field(default=120.0, gt=0)
    stall_timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)


AGENT_PROMPTS_KEY = "agent_prompts"
#: Longest user instruction per prompt (characters): enough for a page of rules, bounded so a
#: prompt cannot crowd the conversation out of a small local model's context.
MAX_PROMPT_CHARS = 4000


class _Prompts(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class FloatingPrompts(_Prompts):
    """The user's instructions for the floating assistant, per domain."""

    tasks: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    notes: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    projects: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    timelines: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)


class AgentPrompts(_Prompts):
    """``GET/PUT /v1/settings/agent-prompts`` (the seed's ``settings.agent_prompts``): the user's own
    instructions, added to the system prompt after the fixed rules (tools, confirmation, safety),
    which they cannot override. ``extraction`` goes to the LLM extractor of watched folders.
    Each at most :data:`MAX_PROMPT_CHARS` characters; omitted = none."""

    home: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    floating: FloatingPrompts | None = None
    extraction: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)

    def for_mode(self, mode: str, domain: str | None) -> str:
        """The instructions for a run in ``mode`` (``home``, or ``floating`` in ``domain``)."""
        if mode == "home":
            return self.home or ""
        if self.floating is None or domain is None:
            return ""
        return getattr(self.floating, domain, None) or ""
