"""Helpers for agent-run tests: start runs over real HTTP and collect their AG-UI events."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.conftest import Api, auth
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply
from tests.schema_check import check_document
from tests.sse import SseReader


def run_input(thread_id: str, text: str | None, *, run_id: str | None = None, mode: str = "home",
              scope: dict[str, Any] | None = None, resume: list[dict[str, Any]] | None = None,
              history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A camelCase AG-UI RunAgentInput body."""
    messages = list(history or [])
    if text is not None:
        messages.append({"id": str(uuid.uuid4()), "role": "user", "content": text})
    props: dict[str, Any] = {"mode": mode}
    if scope is not None:
        props["scope"] = scope
    body: dict[str, Any] = {"threadId": thread_id, "runId": run_id or str(uuid.uuid4()), "state": None,
                            "messages": messages, "tools": [], "context": [], "forwardedProps": props}
    if resume is not None:
        body["resume"] = resume
    return body


async def configure_model(api: Api, fake: FakeLLMServer, **extra: Any) -> None:
    await api.ok("PUT", "/v1/settings/model", {"model": "openai/fake-model", "apiBase": fake.base_url,
                                               "stallTimeoutS": 2, "requestTimeoutS": 5, **extra})


async def run(api: Api, body: dict[str, Any], timeout: float = 20) -> list[dict[str, Any]]:
    """POST a run and read its whole event stream; returns the decoded AG-UI events."""
    resp = await api.client.post("/v1/agent/runs", data=json.dumps(body), headers=auth({"Content-Type": "application/json"}))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(resp)
    events = []
    while True:
        try:
            ev = await reader.next(timeout=timeout)
        except EOFError:
            break
        data = ev.json()
        if data["type"] == "CUSTOM":  # our custom events must match schemas/
            check_document(f"agui.custom.{data['name']}", data)
        events.append(data)
    assert b"\r" not in reader.raw
    return events


async def delete_then_approve(api: Api, fake: FakeLLMServer, thread_id: str, request: str, call_id: str,
                              after: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A task, a run asking the model to delete it (``delete_task`` needs confirmation, so the
    run ends interrupted), then the resumed run approving that call, after which the model says
    ``after``. Returns the task and the resumed run's events."""
    await configure_model(api, fake)
    task = await api.ok("POST", "/v1/tasks", {"title": "Old"}, status=201)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="delete_task", arguments={"task_id": task["id"]}, id=call_id)]),
              TextReply(text=after))
    await run(api, run_input(thread_id, request))
    events = await run(api, run_input(thread_id, None, resume=[{"interruptId": call_id, "status": "resolved",
                                                               "payload": {"approved": True}}]))
    return task, events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")


def assert_terminal_rules(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Exactly one terminal event, last, right after the mutations event; returns it."""
    kinds = types(events)
    assert kinds[0] == "RUN_STARTED", kinds
    terminals = [i for i, k in enumerate(kinds) if k in ("RUN_FINISHED", "RUN_ERROR")]
    assert terminals == [len(kinds) - 1], kinds
    assert events[-2]["type"] == "CUSTOM" and events[-2]["name"] == "mutations", kinds
    return events[-1]
