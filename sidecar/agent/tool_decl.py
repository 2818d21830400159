"""Declaring agent tools: the :func:`tool` decorator (a tool's domains and whether it needs the
user's confirmation, declared once on its method), and the per-run :class:`ToolScope` the shared
tools report to (through the :data:`CURRENT_SCOPE` context variable)."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec

from pydantic.alias_generators import to_snake

from sidecar.errors import SidecarError, ValidationFailed
from sidecar.store.db import ChangeEntry
from sidecar.store.models import Row

P = ParamSpec("P")


def tool_errors(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
    """Turn a failure into ``Error: …`` text for the model instead of ending the run."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await fn(*args, **kwargs)
        except ValidationFailed as exc:
            problems = "; ".join(
                f"{to_snake(d['field']) if d['field'] else 'arguments'}: {d['message']}" for d in exc.detail or []
            )
            return f"Error: {problems or exc.message}. Fix the arguments and try again."
        except SidecarError as exc:
            return f"Error: {exc.message}."
        except ValueError as exc:
            return f"Error: {exc}."

    return wrapper


#: The floating-mode domains (``forwardedProps.scope``); home mode offers every tool.
DOMAINS = ("tasks", "notes", "projects", "timelines")


@dataclass(frozen=True)
class ToolSpec:
    """A tool's declaration: its name (the method's), the floating domains that offer it, and
    whether it destroys data (then it runs only after the user confirms: an AG-UI interrupt)."""

    name: str
    domains: frozenset[str]
    confirm: bool


def tool(*domains: str, confirm: bool = False) -> Callable[[Callable[P, Awaitable[str]]], Callable[P, Awaitable[str]]]:
    """Declare a method as an agent tool: offered in home mode and in floating ``domains``
    (``"*"`` = all of them); ``confirm=True`` for tools that destroy data. Failures become
    ``Error: …`` text for the model (:func:`tool_errors`).

    Raises:
        ValueError: an unknown domain (at import time).
    """
    wanted = frozenset(DOMAINS if "*" in domains else domains)
    if not wanted or wanted - set(DOMAINS):
        raise ValueError(f"tool domains must be among {DOMAINS}: {domains}")

    def declare(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
        wrapped = tool_errors(fn)
        wrapped.__tool_spec__ = ToolSpec(fn.__name__, wanted, confirm)  # type: ignore[attr-defined]
        return wrapped

    return declare


def declared_tools(owner: object) -> list[ToolSpec]:
    """The tools declared on a class (or an instance's class), in definition order."""
    cls = owner if isinstance(owner, type) else type(owner)
    seen: dict[str, ToolSpec] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            spec = getattr(value, "__tool_spec__", None)
            if isinstance(spec, ToolSpec):
                seen[spec.name] = spec
    return list(seen.values())


@dataclass
class ToolScope:
    """What one run's tools produce besides their text: the change-log entries they caused (in
    commit order) and the rows they showed the model, by ``(entity, id)`` (the row objects: they
    are dumped only if an ``entity_ref`` block names them, see :meth:`shown_row`)."""

    changes: list[ChangeEntry] = field(default_factory=list)
    shown: dict[tuple[str, str], Row] = field(default_factory=dict)

    def shown_row(self, entity: str, row_id: str) -> dict[str, Any] | None:
        """A row this run's tools showed, as the API dumps it (camelCase), or None."""
        row = self.shown.get((entity, row_id))
        return row.model_dump(mode="json", by_alias=True) if row is not None else None


#: The scope of the run whose task is calling the tools (one toolkit serves every run).
CURRENT_SCOPE: contextvars.ContextVar[ToolScope | None] = contextvars.ContextVar("sidecar_tool_scope", default=None)


def record_changes(entries: list[ChangeEntry]) -> None:
    """``Repository(on_commit=…)`` of the shared toolkit: the entries go to the calling run."""
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        scope.changes.extend(entries)


def shown(entity: str, row: Row) -> None:
    """Record a row a tool showed the model (for ``entity_ref`` blocks). Kept as the object: a
    listing shows up to 50 rows per call, and dumping each here cost more than the call's query."""
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        scope.shown[(entity, row.id)] = row
