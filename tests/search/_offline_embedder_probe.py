"""Run in a fresh interpreter by test_embedders.py: load the bundled embedder with the network
refused. Every socket connect or name lookup raises (an audit hook installed before any other
import) and is recorded; prints one JSON line: what was attempted, load time, a similarity."""

from __future__ import annotations

import sys
from typing import Any

attempts: list[str] = []


def _refuse(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        attempts.append(f"{event} {args[1] if event == 'socket.connect' else args[0]}")
        raise OSError(f"network refused by the test: {event}")


sys.addaudithook(_refuse)

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


async def main() -> dict[str, Any]:
    from sidecar.search.embedders import EmbedderSettings, load_embedder

    t0 = time.perf_counter()
    embedder = await load_embedder(EmbedderSettings(), None)
    load_s = time.perf_counter() - t0
    assert embedder is not None
    v = await embedder.embed(["the deployment to production failed", "shipping the release to prod broke",
                              "a recipe for banana bread"])
    return {"attempts": attempts, "load_s": load_s, "dim": embedder.dim, "id": embedder.id,
            "related": float(v[0] @ v[1]), "unrelated": float(v[0] @ v[2])}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
