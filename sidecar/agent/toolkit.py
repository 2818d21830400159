"""Each mode's tools, built once (building a tool's schema from its signature and docstring is
the slow part: about 0.3 s for all of them), and the shell's client-side tools of a run.

One :class:`~sidecar.agent.tools.StoreTools` over one repository serves every run; what a run's
tools cause (change-log entries, rows shown) goes to that run's ``ToolScope`` through a context
variable (``tools.CURRENT_SCOPE``), set in the run's task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from sidecar.agent.tools import DOMAINS, StoreTools, ToolSpec, declared_tools, record_changes
from sidecar.store.db import Store
from sidecar.store.repository import Repository

if TYPE_CHECKING:
    from ag_ui.core import Tool


class AgentToolkits:
    """The AgentScope ``FunctionTool`` lists per mode (``None`` = home, else a floating domain),
    built on first use or by :meth:`ready`; ``extensions`` add their declared tools (a tool
    of the same name replaces the store's)."""

    def __init__(self, store: Store, extensions: list[Any]) -> None:
        self.store = store
        self.extensions = extensions
        self._tools: dict[str | None, list[Any]] = {}
        self._specs: list[ToolSpec] = []
        self._store_tools: StoreTools | None = None
        self._building: asyncio.Future[None] | None = None

    async def ready(self) -> None:
        """Build every mode's tools in a worker thread (once; later callers wait for the same
        build): ~0.3-0.5 s of schema building that would otherwise stall the event loop, and
        with it every request, the first run's ``RUN_STARTED`` included. The agent stack must
        be loaded (``stack.load_agent_stack``)."""
        if self._building is None or (self._building.done() and self._building.exception() is not None):
            self._building = asyncio.ensure_future(asyncio.to_thread(self.build_all))  # (again, after a failure)
        await asyncio.shield(self._building)

    @property
    def store_tools(self) -> StoreTools:
        if self._store_tools is None:
            self._store_tools = StoreTools(Repository(self.store, on_commit=record_changes))
        return self._store_tools

    def build_all(self) -> None:
        """Build every mode's tools now (blocking; :meth:`ready` runs it off the event loop)."""
        for domain in (None, *DOMAINS):
            self.tools(domain)

    def tools(self, domain: str | None) -> list[Any]:
        """The ``FunctionTool`` objects offered in home mode (``None``) or a floating domain."""
        built = self._tools.get(domain)
        if built is None:
            built = self._tools[domain] = self._build(domain)
        return built

    def _declared(self) -> Iterable[tuple[ToolSpec, Callable[..., Awaitable[str]]]]:
        store_tools = self.store_tools
        found = {spec.name: (spec, getattr(store_tools, spec.name)) for spec in declared_tools(StoreTools)}
        for ext in self.extensions:
            for fn in ext.tools():
                spec = getattr(fn, "__tool_spec__", None)
                if not isinstance(spec, ToolSpec):
                    raise TypeError(f"extension tool {fn!r} is not declared with sidecar.agent.tools.tool")
                found.pop(spec.name, None)
                found[spec.name] = (spec, fn)
        return found.values()

    def _build(self, domain: str | None) -> list[Any]:
        if domain is not None:  # the same tool objects as home mode's: each schema is built once
            home = self.tools(None)
            return [t for t, spec in zip(home, self._specs, strict=True) if domain in spec.domains]
        from agentscope.permission import PermissionBehavior, PermissionDecision
        from agentscope.tool import FunctionTool

        allow = PermissionDecision(behavior=PermissionBehavior.ALLOW, message="safe tool on the local store")
        declared = list(self._declared())
        self._specs = [spec for spec, _ in declared]
        # Tools that need confirmation get no permission (AgentScope's default: ASK the user); the
        # others are allowed. Not concurrency-safe, so mutations land in the change log in call order.
        tools = [FunctionTool(fn, name=spec.name, is_concurrency_safe=False,  # type: ignore[arg-type]  # str results
                              permission=None if spec.confirm else allow)
                 for spec, fn in declared]
        # Each schema checked and its validator compiled here (in the build thread, see ready()),
        # not at each tool's first call, where it cost 5-15 ms on the event loop.
        from sidecar.agent.tool_args import compiled_validator

        for t in tools:
            compiled_validator(t.input_schema)
        return tools


def client_tools(tools: list[Tool], taken: set[str]) -> list[Any]:
    """The shell's ``RunAgentInput.tools`` as AgentScope external tools: offered to the model, and a
    call to one ends the run with that call for the shell to execute (AG-UI human-in-the-loop).
    A client tool named like one of ours (``taken``) is left out: ours act on the local store."""
    from agentscope.permission import PermissionBehavior, PermissionDecision
    from agentscope.tool import ToolBase

    class ClientTool(ToolBase):
        is_external_tool = True
        is_concurrency_safe = False
        is_read_only = True

        def __init__(self, spec: Tool) -> None:
            super().__init__()
            self.name = spec.name
            self.description = spec.description
            params = spec.parameters if isinstance(spec.parameters, dict) else {}
            self.input_schema = {"type": "object", "properties": {}, **params}

        async def check_permissions(self, tool_input: dict[str, Any], context: Any) -> PermissionDecision:
            # the shell runs it, and asks the user itself if it needs to
            return PermissionDecision(behavior=PermissionBehavior.ALLOW, message="executed by the shell")

    return [ClientTool(t) for t in tools if t.name not in taken]
