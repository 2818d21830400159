"""System prompts of the agent modes (DESIGN §4: ``home`` and ``floating``)."""

from __future__ import annotations

import datetime as dt

from sidecar import clock

_BASE = """You are the user's assistant inside a personal work app. You manage their tasks, \
projects, milestones (called timelines), notes and clients with the tools you have; every change \
you make is saved immediately on the user's device. Use tools to look things up instead of \
guessing ids. Give dates to tools as ISO 8601 (e.g. 2026-12-03 or 2026-12-03T15:00); they are in \
the user's time zone ({tz}). Today is {today}. Be brief. Deleting asks the user for confirmation; \
prefer archiving projects over deleting them."""

_HOME = """When you mention items that exist, embed entity tags so the app can show them: \
<task>[id1,id2]</task>, <project>[id]</project>, <note>[id]</note>, <timeline>[id]</timeline> \
with the real ids from tool results, e.g. "Your open tasks: <task>[a1,b2]</task>"."""

_FLOATING = """The user opened you from a {domain} view{entity}. Stay within {domain} unless \
asked otherwise."""

#: ``forwardedProps.scope.type`` → the domain the floating assistant works in
SCOPE_DOMAINS = {
    "task": "tasks", "tasks": "tasks",
    "note": "notes", "notes": "notes",
    "project": "projects", "projects": "projects",
    "timeline": "timelines", "timelines": "timelines",
}


def system_prompt(mode: str, *, domain: str | None = None, entity_id: str | None = None,
                  memory: dict[str, str] | None = None, recall: str = "") -> str:
    """The system prompt for a run in ``mode`` (``home`` or ``floating``) with core memory and
    ``recall`` (memory found relevant to this run, already formatted)."""
    tz = clock.local_timezone()
    parts = [_BASE.format(tz=getattr(tz, "key", str(tz)), today=dt.datetime.now(tz).date().isoformat())]
    if mode == "floating":
        entity = f" about the {domain.rstrip('s') if domain else 'item'} with id {entity_id}" if entity_id else ""
        parts.append(_FLOATING.format(domain=domain or "tasks", entity=entity))
    else:
        parts.append(_HOME)
    if memory:
        parts.append("What you know about the user (update with update_core_memory):\n"
                     + "\n".join(f"- {k}: {v}" for k, v in memory.items()))
    if recall:
        parts.append(recall)
    return "\n\n".join(parts)
