"""The benchmark's peer: AgentScope Runtime's ``AgentApp`` serving an AgentScope ``ReActAgent``
over AG-UI (its ``/ag-ui`` endpoint), the model being the same scripted OpenAI-compatible server
the sidecar is measured against. Runs in the peer environment (``tests/bench/peer``), never in
the sidecar's; started by ``tests/bench/bench_agent.py``.

    python agentapp_server.py --model-url http://127.0.0.1:PORT/v1

Binds 127.0.0.1 port 0 and prints one JSON line ``{"port": N}`` once it serves. The agent is set
up as in the runtime's quick start (ReActAgent, OpenAIChatModel streaming, in-memory memory,
``stream_printing_messages``), with no tools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from typing import Any


def build_app(model_url: str) -> Any:
    from agentscope.agent import ReActAgent
    from agentscope.formatter import OpenAIChatFormatter
    from agentscope.memory import InMemoryMemory
    from agentscope.model import OpenAIChatModel
    from agentscope.pipeline import stream_printing_messages
    from agentscope.tool import Toolkit
    from agentscope_runtime.engine import AgentApp

    app = AgentApp(app_name="bench-peer", app_description="AG-UI relay benchmark peer")

    @app.query(framework="agentscope")
    async def query(self: Any, msgs: Any, request: Any = None, **kwargs: Any) -> Any:
        agent = ReActAgent(
            name="assistant", sys_prompt="You are a helpful assistant.",
            model=OpenAIChatModel(model_name="fake-model", api_key="unused", stream=True,
                                  client_kwargs={"base_url": model_url}),
            formatter=OpenAIChatFormatter(), memory=InMemoryMemory(), toolkit=Toolkit())
        async for msg, last in stream_printing_messages(agents=[agent], coroutine_task=agent(msgs)):
            yield msg, last

    return app


async def serve(model_url: str) -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build_app(model_url), log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-url", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args.model_url))


if __name__ == "__main__":
    main()
