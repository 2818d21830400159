"""Search and memory in agent runs: the ``search`` tool, the memory that reaches each run's
context, and the episode and facts stored after it (an ``AgentService.extensions`` entry)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sidecar import clock
from sidecar.agent.tools import tool
from sidecar.search.documents import SEARCH_KINDS

if TYPE_CHECKING:
    from sidecar.search.service import SearchService


class SearchExtension:
    """What the agent's run lifecycle asks of search and memory (see ``sidecar.agent.runs``)."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    def tools(self) -> list[Callable[..., Awaitable[str]]]:
        """Tools added to every run, each declared with ``sidecar.agent.tools.tool``."""
        return [self.search, self.update_core_memory]

    async def core(self) -> dict[str, str] | None:
        """Core memory (None: memory is off, use the agent's own store)."""
        memory = self.service.memory
        return await memory.core() if memory.cipher is not None else None

    async def before_run(self, thread_id: str, user_text: str) -> str:
        """Memory for the run's context (relevant facts, patterns, recent episodes)."""
        return await self.service.memory.context(user_text)

    async def after_run(self, thread_id: str, run_id: str, status: str, user_text: str, assistant_text: str,
                        changed: int) -> None:
        await self.service.memory.after_run(thread_id, run_id, status, user_text, assistant_text, changed)

    @tool("*")
    async def search(self, query: str, kind: str | None = None, project_id: str | None = None) -> str:
        """Search everything the user has — notes, tasks, milestones, projects, task comments and
        files in watched folders — by words and by meaning. Use it to find what the user
        refers to ("my notes about the deployment", "what did we decide about the venue").

        Args:
            query: What to look for, in the user's words.
            kind: Only this kind: note, task, timeline, project, comment or file.
            project_id: Only items of this project.
        """
        if kind is not None and kind not in SEARCH_KINDS:
            return f"Error: kind must be one of {', '.join(SEARCH_KINDS)}."
        if not query.strip():
            return "Error: query must not be empty."
        hits, mode = await self.service.search(query, kind=kind, project_id=project_id, limit=8)
        if not hits:
            return f"No results for {query!r}."
        lines = [f"{len(hits)} result(s) ({mode} search):"]
        tz = clock.local_timezone()
        for h in hits:
            when = ""
            if h.get("date"):
                when = " · " + dt.datetime.fromtimestamp(h["date"] / 1000, tz).date().isoformat()
            where = f" · {h['source']['path']}" if h.get("source") else ""
            text = " ".join(h["snippet"].split())[:160]
            lines.append(f"- [{h['kind']} {h['entityId']}] {h['title']}{when}{where}: {text}")
        return "\n".join(lines)

    @tool("*")
    async def update_core_memory(self, key: str, value: str) -> str:
        """Remember a lasting fact or preference about the user (an empty value forgets it).

        Args:
            key: Short name of the fact, e.g. "preferred_language" or "working_hours".
            value: What to remember, in a sentence.
        """
        key = key.strip()
        if not key or len(key) > 100:
            return "Error: key must be 1-100 characters."
        if len(value) > 2000:
            return "Error: value must be at most 2000 characters."
        memory = self.service.memory
        if memory.cipher is None:
            return f"Error: memory is off ({memory.reason})."
        await memory.set_core(key, value.strip())
        return f"Remembered {key}." if value.strip() else f"Forgot {key}."


