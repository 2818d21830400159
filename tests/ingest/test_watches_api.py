"""`/v1/watches` and `/v1/ingest/files` over a real server: validation, 404s, runs, projects."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sidecar.settings import Settings
from tests.fakes.memory_keyring import MemoryKeyring
from tests.ingest.harness import Harness, running

MISSING = "00000000-0000-0000-0000-000000000000"
ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260301T090000Z
DTSTART:20260410T090000Z
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""


def fields_of(body: dict) -> set[str]:
    return {d["field"] for d in body["error"]["detail"]}


async def test_create_get_list_patch_delete(ing: Harness, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    w = await ing.create_watch(folder, name="Inbox", dataTypes=["tasks", "notes"], fileExtensions=["MD", ".txt"],
                               scheduleCron="*/15 * * * *", promptTemplate="Find tasks.", skipDone=True)
    assert set(w) == {"id", "name", "paths", "fileExtensions", "dataTypes", "promptTemplate", "scheduleCron",
                      "useLlm", "enabled", "lastRunAt", "projectId", "skipDone", "createdAt", "updatedAt"}
    assert w["paths"] == [str(folder)] and w["fileExtensions"] == [".md", ".txt"]
    assert w["dataTypes"] == ["tasks", "notes"] and w["enabled"] is True and w["useLlm"] is False
    got = await ing.ok("GET", f"/v1/watches/{w['id']}")
    assert {k: v for k, v in got.items() if k != "lastRunAt"} == {k: v for k, v in w.items() if k != "lastRunAt"}
    listing = await ing.ok("GET", "/v1/watches")
    assert listing["total"] == 1 and listing["items"][0]["id"] == w["id"]
    patched = await ing.ok("PATCH", f"/v1/watches/{w['id']}", {"name": "Renamed", "scheduleCron": None,
                                                               "enabled": False})
    assert patched["name"] == "Renamed" and patched["scheduleCron"] is None and patched["enabled"] is False
    assert (await ing.ok("GET", "/v1/watches?enabled=true"))["total"] == 0
    assert await ing.ok("DELETE", f"/v1/watches/{w['id']}") == {"deleted": w["id"]}
    status, _ = await ing.call("GET", f"/v1/watches/{w['id']}")
    assert status == 404


async def test_defaults_cover_every_supported_type(ing: Harness, tmp_path: Path) -> None:
    w = await ing.create_watch(tmp_path)
    assert set(w["fileExtensions"]) >= {".md", ".txt", ".eml", ".mbox", ".ics", ".pdf", ".html"}
    assert w["dataTypes"] == ["tasks", "notes", "timelines"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"paths": ["relative/folder"]}, "paths"),
        ({"paths": ["/definitely/not/here"]}, "paths"),
        ({"paths": []}, "paths"),
        ({"scheduleCron": "every monday"}, "scheduleCron"),
        ({"scheduleCron": "61 * * * *"}, "scheduleCron"),
        ({"dataTypes": ["tasks", "emails"]}, "dataTypes.1"),
        ({"dataTypes": []}, "dataTypes"),
        ({"fileExtensions": [".docx"]}, "fileExtensions"),
        ({"projectId": MISSING}, "projectId"),
        ({"name": ""}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_create_validation_is_422_naming_the_field(ing: Harness, tmp_path: Path, body: dict,
                                                          field: str) -> None:
    full = {"name": "w", "paths": [str(tmp_path)], **body}
    status, data = await ing.call("POST", "/v1/watches", full)
    assert status == 422, data
    assert data["error"]["code"] == "validation_failed"
    assert field in fields_of(data), data


async def test_a_file_is_not_a_folder_and_nested_paths_are_refused(ing: Harness, tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text("x")
    status, data = await ing.call("POST", "/v1/watches", {"name": "w", "paths": [str(f)]})
    assert status == 422 and "not a directory" in data["error"]["detail"][0]["message"]
    (tmp_path / "sub").mkdir()
    status, data = await ing.call("POST", "/v1/watches", {"name": "w", "paths": [str(tmp_path), str(tmp_path / "sub")]})
    assert status == 422 and "nested" in data["error"]["detail"][0]["message"]


async def test_patch_validation_and_404s(ing: Harness, tmp_path: Path) -> None:
    w = await ing.create_watch(tmp_path)
    for body, field in (({"paths": ["nope"]}, "paths"), ({"scheduleCron": "* *"}, "scheduleCron"),
                        ({"name": None}, "name"), ({"dataTypes": ["x"]}, "dataTypes.0")):
        status, data = await ing.call("PATCH", f"/v1/watches/{w['id']}", body)
        assert status == 422 and field in fields_of(data), (body, data)
    for method, path in (("GET", f"/v1/watches/{MISSING}"), ("PATCH", f"/v1/watches/{MISSING}"),
                         ("DELETE", f"/v1/watches/{MISSING}"), ("POST", f"/v1/watches/{MISSING}/run"),
                         ("GET", f"/v1/watches/{MISSING}/runs")):
        status, data = await ing.call(method, path, {} if method == "PATCH" else None)
        assert status == 404 and data["error"]["code"] == "not_found", (method, path)
    status, data = await ing.call("GET", "/v1/ingest/files?status=bogus")
    assert status == 422 and "status" in fields_of(data)


async def test_runs_are_logged_and_manual_run_retries(ing: Harness, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every log call of the pipeline really formats its record
    (tmp_path / "plan.md").write_text("# Plan\n\n- [ ] Book the venue\n- [ ] Send invitations\n")
    w = await ing.create_watch(tmp_path)
    await ing.settle(w["id"])
    runs = await ing.runs(w["id"])
    assert len(runs) == 1
    first = runs[0]
    assert first["trigger"] == "watch" and first["status"] == "success"
    assert first["itemsProcessed"] == 1 and first["itemsCreated"] == 2 and first["errors"] == []
    assert first["completedAt"] >= first["startedAt"]
    assert set(first) == {"id", "watchId", "trigger", "status", "itemsProcessed", "itemsCreated", "errors",
                          "startedAt", "completedAt"}

    run = await ing.ok("POST", f"/v1/watches/{w['id']}/run", status=202)
    assert run["trigger"] == "manual" and run["status"] == "running" and run["watchId"] == w["id"]
    await ing.settle(w["id"])
    runs = await ing.runs(w["id"])
    assert [r["trigger"] for r in runs] == ["manual", "watch"]  # newest first
    assert runs[0]["status"] == "success" and runs[0]["itemsCreated"] == 0  # nothing changed
    assert (await ing.ok("GET", f"/v1/watches/{w['id']}"))["lastRunAt"] == runs[0]["startedAt"]

    files = await ing.ok("GET", f"/v1/ingest/files?watchId={w['id']}&status=done")
    assert files["total"] == 1 and files["counts"]["done"] == 1
    f = files["items"][0]
    assert f["path"] == str(tmp_path / "plan.md") and f["itemsCreated"] == 2 and len(f["sha256"]) == 64
    assert (await ing.ok("GET", "/v1/ingest/files?status=error"))["total"] == 0
    finished = [r for r in caplog.records if r.getMessage() == "ingest run finished"]
    assert len(finished) == 2 and finished[0].items_created == 2  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no failure on the way"


async def test_milestones_without_project_go_to_one_project_named_after_the_watch(ing: Harness,
                                                                                   tmp_path: Path) -> None:
    (tmp_path / "a.ics").write_text(ICS.format(uid="a", summary="Kick-off"))
    w = await ing.create_watch(tmp_path, name="Calendar drop")
    await ing.settle(w["id"])
    (tmp_path / "b.ics").write_text(ICS.format(uid="b", summary="Review"))
    await ing.settle(w["id"])
    projects = await ing.entities("projects")
    assert [p["name"] for p in projects] == ["Calendar drop"]
    timelines = await ing.entities("timelines")
    assert sorted(t["title"] for t in timelines) == ["Kick-off", "Review"]
    assert {t["projectId"] for t in timelines} == {projects[0]["id"]}
    assert all(t["isAiSuggested"] and not t["isApproved"] for t in timelines)


async def test_with_project_id_everything_is_filed_under_it(ing: Harness, tmp_path: Path) -> None:
    project = await ing.ok("POST", "/v1/projects", {"name": "Launch"}, status=201)
    (tmp_path / "a.ics").write_text(ICS.format(uid="a", summary="Go live"))
    (tmp_path / "b.md").write_text("- [ ] Write the announcement\n")
    w = await ing.create_watch(tmp_path, projectId=project["id"])
    await ing.settle(w["id"])
    assert [p["name"] for p in await ing.entities("projects")] == ["Launch"]
    [timeline] = await ing.entities("timelines")
    [task] = await ing.entities("tasks")
    assert timeline["projectId"] == project["id"] == task["projectId"]
    assert task["isAiSuggested"] is True and task["isApproved"] is False


async def test_deleting_a_watch_keeps_its_items(ing: Harness, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("- [ ] Keep me\n")
    w = await ing.create_watch(tmp_path)
    await ing.settle(w["id"])
    await ing.ok("DELETE", f"/v1/watches/{w['id']}")
    assert [t["title"] for t in await ing.entities("tasks")] == ["Keep me"]
    assert (await ing.ok("GET", "/v1/ingest/files"))["total"] == 0


async def test_serve_watch_path_ensures_a_watch(settings: Settings, memory_keyring: MemoryKeyring,
                                                tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "todo.md").write_text("- [ ] From the command line\n")
    s = settings.model_copy(update={"watch_paths": (folder, tmp_path / "absent")})
    async with running(s) as h:
        [w] = (await h.ok("GET", "/v1/watches"))["items"]
        assert w["paths"] == [str(folder)] and w["name"] == "drop" and w["enabled"]
        await h.settle(w["id"])
        assert [r["trigger"] for r in await h.runs(w["id"])] == ["startup"]
        assert [t["title"] for t in await h.entities("tasks")] == ["From the command line"]
        ready = (await h.ok("GET", "/v1/ready"))["components"]["watcher"]
        assert ready["state"] == "degraded", ready
        assert f"--watch {tmp_path / 'absent'}" in ready["detail"] and "does not exist" in ready["detail"], ready
    async with running(s) as h:  # the second start finds the watch, makes no second one
        assert (await h.ok("GET", "/v1/watches"))["total"] == 1
