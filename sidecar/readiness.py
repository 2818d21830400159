"""Component readiness for ``GET /v1/ready`` (DESIGN §1.3)."""

from __future__ import annotations

from typing import Literal

from sidecar.basemodel import Model

State = Literal["starting", "ok", "degraded", "error", "disabled"]

#: Components the shell expects, in this order.
COMPONENTS: tuple[str, ...] = ("store", "agent", "vectors", "watcher", "sync", "secrets")


class ComponentStatus(Model):
    """One component's state and a human-readable detail."""

    state: State
    detail: str


class Readiness:
    """Holds each component's current status; parts update their own entry as they start."""

    def __init__(self) -> None:
        self._status: dict[str, ComponentStatus] = {
            name: ComponentStatus(state="disabled", detail="not part of this build yet") for name in COMPONENTS
        }

    def set(self, component: str, state: State, detail: str) -> None:
        """Record ``component``'s state (a new component name is added at the end)."""
        self._status[component] = ComponentStatus(state=state, detail=detail)

    def get(self, component: str) -> ComponentStatus:
        """The component's status. Raises KeyError for an unknown component."""
        return self._status[component]

    def snapshot(self) -> dict[str, ComponentStatus]:
        """A copy of every component's status."""
        return dict(self._status)

    @property
    def ready(self) -> bool:
        """True once the store is ok and no component is still starting."""
        return self._status["store"].state == "ok" and all(s.state != "starting" for s in self._status.values())
