"""The sample files in ``examples/inbox`` give exactly the expected items."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sidecar import clock
from sidecar.ingest import rules
from sidecar.ingest.readers import read_document

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"


def day(y: int, m: int, d: int) -> int:
    return clock.to_ms(dt.date(y, m, d))


def extract(name: str, now: int) -> list[tuple[object, ...]]:
    doc = read_document(INBOX / name, max_bytes=1_000_000)
    return [
        (
            i.type,
            i.title,
            i.assignees,
            i.due_date if i.type == "task" else i.date,
            i.status,
            i.priority,
            i.signal,
        )
        for i in rules.extract(doc, now_ms=now)
    ]


def test_inbox_has_the_promised_files() -> None:
    names = {p.suffix for p in INBOX.iterdir()}
    assert names == {".md", ".txt", ".eml", ".ics"}


def test_launch_retro_markdown() -> None:
    # front matter date 2026-03-02 (a Monday) is the base for "by Friday"
    assert extract("launch-retro-notes.md", now=0) == [
        ("task", "Draft the support rota for weekends", ["maya"], day(2026, 3, 6), "todo", None, "checkbox"),
        ("task", "Write release notes template", ["Priya"], None, "todo", "high", "checkbox"),
        ("task", "Send thank-you note to the beta testers", [], None, "done", None, "checkbox"),
        ("task", "Book the usability study room", ["olu"], day(2026, 3, 12), "todo", None, "checkbox"),
        ("task", "Decide whether to localise into Portuguese", [], None, "todo", None, "checkbox"),
    ]


def test_garden_club_markdown() -> None:
    # no date in the file: the caller passes the file's mtime as now_ms
    assert extract("garden-club-plan.md", now=day(2026, 2, 14)) == [
        ("task", "order 2 cubic metres of topsoil", ["Ines"], None, "todo", None, "action-section"),
        ("task", "fix the gate latch", ["Tom"], day(2026, 3, 1), "todo", None, "action-section"),
        ("task", "Ask the council about a second water tap", [], None, "todo", "medium", "action-section"),
        ("task", "Print seed-swap posters", [], day(2026, 3, 3), "todo", None, "checkbox"),
    ]


def test_standup_text() -> None:
    assert extract("standup-2026-03-04.txt", now=day(2026, 3, 4)) == [
        ("task", "chase the designer for the icon set", [], day(2026, 3, 5), "todo", None, "todo-line"),
        (
            "task",
            "add crash reporting to the settings screen",
            ["Olu"],
            day(2026, 3, 6),
            "todo",
            None,
            "action-line",
        ),
        ("task", "update the onboarding copy", ["PS"], None, "todo", "high", "ai-line"),
    ]


def test_email_with_action_lines() -> None:
    # Date: Tue, 10 Mar 2026 → "by Friday" is 13 March; the quoted TODO is not a task
    assert extract("invoice-followup.eml", now=0) == [
        ("task", "Send the signed purchase order", [], day(2026, 3, 13), "todo", None, "action-section"),
        ("task", "Add the VAT number to the invoice", [], None, "todo", None, "action-section"),
        (
            "task",
            "confirm the installation date with the café owner",
            ["Dana"],
            None,
            "todo",
            None,
            "next-step-line",
        ),
    ]


def test_email_without_action_lines_is_a_note() -> None:
    doc = read_document(INBOX / "newsletter-march.eml", max_bytes=1_000_000)
    (note,) = rules.extract(doc)
    assert (note.type, note.title, note.signal) == ("note", "March at the Lakeside Library", "email-note")
    assert note.description is not None and note.description.startswith("Dear members,")


def test_calendar() -> None:
    assert extract("team-calendar.ics", now=0) == [
        (
            "timeline",
            "Kettle demo for the tea shop owners",
            [],
            clock.parse_iso_to_ms("2026-03-18T13:00:00Z"),  # 14:00 Europe/Berlin
            "todo",
            None,
            "vevent",
        ),
        ("task", "Prepare demo script", [], day(2026, 3, 16), "todo", "high", "vtodo"),
        (
            "task",
            "Order demo tablets",
            [],
            clock.parse_iso_to_ms("2026-03-05T17:00:00Z"),
            "done",
            None,
            "vtodo",
        ),
    ]
