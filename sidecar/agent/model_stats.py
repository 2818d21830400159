"""What a model call cost (tokens, US dollars, ms) and where the model runs (local or hosted)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from sidecar.agent.litellm_env import import_litellm
from sidecar.agent.settings import ModelSettings

#: Context size assumed when neither the settings nor LiteLLM's price map know the model.
DEFAULT_CONTEXT_SIZE = 8192
_LOCAL_PROVIDERS = ("ollama", "ollama_chat", "lm_studio", "llamafile", "hosted_vllm", "vllm")


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



@dataclass
class CallRecord:
    """Mutable bookkeeping for one model call (all attempts)."""

    model: str
    started: float
    first_chunk: float | None = None
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reported: bool = False



def provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def is_local(settings: ModelSettings) -> bool:
    if provider(settings.model) in _LOCAL_PROVIDERS:
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


def known_context_size(model: str) -> int | None:
    """Context window from LiteLLM's bundled map (a dict lookup: no network)."""
    litellm = import_litellm()
    for key in (model, model.split("/", 1)[-1]):
        info = litellm.model_cost.get(key)
        if isinstance(info, dict):
            size = info.get("max_input_tokens") or info.get("max_tokens")
            if isinstance(size, int) and size > 0:
                return size
    return None


def cached_tokens(usage: Any) -> int:
    details = getattr(usage, "prompt_tokens_details", None)
    return int(getattr(details, "cached_tokens", 0) or 0) if details else 0
