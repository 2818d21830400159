"""Every agent tool on a real store: what it changes, what it tells the model, how it fails."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from sidecar import clock
from sidecar.agent.tools import (
    DESTRUCTIVE_TOOLS,
    DOMAIN_TOOLS,
    TOOL_NAMES,
    StoreTools,
    ToolSpec,
    declared_tools,
    tool,
)
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input
from tests.conftest import Api
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply

TZ = ZoneInfo("Europe/Berlin")


def _id(text: str) -> str:
    match = re.search(r"\[([0-9a-f-]{36})\]", text)
    assert match, text
    return match.group(1)


@pytest.fixture
def tools(repo: Repository) -> StoreTools:
    return StoreTools(repo, TZ)


async def test_task_tools(tools: StoreTools, repo: Repository, store: Store) -> None:
    out = await tools.create_task("Send invoice", description="to ACME", priority="high", assignees=["ana", "bo"],
                                  due_date="2026-12-03T15:00")
    task_id = _id(out)
    task = await repo.get("tasks", task_id)
    assert task.due_date == int(dt.datetime(2026, 12, 3, 15, 0, tzinfo=TZ).timestamp() * 1000)  # type: ignore[attr-defined]
    assert "due=2026-12-03T15:00+01:00" in out and "assignees=ana,bo" in out
    assert "Send invoice" in await tools.list_tasks(search="invoice")
    assert "No tasks found." == await tools.list_tasks(status="done")
    out = await tools.update_task(task_id, status="in_progress", due_date="2026-12-04")
    assert "status=in_progress" in out and "due=2026-12-04T00:00" in out
    assert (await tools.update_task(task_id)).startswith("Error: give at least one field")
    comment = _id(await tools.add_task_comment(task_id, "ana", "sent a draft"))
    assert "ana" in await tools.list_task_comments(task_id) and "sent a draft" in await tools.list_task_comments(task_id)
    assert "Deleted comment" in await tools.delete_task_comment(comment)
    assert "Deleted task" in await tools.delete_task(task_id)
    ops = [(e.entity, e.op) for e in await store.changes_after(0)]
    assert ops == [("tasks", "insert"), ("tasks", "update"), ("taskComments", "insert"), ("taskComments", "delete"),
                   ("tasks", "delete")]


async def test_a_long_listing_says_more_than_instead_of_counting_every_match(tools: StoreTools, repo: Repository) -> None:
    """A text search counted all of a large store's matches (~2 ms for 10,000 tasks) for a total
    the model does not need: past COUNT_UPTO it reads "more than"; below, the exact total."""
    from sidecar.agent.tools import COUNT_UPTO

    async with repo.transaction() as tx:
        for i in range(COUNT_UPTO + 30):
            await tx.create("tasks", {"title": f"invoice {i}" if i < 120 else f"report {i}"})
    many = await tools.list_tasks()
    assert many.startswith(f"More than {COUNT_UPTO} tasks (showing 50;"), many.splitlines()[0]
    assert len(many.splitlines()) == 51
    some = await tools.list_tasks(search="invoice")
    assert some.startswith("120 tasks (showing 50 of 120):"), some.splitlines()[0]
    # counting stopped one past the bound; the API's own listing still counts exactly
    _, capped = await repo.list("tasks", {"limit": 1}, count_upto=COUNT_UPTO)
    assert capped == COUNT_UPTO + 1
    _, total = await repo.list("tasks", {"limit": 1})
    assert total == COUNT_UPTO + 30


async def test_due_today_uses_the_users_day(tools: StoreTools) -> None:
    today = dt.datetime.now(TZ).date()
    await tools.create_task("today", due_date=today.isoformat() + "T10:00")
    await tools.create_task("late", due_date=(today - dt.timedelta(days=2)).isoformat())
    await tools.create_task("later", due_date=(today + dt.timedelta(days=3)).isoformat())
    await tools.create_task("done today", due_date=today.isoformat(), status="done")
    out = await tools.list_tasks_due_today()
    due, _, overdue = out.partition("overdue")
    assert "today" in due and "late" not in due and "later" not in out and "done today" not in out
    assert "late" in overdue


async def test_project_timeline_note_client_tools(tools: StoreTools, repo: Repository) -> None:
    client = _id(await tools.create_client("ACME", industry="Retail"))
    assert "ACME" in await tools.list_clients()
    project = _id(await tools.create_project("Website", client_id=client))
    assert "Website" in await tools.list_projects(client_id=client)
    milestone = _id(await tools.create_timeline(project, "Beta", "2027-01-15"))
    assert "Beta date=2027-01-15" in await tools.list_timelines(project)
    assert "GA" in await tools.update_timeline(milestone, title="GA")
    note = _id(await tools.create_note("Kickoff", "# Goals\n- ship", project_id=project))
    assert "# Goals" in await tools.get_note(note)
    assert "Kickoff" in await tools.list_notes(project)
    assert "changed" in await tools.update_note(note, content="changed") and "changed" in await tools.get_note(note)
    await tools.create_task("t1", project_id=project)
    summary = await tools.get_project(project)
    assert "1 tasks (1 todo), 1 milestones, 1 notes" in summary
    assert "status=archived" in await tools.update_project(project, status="archived")
    assert "Website" not in await tools.list_projects() and "Website" in await tools.list_projects(include_archived=True)
    assert "Website" in await tools.list_all_projects()
    assert "Deleted milestone" in await tools.delete_timeline(milestone)
    assert "Deleted note" in await tools.delete_note(note)
    assert "Deleted project" in await tools.delete_project(project)


async def test_bad_arguments_come_back_as_readable_errors(tools: StoreTools) -> None:
    assert (await tools.create_task("x", due_date="next blursday")).startswith("Error: due_date:")
    assert "no project with id nope" in await tools.create_task("x", project_id="nope")
    assert "no task with id missing" in await tools.update_task("missing", title="y")
    assert (await tools.create_task("   ")).startswith("Error: title:")
    assert "no note with id" in await tools.get_note("zzz")
    assert "no project with id" in await tools.create_timeline("nope", "t", "2026-01-01")
    assert "Error" in await tools.create_timeline("nope", "t", "someday")


def test_tool_names_are_the_design_contract() -> None:
    assert DESTRUCTIVE_TOOLS == {"delete_task", "delete_task_comment", "delete_project", "delete_timeline", "delete_note"}
    assert len(TOOL_NAMES) == len(set(TOOL_NAMES)) == 25
    for name in TOOL_NAMES:
        assert callable(getattr(StoreTools, name)) and getattr(StoreTools, name).__doc__
    assert set(DOMAIN_TOOLS["notes"]) == {"list_notes", "get_note", "create_note", "update_note", "delete_note",
                                          "list_projects"}
    assert "list_projects" in DOMAIN_TOOLS["tasks"] and "delete_task" in DOMAIN_TOOLS["tasks"]


def test_the_lists_are_derived_from_the_declarations() -> None:
    class More(StoreTools):
        @tool("notes", confirm=True)
        async def archive_note(self, note_id: str) -> str:
            """Archive a note.

            Args:
                note_id: Id of the note.
            """
            raise ValueError("no such note")

    specs = {s.name: s for s in declared_tools(More)}
    assert specs["archive_note"] == ToolSpec("archive_note", frozenset({"notes"}), confirm=True)
    assert specs["delete_task"].confirm and not specs["list_tasks"].confirm
    with pytest.raises(ValueError):
        tool("calendar")


@pytest.mark.parametrize(("call", "entity", "check"), [
    (ToolCallSpec(name="create_project", arguments={"name": "Garden"}), "projects", "Garden"),
    (ToolCallSpec(name="create_note", arguments={"title": "Ideas", "content": "- more light"}), "notes", "Ideas"),
    (ToolCallSpec(name="create_client", arguments={"name": "Initech"}), "clients", "Initech"),
])
async def test_each_family_through_a_real_run(api: Api, call: ToolCallSpec, entity: str, check: str) -> None:
    async with FakeLLMServer() as fake:
        await configure_model(api, fake)
        fake.push(ToolCallsReply(calls=[call]), TextReply(text="Done."))
        events = await run(api, run_input(f"t-{entity}", "please"))
    assert assert_terminal_rules(events)["type"] == "RUN_FINISHED"
    rows = (await api.ok("GET", f"/v1/{entity}"))["items"]
    assert [r.get("name") or r.get("title") for r in rows] == [check]
    assert [(m["entity"], m["op"], m["id"]) for m in events[-2]["value"]] == [(entity, "insert", rows[0]["id"])]


async def test_timeline_and_memory_through_a_real_run(api: Api) -> None:
    project = await api.ok("POST", "/v1/projects", {"name": "Launch"}, status=201)
    async with FakeLLMServer() as fake:
        await configure_model(api, fake)
        fake.push(ToolCallsReply(calls=[
            ToolCallSpec(name="create_timeline", arguments={"project_id": project["id"], "title": "Beta", "date": "2027-02-01"}),
            ToolCallSpec(name="update_core_memory", arguments={"key": "tone", "value": "Be brief."}),
        ]), TextReply(text="ok"))
        await run(api, run_input("t-tl", "plan"))
        fake.push(TextReply(text="ok"))
        await run(api, run_input("t-tl2", "again"))
        system = str(fake.chat_requests[-1].messages[0])
    timeline = (await api.ok("GET", "/v1/timelines"))["items"][0]
    assert timeline["title"] == "Beta" and timeline["date"] == clock.parse_iso_to_ms("2027-02-01")
    assert "tone: Be brief." in system  # core memory reaches the next run's system prompt
