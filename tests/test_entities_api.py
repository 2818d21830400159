"""Entity routes over real HTTP: happy paths, 404, 422, 415, 413, 400 for every resource."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Api, auth


@dataclass
class Case:
    name: str
    create: Callable[[Api], Awaitable[tuple[str, dict[str, Any]]]]  # → (collection path, body)
    patch: dict[str, Any]
    bad_enum: dict[str, Any] | None
    wrong_type: dict[str, Any]
    missing_required: dict[str, Any]


async def _project(api: Api) -> str:
    return str((await api.ok("POST", "/v1/projects", {"name": "Launch"}, status=201))["id"])


async def _tasks(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/tasks", {"title": "Write report", "priority": "high", "assignee": ["ana"], "dueDate": 1796256000000}


async def _projects(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/projects", {"name": "Website"}


async def _timelines(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/timelines", {"projectId": await _project(api), "title": "Beta", "date": 1796256000000}


async def _notes(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/notes", {"title": "Kickoff", "content": "# Notes\n- a"}


async def _clients(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/clients", {"name": "Acme", "industry": "Retail"}


async def _comments(api: Api) -> tuple[str, dict[str, Any]]:
    task = await api.ok("POST", "/v1/tasks", {"title": "Parent"}, status=201)
    return f"/v1/tasks/{task['id']}/comments", {"author": "ana", "content": "Looks good"}


CASES = [
    Case("tasks", _tasks, {"status": "done"}, {"priority": "urgent"}, {"title": 5}, {"description": "no title"}),
    Case("projects", _projects, {"status": "archived"}, {"status": "closed"}, {"name": ["x"]}, {}),
    Case("timelines", _timelines, {"title": "GA"}, None, {"date": "soon"}, {"title": "no project"}),
    Case("notes", _notes, {"content": "changed"}, None, {"content": 3.5}, {"content": "no title"}),
    Case("clients", _clients, {"industry": "Energy"}, None, {"name": {"a": 1}}, {"industry": "x"}),
    Case("comments", _comments, {"content": "edited"}, None, {"author": False}, {"author": "ana"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_crud_happy_path(api: Api, case: Case) -> None:
    base, body = await case.create(api)
    created = await api.ok("POST", base, body, status=201)
    assert created["id"] and created["createdAt"] > 0
    for key, value in body.items():
        assert created[key] == value
    got = await api.ok("GET", f"{base}/{created['id']}")
    assert got == created
    patched = await api.ok("PATCH", f"{base}/{created['id']}", case.patch)
    for key, value in case.patch.items():
        assert patched[key] == value
    if "updatedAt" in created:
        assert patched["updatedAt"] >= created["updatedAt"]
    listing = await api.ok("GET", base)
    assert created["id"] in [i["id"] for i in listing["items"]]
    assert await api.ok("DELETE", f"{base}/{created['id']}") == {"deleted": created["id"]}
    status, err = await api.call("GET", f"{base}/{created['id']}")
    assert status == 404 and err["error"]["code"] == "not_found"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_errors(api: Api, case: Case) -> None:
    base, body = await case.create(api)
    missing = "00000000-0000-0000-0000-000000000000"
    for method in ("GET", "PATCH", "DELETE"):
        status, err = await api.call(method, f"{base}/{missing}", case.patch if method == "PATCH" else None)
        assert status == 404, method
        assert err["error"]["code"] == "not_found"
    for bad in filter(None, (case.bad_enum, case.wrong_type)):
        status, err = await api.call("POST", base, {**body, **bad})
        assert status == 422, bad
        assert {d["field"] for d in err["error"]["detail"]} == set(bad)
    status, err = await api.call("POST", base, case.missing_required)
    assert status == 422 and err["error"]["detail"]
    status, err = await api.call("POST", base, {**body, "unknownField": 1})
    assert status == 422 and err["error"]["detail"][0]["field"] == "unknownField"
    resp = await api.client.post(base, data="x", headers=auth({"Content-Type": "text/plain"}))
    assert resp.status == 415
    resp = await api.client.post(base, data=b"{" * 10, headers=auth({"Content-Type": "application/json"}))
    assert resp.status == 400
    huge = {**body, "title": "x" * (2 << 20)}
    status, err = await api.call("POST", base, huge)
    assert status == 413
    created = await api.ok("POST", base, body, status=201)
    if case.bad_enum:
        status, err = await api.call("PATCH", f"{base}/{created['id']}", case.bad_enum)
        assert status == 422
    status, err = await api.call("PATCH", f"{base}/{created['id']}", case.wrong_type)
    assert status == 422


async def test_task_filters_search_order_and_pages(api: Api) -> None:
    project = await _project(api)
    specs = [
        ("Pay invoice", "todo", "high", 3, True),
        ("Email Bob", "done", "low", 1, False),
        ("Write 100% plan_v2", "in_progress", "medium", 2, True),
        ("Review invoice draft", "todo", "low", None, False),
    ]
    for title, status, prio, due, in_project in specs:
        body: dict[str, Any] = {"title": title, "status": status, "priority": prio}
        if due:
            body["dueDate"] = due * 86_400_000
        if in_project:
            body["projectId"] = project
        await api.ok("POST", "/v1/tasks", body, status=201)
    titles = lambda page: [i["title"] for i in page["items"]]  # noqa: E731
    assert titles(await api.ok("GET", f"/v1/tasks?projectId={project}&orderBy=title&order=asc")) == ["Pay invoice", "Write 100% plan_v2"]
    assert titles(await api.ok("GET", "/v1/tasks?status=todo&orderBy=title&order=asc")) == ["Pay invoice", "Review invoice draft"]
    assert titles(await api.ok("GET", "/v1/tasks?q=INVOICE&orderBy=title&order=asc")) == ["Pay invoice", "Review invoice draft"]
    assert titles(await api.ok("GET", "/v1/tasks?q=100%25")) == ["Write 100% plan_v2"]  # % is literal
    assert titles(await api.ok("GET", "/v1/tasks?q=_")) == ["Write 100% plan_v2"]  # _ is literal
    assert titles(await api.ok("GET", f"/v1/tasks?dueFrom={2 * 86_400_000}&dueTo={3 * 86_400_000}&orderBy=dueDate&order=asc")) == ["Write 100% plan_v2", "Pay invoice"]
    assert titles(await api.ok("GET", "/v1/tasks?orderBy=priority&order=desc"))[0] == "Pay invoice"
    assert titles(await api.ok("GET", "/v1/tasks?orderBy=dueDate&order=asc"))[-1] == "Review invoice draft"  # nulls last
    page = await api.ok("GET", "/v1/tasks?limit=2&offset=2&orderBy=title&order=asc")
    assert page["total"] == 4 and titles(page) == ["Review invoice draft", "Write 100% plan_v2"]
    assert (await api.ok("GET", "/v1/tasks?isApproved=true"))["total"] == 4
    for bad in ("status=later", "limit=0", "limit=abc", "orderBy=secret", "dueFrom=-1", "bogus=1"):
        status, _err = await api.call("GET", f"/v1/tasks?{bad}")
        assert status == 422, bad


async def test_ai_suggestion_approval_and_reference_rules(api: Api) -> None:
    task = await api.ok("POST", "/v1/tasks", {"title": "Suggested", "isAiSuggested": True, "isApproved": False}, status=201)
    assert (await api.ok("GET", "/v1/tasks?isAiSuggested=true&isApproved=false"))["total"] == 1
    approved = await api.ok("PATCH", f"/v1/tasks/{task['id']}", {"isApproved": True})
    assert approved["isApproved"] is True and approved["isAiSuggested"] is True
    status, err = await api.call("POST", "/v1/tasks", {"title": "x", "projectId": "missing-project"})
    assert status == 422 and err["error"]["detail"][0]["field"] == "projectId"
    status, err = await api.call("PATCH", f"/v1/tasks/{task['id']}", {"title": None})
    assert status == 422
    status, err = await api.call("POST", "/v1/timelines", {"title": "x", "date": 1, "projectId": "nope"})
    assert status == 422
    parent = await api.ok("POST", "/v1/clients", {"name": "Parent"}, status=201)
    child = await api.ok("POST", "/v1/clients", {"name": "Child", "parentId": parent["id"]}, status=201)
    status, err = await api.call("PATCH", f"/v1/clients/{parent['id']}", {"parentId": child["id"]})
    assert status == 422 and "ancestor" in err["error"]["detail"][0]["message"]


async def test_deleting_a_project_cascades_through_the_write_path(api: Api) -> None:
    project = await _project(api)
    task = await api.ok("POST", "/v1/tasks", {"title": "In project", "projectId": project}, status=201)
    timeline = await api.ok("POST", "/v1/timelines", {"title": "M", "date": 5, "projectId": project}, status=201)
    await api.ok("DELETE", f"/v1/projects/{project}")
    assert (await api.ok("GET", f"/v1/tasks/{task['id']}"))["projectId"] is None
    status, _ = await api.call("GET", f"/v1/timelines/{timeline['id']}")
    assert status == 404


async def test_comment_scoped_to_its_task(api: Api) -> None:
    t1 = await api.ok("POST", "/v1/tasks", {"title": "One"}, status=201)
    t2 = await api.ok("POST", "/v1/tasks", {"title": "Two"}, status=201)
    c = await api.ok("POST", f"/v1/tasks/{t1['id']}/comments", {"author": "a", "content": "hi"}, status=201)
    assert c["taskId"] == t1["id"]
    c2 = await api.ok("POST", f"/v1/tasks/{t1['id']}/comments", {"author": "a", "content": "x", "taskId": t2["id"]}, status=201)
    assert c2["taskId"] == t1["id"]  # the path decides, not the body
    status, _ = await api.call("GET", f"/v1/tasks/{t2['id']}/comments/{c['id']}")
    assert status == 404
    status, _ = await api.call("POST", "/v1/tasks/nope/comments", {"author": "a", "content": "x"})
    assert status == 404
    assert (await api.ok("GET", f"/v1/tasks/{t2['id']}/comments"))["total"] == 0
    await api.ok("DELETE", f"/v1/tasks/{t1['id']}")
    status, _ = await api.call("GET", f"/v1/tasks/{t1['id']}/comments/{c['id']}")
    assert status == 404
