"""Run in a fresh interpreter by test_offline.py: audit every socket the model layer opens.

Usage: ``python -m tests.agent._offline_probe BASE_URL``. Installs a ``sys.addaudithook`` before
any other import, imports the model layer, makes one streaming call with tools and one call that
fails with 401, then prints exactly one JSON line: the audited socket events and LiteLLM's
price-list source.
"""

from __future__ import annotations

import sys
from typing import Any

events: list[list[Any]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple):
            events.append(["connect", str(address[0]), int(address[1])])
        else:
            events.append(["connect", str(address), 0])
    elif event == "socket.getaddrinfo":
        events.append(["getaddrinfo", str(args[0]), args[1]])


sys.addaudithook(_audit)

import asyncio  # noqa: E402
import json  # noqa: E402


async def main(base_url: str) -> dict[str, Any]:
    from agentscope.message import UserMsg

    from sidecar.agent.model import LiteLLMChatModel, ModelError, ModelSettings

    model = LiteLLMChatModel(ModelSettings(model="openai/fake-model", api_base=base_url, max_retries=0))
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    final = await model.complete([UserMsg("user", "hi")], tools=[tool])
    error = None
    try:
        await model.complete([UserMsg("user", "again")])
    except ModelError as exc:
        error = exc.code

    from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info

    return {
        "events": events,
        "cost_map": get_model_cost_map_source_info(),
        "blocks": [b.type for b in final.content],
        "error": error,
    }


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1]))
    sys.stdout.write(json.dumps(result, default=str) + "\n")
