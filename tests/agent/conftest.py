"""Fixtures for the model layer: a real fake LLM server on loopback and a model factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar.agent.model import LiteLLMChatModel, ModelCallStats, ModelSettings
from tests.fakes.llm_server import FakeLLMServer


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    """A started :class:`FakeLLMServer` on 127.0.0.1 (OS-chosen port)."""
    async with FakeLLMServer() as server:
        yield server


class ModelFactory:
    """Builds :class:`LiteLLMChatModel` instances pointed at the fake; keeps their call stats."""

    def __init__(self, fake: FakeLLMServer) -> None:
        self.fake = fake
        self.stats: list[ModelCallStats] = []

    def __call__(
        self, *, api_key: str | None = None, stream: bool = True, **settings: Any
    ) -> LiteLLMChatModel:
        values: dict[str, Any] = {"model": "openai/fake-model", "api_base": self.fake.base_url}
        values.update(settings)
        return LiteLLMChatModel(
            ModelSettings(**values),
            api_key=api_key,
            stream=stream,
            on_call_end=self.stats.append,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
        )


@pytest.fixture
def make_model(fake_llm: FakeLLMServer) -> ModelFactory:
    """``make_model(**settings)`` → a model on the fake server (fast backoff); see ``.stats``."""
    return ModelFactory(fake_llm)


@pytest.fixture(scope="session", autouse=True)
def _agent_stack_loaded() -> None:
    """Import the agent stack once before the first test: on a loaded 2-core machine the first
    import takes 10-20 s, which would otherwise eat the first run's event timeout."""
    from sidecar.agent.stack import import_agent_stack

    import_agent_stack()
