"""A small Server-Sent Events reader for tests (parses the stream as a browser would)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Reads events from an aiohttp response whose body is ``text/event-stream``."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.comments: list[str] = []
        self.raw = bytearray()

    async def next(self, timeout: float = 5.0) -> SseEvent:
        """The next dispatched event (comments are collected in ``self.comments``)."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> SseEvent:
        ev = SseEvent()
        data_lines: list[str] = []
        has_field = False
        while True:
            line_b = await self.resp.content.readline()
            if not line_b:
                raise EOFError("stream ended")
            self.raw += line_b
            line = line_b.decode().rstrip("\n")
            if line.endswith("\r"):
                raise AssertionError("CR in SSE framing; expected LF only")
            if line == "":
                if has_field:
                    ev.data = "\n".join(data_lines)
                    return ev
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            has_field = True
            if name == "data":
                data_lines.append(value)
            elif name == "event":
                ev.event = value
            elif name == "id":
                ev.id = value
